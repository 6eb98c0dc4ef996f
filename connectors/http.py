"""One httpx.AsyncClient per source, with bounded retries and redacted errors.

Classification happens once, here: connect errors, timeouts, 408, 429 and
5xx are retried with exponential backoff and full jitter (``Retry-After`` is
honoured); 401/403 raise ``AuthError``; other 4xx raise ``FatalAPIError``. A
2xx body that does not decode (or that ``parse`` rejects) is a
``MalformedPage`` and is retried like a 5xx.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson

from mailpulse.connectors import metrics
from mailpulse.connectors.errors import AuthError, ConnectorError, FatalAPIError, MalformedPage, RetriableAPIError
from mailpulse.connectors.redact import redact_text, redact_url

__all__ = ["RetryPolicy", "ApiClient", "ParseCallback", "retry_after_seconds"]

log = logging.getLogger(__name__)

ParseCallback = Callable[[Any], Any]
_RETRY_STATUS = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    #: Retries after the first attempt.
    max_retries: int = 5
    #: First backoff in seconds; doubles per attempt, full jitter.
    base_delay: float = 0.5
    max_delay: float = 30.0
    #: A longer ``Retry-After`` is capped (and logged): never sleep for hours.
    max_retry_after: float = 120.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class ApiClient:
    """HTTP for one source. ``auth_headers``/``auth_params`` hold the secret; ``secrets`` lists it for redaction."""

    provider: str
    source: str
    base_url: str
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    auth_headers: Mapping[str, str] = field(default_factory=dict)
    auth_params: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    transport: httpx.AsyncBaseTransport | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            transport=self.transport,
            headers={"Accept": "application/json", "User-Agent": "mailpulse-connector/0.1"},
            follow_redirects=True,
        )

    def __repr__(self) -> str:  # never show the auth values
        return f"ApiClient(provider={self.provider!r}, source={self.source!r}, base_url={redact_url(self.base_url)!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _error(self, cls: type[ConnectorError], message: str, stream: str, status: int | None = None) -> ConnectorError:
        return cls(
            redact_text(message, self.secrets), provider=self.provider, source=self.source, stream=stream, status=status
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        stream: str,
        params: Mapping[str, Any] | None = None,
        parse: ParseCallback | None = None,
        authenticated: bool = True,
    ) -> Any:
        """Send with retries; return ``parse(decoded JSON)`` (or the decoded JSON).

        ``authenticated=False`` sends no credentials (pre-signed download URLs); a 401/403 there is
        a ``FatalAPIError`` (an expired link), not a refused key, so it does not stop the source.
        """
        query: dict[str, Any] = {}
        if "?" in url:  # httpx would replace a URL's own query by ``params``: merge them (signed URLs)
            url, _, own = url.partition("?")
            query.update(parse_qsl(own, keep_blank_values=True))
        query.update(self.auth_params if authenticated else {})
        query.update(params or {})
        headers = dict(self.auth_headers) if authenticated else {}
        labels = (self.provider, self.source, stream)
        attempt = 0
        while True:
            delay: float | None = None
            try:
                response = await self._client.request(method, url, params=query or None, headers=headers)
            except httpx.TransportError as exc:  # connect errors, timeouts, protocol errors
                metrics.REQUESTS.labels(*labels, "error").inc()
                reason = "timeout" if isinstance(exc, httpx.TimeoutException) else "connect"
                shown = redact_url(exc.request.url) if _has_request(exc) else redact_url(url)
                error = self._error(RetriableAPIError, f"{method} {shown}: {type(exc).__name__}", stream)
            else:
                status = response.status_code
                metrics.REQUESTS.labels(*labels, str(status)).inc()
                shown = f"{method} {redact_url(response.request.url)}"
                if 200 <= status < 300:
                    try:
                        body = orjson.loads(response.content)
                        return parse(body) if parse is not None else body
                    except (orjson.JSONDecodeError, MalformedPage, ValueError, TypeError, KeyError) as exc:
                        reason = "malformed"
                        detail = (
                            exc.message
                            if isinstance(exc, ConnectorError)
                            else f"{type(exc).__name__}: {str(exc)[:120]}"
                        )
                        error = self._error(
                            MalformedPage, f"{shown} -> {status}: malformed page ({detail})", stream, status
                        )
                elif status in (401, 403) and authenticated:
                    metrics.AUTH_FAILURES.labels(self.provider, self.source).inc()
                    raise self._error(
                        AuthError, f"{shown} -> {status}: credentials refused{_snippet(response)}", stream, status
                    )
                elif status in _RETRY_STATUS or status >= 500:
                    reason = str(status)
                    delay = retry_after_seconds(response.headers.get("Retry-After"))
                    error = self._error(RetriableAPIError, f"{shown} -> {status}{_snippet(response)}", stream, status)
                else:
                    raise self._error(FatalAPIError, f"{shown} -> {status}{_snippet(response)}", stream, status)
            if attempt >= self.retry.max_retries:
                error.message += f" (gave up after {attempt + 1} attempts)"
                raise error
            metrics.RETRIES.labels(*labels, reason).inc()
            if delay is None:
                delay = self.retry.backoff(attempt)
            elif delay > self.retry.max_retry_after:
                log.warning("%s: Retry-After %.0fs capped to %.0fs", self.source, delay, self.retry.max_retry_after)
                delay = self.retry.max_retry_after
            log.info("%s; retry %d/%d in %.2fs", error, attempt + 1, self.retry.max_retries, delay)
            await self.sleep(delay)
            attempt += 1


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        _ = exc.request  # httpx raises RuntimeError when no request was attached
    except RuntimeError:
        return False
    return True


def _snippet(response: httpx.Response, limit: int = 160) -> str:
    """A short, single-line excerpt of an error body (secrets and addresses are masked by the caller)."""
    text = response.text.strip().replace("\n", " ") if response.content else ""
    return f": {text[:limit]}" if text else ""
