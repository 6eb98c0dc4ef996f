"""The query API (Faust web): thin views over ``mailpulse.streams.query``.

Every worker serves every endpoint. A campaign or contact lives in one
partition of the stage-2 tables; a request for a key this worker does not own
is forwarded once to the owner (``X-Mailpulse-Routed`` stops loops) and its
answer returned as is. The list endpoint asks every worker for its own
partitions (``scope=local``) and merges. While a worker recovers its tables it
answers 503 (its counts would be partial) and ``/readyz`` says not ready.
Errors are JSON: ``{"error": {"status", "message", "parameter"?}}``.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson
from faust.types import TP
from faust.web import View
from yarl import URL

from mailpulse.streams.aggregates import decode_value
from mailpulse.streams.app import Streams
from mailpulse.streams.faust_internals import partition_owner_urls
from mailpulse.streams.metrics import CONTENT_TYPE_LATEST
from mailpulse.streams.params import check_request
from mailpulse.streams.query import (
    QueryError,
    campaign_answer,
    contact_answer,
    hourly_answer,
    mailbox_items,
    merge_lists,
    merge_mailbox_lists,
    parse_hours,
    parse_key,
    parse_limit,
    parse_order,
    parse_source,
)
from mailpulse.streams.rollups import windows_of
from mailpulse.streams.statemetrics import mailbox_totals
from mailpulse.streams.tables import partition_of

__all__ = ["install_api"]

log = logging.getLogger(__name__)
ROUTED_HEADER = "X-Mailpulse-Routed"
FORWARD_TIMEOUT_S = 10.0


def _error(view: Any, status: int, message: str, parameter: str | None = None) -> Any:
    body: dict[str, Any] = {"status": status, "message": message}
    if parameter is not None:
        body["parameter"] = parameter
    return view.json({"error": body}, status=status)


def _json(view: Any, body: Any, status: int = 200) -> Any:
    return view.bytes(orjson.dumps(body), content_type="application/json", status=status)


def install_api(s: Streams) -> None:
    app = s.app
    m = s.metrics

    def guarded(endpoint: str) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """Bad input is a 400, never a 500; an unexpected error is logged and answered as JSON."""

        def deco(fun: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def get(view: Any, request: Any, **kw: Any) -> Any:
                try:
                    # The document's own constraints first: a value it rules out is a 400, never answered.
                    check_request(request.match_info.route.resource.canonical, request.query, kw)
                    resp = await fun(view, request, **kw)
                except QueryError as exc:
                    resp = _error(view, 400, str(exc), exc.parameter)
                except Exception:
                    log.exception("%s failed", endpoint)
                    resp = _error(view, 500, "internal error")
                m.requests.labels(endpoint, str(getattr(resp, "status", 0))).inc()
                return resp

            return get

        return deco

    async def forward(view: Any, request: Any, dest: URL) -> Any:
        url = request.url.with_host(dest.host).with_port(dest.port)
        try:
            async with app.http_client.get(
                url, headers={ROUTED_HEADER: "1"}, timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
            ) as resp:
                body = await resp.read()
                return view.bytes(body, content_type=resp.content_type, status=resp.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return _error(view, 503, f"the worker owning this key ({dest}) did not answer: {type(exc).__name__}")

    def is_self(dest: URL) -> bool:
        me = URL(str(app.conf.canonical_url))
        return (dest.host, dest.port) == (me.host, me.port)

    async def keyed(view: Any, request: Any, table: str, key: str, local: Callable[[int, bytes], Any]) -> Any:
        kb = key.encode()
        partition = partition_of(kb)
        # Faust's router asks the producer's metadata for the partition, which it
        # lacks for topics this worker never produced to: hash it ourselves.
        url = partition_owner_urls(app).get(TP(s.tables[table].changelog_topic_name, partition))
        if url is None:
            return _error(view, 503, "no worker owns this key yet (rebalancing)")
        dest = URL(url)
        if not is_self(dest):
            if request.headers.get(ROUTED_HEADER):
                return _error(view, 503, "ownership of this key is moving (rebalancing)")
            return await forward(view, request, dest)
        if not s.ready:
            return _error(view, 503, "recovering tables: counts would be partial")
        return local(partition, kb)

    def now_ms() -> int:
        return int(time.time() * 1000)

    def keyed_page(
        path: str,
        *,
        name: str,
        endpoint: str,
        table: str,
        answer: Callable[..., dict[str, Any] | None],
        parse: Callable[[Mapping[str, str]], tuple[Any, ...]] = lambda query: (),
    ) -> None:
        """``GET path`` for one key of a stage-2 table: ``answer(key, value, *parse(query), now_ms)``.

        The key and the query are checked first (400 naming the parameter), the
        request is forwarded to the key's owner if that is another worker, and
        an unknown key is a 404.
        """
        store = {"campaigns": s.campaign_table, "contacts": s.contact_table}[table]

        @app.page(path, name=name)
        class KeyedView(View):
            @guarded(endpoint)
            async def get(self, request: Any, key: str) -> Any:
                parse_key(key)
                args = parse(request.query)

                def local(partition: int, kb: bytes) -> Any:
                    body = answer(key, decode_value(store.get(partition, kb)), *args, now_ms())
                    if body is None:
                        return _error(self, 404, f"unknown {table.removesuffix('s')} {key!r}", "key")
                    return _json(self, body)

                return await keyed(self, request, table, key, local)

    keyed_page(
        "/v1/campaigns/{key}", name="CampaignView", endpoint="campaign", table="campaigns", answer=campaign_answer
    )
    keyed_page(
        "/v1/campaigns/{key}/hourly",
        name="HourlyView",
        endpoint="campaign_hourly",
        table="campaigns",
        answer=hourly_answer,
        parse=lambda query: (parse_hours(query),),
    )
    keyed_page("/v1/contacts/{key}", name="ContactView", endpoint="contact", table="contacts", answer=contact_answer)

    def local_list(source: str | None, limit: int, order: str) -> list[dict[str, Any]]:
        topic = s.campaign_partials.get_topic_name()
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}
        prefix = None if source is None else (source + ":").encode()
        now = now_ms()
        items = []
        for partition in owned:
            for kb, raw in s.campaign_table.items(partition):
                if prefix is not None and not kb.startswith(prefix):
                    continue
                body = campaign_answer(kb.decode(), decode_value(raw), now)
                if body is not None:
                    items.append(body)
        pick = heapq.nlargest if order == "last_event_at" else heapq.nsmallest
        top = pick(limit, items, key=lambda a: (a["last_event_at"] or "", a["key"]))
        return list(top)

    async def across_workers(view: Any, request: Any, mine: Any) -> list[Any] | Any:
        """Every worker's ``scope=local`` answer (``items``), this one's first; a JSON 503 if one fails."""
        lists = [mine]
        urls = {URL(u) for u in partition_owner_urls(app).values()}
        for u in [u for u in urls if not is_self(u)]:
            target = request.url.with_host(u.host).with_port(u.port).update_query(scope="local")
            try:
                async with app.http_client.get(target, timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as resp:
                    if resp.status != 200:
                        return _error(view, 503, f"worker {u} answered {resp.status}")
                    lists.append((await resp.json())["items"])
            except (TimeoutError, aiohttp.ClientError) as exc:
                return _error(view, 503, f"worker {u} did not answer: {type(exc).__name__}")
        return lists

    @app.page("/v1/campaigns")
    class CampaignListView(View):
        @guarded("campaign_list")
        async def get(self, request: Any) -> Any:
            q = request.query
            source, limit, order = parse_source(q), parse_limit(q), parse_order(q)
            if not s.ready:
                return _error(self, 503, "recovering tables: counts would be partial")
            mine = local_list(source, limit, order)
            if q.get("scope") == "local":
                return _json(self, {"items": mine})
            lists = await across_workers(self, request, mine)
            if not isinstance(lists, list):
                return lists
            return _json(self, {"items": merge_lists(lists, order, limit), "workers": len(lists)})

    def local_mailboxes(source: str | None) -> list[dict[str, Any]]:
        now = now_ms()
        totals = mailbox_totals(s)
        counts = {group: t.counts for group, t in totals.items()}
        windows = {group: windows_of(t.hourly, now, ("current_hour", "previous_hour")) for group, t in totals.items()}
        return mailbox_items(counts, windows, source)

    @app.page("/v1/mailbox-providers")
    class MailboxListView(View):
        @guarded("mailbox_providers")
        async def get(self, request: Any) -> Any:
            q = request.query
            source = parse_source(q)
            if not s.ready:
                return _error(self, 503, "recovering tables: counts would be partial")
            mine = local_mailboxes(source)
            if q.get("scope") == "local":
                return _json(self, {"items": mine})
            lists = await across_workers(self, request, mine)
            if not isinstance(lists, list):
                return lists
            return _json(self, {"items": merge_mailbox_lists(lists), "workers": len(lists)})

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Any) -> Any:
            names = request.query.getall("name[]", [])
            return self.bytes(m.render(names), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Any) -> Any:
            return _json(self, {"status": "ok"})

    @app.page("/readyz")
    class ReadyView(View):
        async def get(self, request: Any) -> Any:
            ready = s.ready
            return _json(self, {"ready": ready, "partitions": sorted(s.views)}, status=200 if ready else 503)
