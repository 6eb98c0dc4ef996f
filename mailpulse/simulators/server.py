"""The HTTP side: one aiohttp app per provider, fault middleware, ``/_sim/`` control routes.

Order of a provider request: a scripted fault (if any) -> auth -> seeded
random faults (429, 5xx, slow, malformed) -> the provider's handler. Every
request to a provider route (downloads included, ``/_sim/`` excluded) is
appended to ``sim.request_log`` with its final status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web

from mailpulse.simulators import smartcq, smartersends, smtpeter, supersend
from mailpulse.simulators._util import json_response
from mailpulse.simulators.faults import PROVIDERS, FaultSpecError, parse_fault_spec
from mailpulse.simulators.simulator import Simulator

__all__ = ["make_app", "serve_simulators"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_MODULES = {"smartcq": smartcq, "smtpeter": smtpeter, "supersend": supersend, "smartersends": smartersends}
_SIM_KEY: web.AppKey[Simulator] = web.AppKey("sim", Simulator)
_PROVIDER_KEY: web.AppKey[str] = web.AppKey("provider", str)
_5XX = (500, 502, 503, 504)


def make_app(sim: Simulator, provider: str) -> web.Application:
    app = web.Application(middlewares=[_middleware])
    app[_SIM_KEY] = sim
    app[_PROVIDER_KEY] = provider
    # Handlers read ``request.app["sim"]``: plain string keys keep provider modules free of server imports.
    with _quiet_appkey_warning():
        app["sim"] = sim
        app["provider"] = provider
    _MODULES[provider].add_routes(app)
    _add_control_routes(app)
    return app


@contextlib.asynccontextmanager
async def serve_simulators(
    sim: Simulator,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    providers: tuple[str, ...] = PROVIDERS,
) -> AsyncIterator[dict[str, str]]:
    """Serve the providers in the running event loop; yields ``{provider: base_url}``.

    ``ports=None`` picks free ports; otherwise ``{provider: port}`` (a missing provider gets a free port).
    """
    runners: list[web.AppRunner] = []
    urls: dict[str, str] = {}
    try:
        for provider in providers:
            runner = web.AppRunner(make_app(sim, provider), access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, host, (ports or {}).get(provider, 0))
            await site.start()
            port = runner.addresses[0][1]
            urls[provider] = f"http://{host}:{port}"
        yield urls
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


# ---------------------------------------------------------------------------
# Middleware


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sim = request.app[_SIM_KEY]
    provider = request.app[_PROVIDER_KEY]
    if request.path.startswith("/_sim/"):
        if not _loopback(request):
            return json_response({"error": "the /_sim/ control routes answer loopback clients only"}, status=403)
        return await handler(request)
    status = 500
    try:
        response = await _serve(request, handler, sim, provider)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        sim.log(provider, request.method, request.path, dict(request.query), status)


async def _serve(request: web.Request, handler: Handler, sim: Simulator, provider: str) -> web.StreamResponse:
    if request.path.startswith("/_files/"):
        return await handler(request)  # a signed download URL: no bearer key, no faults
    module = _MODULES[provider]
    faults = sim.faults
    token = faults.take_scripted(provider) or ""
    head, _, arg = token.partition(":")
    knobs = faults[provider]
    if head == "429":
        return _too_many(provider, int(arg) if arg else knobs.retry_after)
    if head.isdigit():
        return _server_error(provider, int(head))
    if head == "disconnect":
        # The connection drops before any reply: the client sees a transport error.
        if request.transport is not None:
            request.transport.abort()
        raise web.HTTPServiceUnavailable()  # never sent; logged as 503
    denied = module.check_auth(request, sim.credentials[provider], faults.is_revoked(provider))
    if denied is not None:
        return denied
    slow_ms, malformed = 0, ""
    if head == "slow":
        slow_ms = int(arg) if arg else knobs.slow_ms
    elif head in ("malformed", "invalid-json", "wrong-shape"):
        malformed = head
    elif head != "ok":
        # Always three draws per request, so the fault sequence depends only on the request count.
        d_status, d_slow, d_malformed = faults.draw(provider), faults.draw(provider), faults.draw(provider)
        if d_status < knobs.rate_429:
            return _too_many(provider, knobs.retry_after)
        if d_status < knobs.rate_429 + knobs.rate_5xx:
            return _server_error(provider, faults.choice(provider, _5XX))
        if d_slow < knobs.slow_rate:
            slow_ms = knobs.slow_ms
        if d_malformed < knobs.malformed_page_rate:
            malformed = "malformed"
    delay_ms = slow_ms + knobs.latency_ms
    if delay_ms:
        await asyncio.sleep(delay_ms / 1000)
    response = await handler(request)
    if (
        malformed
        and response.status == 200
        and isinstance(response, web.Response)
        and response.content_type == "application/json"
    ):
        if malformed == "malformed":
            malformed = faults.choice(provider, ("invalid-json", "wrong-shape"))
        response = _malform(response, malformed)
    return response


def _too_many(provider: str, retry_after: int) -> web.Response:
    headers = {"Retry-After": str(retry_after)}
    body: Any = {
        "smartcq": {"error": {"code": "rate_limited", "message": "Troppe richieste, riprova più tardi"}},
        "smtpeter": {"error": "rate limit exceeded"},
        "supersend": {"success": False, "error": {"code": "RATE_LIMITED", "message": "Too many requests"}},
        "smartersends": {"message": "Too Many Attempts."},
    }[provider]
    return json_response(body, status=429, headers=headers)


def _server_error(provider: str, status: int) -> web.Response:
    if status in (502, 503, 504):
        # What a gateway in front of the API sends: HTML, not the API's JSON.
        reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
        html = f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
        return web.Response(text=html, status=status, content_type="text/html")
    return json_response({"error": "internal server error", "provider": provider}, status=status)


def _malform(response: web.Response, kind: str) -> web.Response:
    body = response.body if isinstance(response.body, bytes) else b""
    if kind == "invalid-json":
        broken = body[: max(1, len(body) // 2)]
    else:
        obj = orjson.loads(body)
        if isinstance(obj, list):
            wrong: Any = {"results": "unavailable", "count": len(obj)}
        elif isinstance(obj, dict):
            wrong = {k: ("unavailable" if isinstance(v, (list, dict)) else v) for k, v in obj.items()}
        else:
            wrong = {"value": obj}
        broken = orjson.dumps(wrong)
    return web.Response(body=broken, status=200, content_type="application/json", headers=_kept_headers(response))


def _kept_headers(response: web.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}


def _loopback(request: web.Request) -> bool:
    remote = request.remote or ""
    return remote.startswith("127.") or remote in ("::1", "localhost")


# ---------------------------------------------------------------------------
# /_sim/ control routes (no auth, loopback only): drive a simulator running as a subprocess.


def _add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/now", _now)
    app.router.add_post("/_sim/advance", _advance)
    app.router.add_get("/_sim/snapshot/{provider}", _snapshot)
    app.router.add_get("/_sim/bad_records/{provider}", _bad_records)
    app.router.add_post("/_sim/faults", _faults)
    app.router.add_get("/_sim/faults", _faults_get)
    app.router.add_post("/_sim/settings", _settings)
    app.router.add_get("/_sim/requests", _requests)


def _state(sim: Simulator) -> dict[str, Any]:
    return {"now": sim.now.isoformat().replace("+00:00", "Z"), "seed": sim.config.seed, "size": sim.config.size}


async def _now(request: web.Request) -> web.Response:
    return json_response(_state(request.app[_SIM_KEY]))


async def _advance(request: web.Request) -> web.Response:
    sim = request.app[_SIM_KEY]
    try:
        seconds = float(request.query.get("seconds", ""))
        if seconds < 0:
            raise ValueError
    except ValueError:
        return json_response({"error": "seconds: expected a non-negative number"}, status=400)
    sim.advance(timedelta(seconds=seconds))
    return json_response(_state(sim))


def _kwargs(query: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in query.items():
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
        elif key == "tags":
            out[key] = [t for t in value.replace(";", ",").split(",") if t]
        else:
            out[key] = value
    return out


async def _snapshot(request: web.Request) -> web.Response:
    sim = request.app[_SIM_KEY]
    try:
        records = sim.snapshot(request.match_info["provider"], **_kwargs(request.query))
    except (ValueError, TypeError) as exc:
        return json_response({"error": str(exc)}, status=400)
    return json_response(records)


async def _bad_records(request: web.Request) -> web.Response:
    sim = request.app[_SIM_KEY]
    try:
        return json_response(sim.bad_records(request.match_info["provider"]))
    except ValueError as exc:
        return json_response({"error": str(exc)}, status=400)


async def _faults_get(request: web.Request) -> web.Response:
    return json_response(request.app[_SIM_KEY].faults.as_dict())


async def _faults(request: web.Request) -> web.Response:
    """JSON body: ``{"provider"?, "spec"?, "knobs"?, "script"?, "revoke"?, "restore"?, "clear"?}``."""
    sim = request.app[_SIM_KEY]
    try:
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict):
            raise FaultSpecError("the body must be a JSON object")
        provider = body.get("provider")
        if body.get("clear"):
            sim.faults.clear()
        knobs = dict(parse_fault_spec(body["spec"])) if body.get("spec") else {}
        knobs.update(body.get("knobs") or {})
        if knobs:
            sim.faults.set(provider, **knobs)
        for key, action in (("script", sim.faults.script), ("revoke", None), ("restore", None)):
            if key not in body or not body[key]:
                continue
            if provider is None:
                raise FaultSpecError(f"{key!r} needs a 'provider'")
            if key == "script":
                action(provider, body["script"])  # type: ignore[misc]
            elif key == "revoke":
                sim.faults.revoke(provider)
            else:
                sim.faults.restore(provider)
    except (FaultSpecError, ValueError, TypeError) as exc:
        return json_response({"error": str(exc)}, status=400)
    return json_response(sim.faults.as_dict())


async def _settings(request: web.Request) -> web.Response:
    sim = request.app[_SIM_KEY]
    try:
        body = await request.json()
        method = body.get("smartersends_export_method")
        if method is not None:
            if method not in ("POST", "GET", "both"):
                raise ValueError("smartersends_export_method: expected POST, GET or both")
            sim.settings.smartersends_export_method = method
        ttl = body.get("smartersends_url_ttl_seconds")
        if ttl is not None:
            sim.settings.smartersends_url_ttl = timedelta(seconds=float(ttl))
    except (ValueError, TypeError, AttributeError) as exc:
        return json_response({"error": str(exc)}, status=400)
    return json_response(
        {
            "smartersends_export_method": sim.settings.smartersends_export_method,
            "smartersends_url_ttl_seconds": sim.settings.smartersends_url_ttl.total_seconds(),
        }
    )


async def _requests(request: web.Request) -> web.Response:
    sim = request.app[_SIM_KEY]
    start = int(request.query.get("since_index", "0") or 0)
    return json_response(
        [
            {"index": i, "provider": r[0], "method": r[1], "path": r[2], "query": r[3], "status": r[4]}
            for i, r in enumerate(sim.request_log[start:], start)
        ]
    )


@contextlib.contextmanager
def _quiet_appkey_warning() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
