"""All configured sources in one process; each source's streams run side by side.

``SourceRunner`` owns one source: its HTTP client, its streams, their cursors
(read back from ``mailpulse.checkpoints.v1``), the de-dup indexes and one
transactional publisher per stream. A 401/403 stops that source only;
``run_connect`` keeps the others going.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from aiokafka.errors import KafkaError, ProducerFenced

from mailpulse.config import Config
from mailpulse.connectors import metrics
from mailpulse.connectors.base import Clock, PassResult, Plan, Stream, StreamRunner, describe, utcnow
from mailpulse.connectors.cursors import BackfillCursor, CursorForm, LiveCursor, PassKind
from mailpulse.connectors.dedupe import ChangeIndex, EventIndex
from mailpulse.connectors.errors import AuthError, ConnectorError, PaginationError
from mailpulse.connectors.http import ApiClient, RetryPolicy
from mailpulse.connectors.providers import PROVIDERS
from mailpulse.connectors.publisher import Publisher, transactional_id
from mailpulse.connectors.state import load_change_index, load_dlq_digests, load_event_index, read_checkpoints
from mailpulse.sources import source_secrets
from mailpulse.topics.events import parse_timestamp

__all__ = ["SourceRunner", "make_client", "source_secrets", "run_connect"]

log = logging.getLogger(__name__)


def make_client(
    source: Any, *, retry: RetryPolicy | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> ApiClient:
    credentials = PROVIDERS[source.provider].auth.credentials(source)
    return ApiClient(
        provider=source.provider,
        source=source.name,
        base_url=source.base_url,
        timeout=source.timeout.total_seconds(),
        retry=retry or RetryPolicy(max_retries=source.max_retries),
        auth_headers=credentials.headers,
        auth_params=credentials.params,
        secrets=source_secrets(source),
        transport=transport,
    )


class SourceRunner:
    """One source. ``mode="backfill"`` reads ``[since, until]`` with its own checkpoints and transactional ids."""

    def __init__(
        self,
        config: Config,
        source: Any,
        *,
        clock: Clock = utcnow,
        mode: str = "connect",
        since: datetime | None = None,
        until: datetime | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        streams: tuple[str, ...] | None = None,
        on_progress: Callable[[str, PassResult, Any], None] | None = None,
    ) -> None:
        if mode not in ("connect", "backfill"):
            raise ValueError(mode)
        self.config = config
        self.source = source
        self.clock = clock
        self.mode = mode
        self.since = since
        self.until = until
        self.client = make_client(source, retry=retry, transport=transport)
        kinds = PROVIDERS[source.provider].streams
        if mode == "backfill":
            kinds = tuple(k for k in kinds if k.supports_backfill)
        if streams is not None:
            kinds = tuple(k for k in kinds if k.name in streams)
        self.streams = [k(source, self.client) for k in kinds]
        #: How checkpoints are kept: as is, or inside the backfill's window under their own key.
        self.cursor_form: CursorForm = BackfillCursor(since, until) if mode == "backfill" else LiveCursor()
        self.runners: list[StreamRunner] = []
        self.on_progress = on_progress
        self.prefix = config.kafka.topic_prefix
        self.kafka = config.kafka

    def _checkpoint_stream(self, stream: Stream) -> str:
        return f"{stream.name}.backfill" if self.mode == "backfill" else stream.name

    async def start(self) -> None:
        role = "backfill" if self.mode == "backfill" else "connector"
        # Publishers first: initialising a transactional id aborts whatever a crashed predecessor left
        # open, so the state read below is not held back by it (and cannot see it).
        publishers = {}
        for stream in self.streams:
            publisher = Publisher(self.kafka, transactional_id(self.prefix, self.source.name, stream.name, role=role))
            await publisher.start()
            publishers[stream.name] = publisher
        self._publishers = publishers
        cursors = await read_checkpoints(self.kafka, self.prefix, self.source.name)
        now = self.clock()
        # Every re-read starts at or after this provider time; events that old or newer must be in the index.
        earliest = now - self.source.lookback
        if self.mode == "backfill" and self.since is not None:
            earliest = min(earliest, self.since)
        form = self.cursor_form
        for stream in self.streams:
            at = stream.cursor_time(form.unwrap(cursors.get(self._checkpoint_stream(stream))))
            if at is not None:
                earliest = min(earliest, at)
        horizon = utcnow() - (now - earliest) - timedelta(days=1)
        event_index = EventIndex()
        if any(s.emits_events for s in self.streams):
            event_index = await load_event_index(self.kafka, self.prefix, self.source.name, horizon)
        specs = {spec.name: spec for s in self.streams for spec in s.meta_topics}
        change_indexes: dict[str, ChangeIndex] = {}
        for name, spec in specs.items():
            change_indexes[name] = await load_change_index(self.kafka, self.prefix, spec, self.source.name)
        dlq_seen = await load_dlq_digests(self.kafka, self.prefix, self.source.name)
        for stream in self.streams:
            cursor = cursors.get(self._checkpoint_stream(stream))
            runner = StreamRunner(
                stream,
                publisher=publishers[stream.name],
                prefix=self.prefix,
                clock=self.clock,
                cursor=cursor,
                event_index=event_index,
                change_indexes=change_indexes,
                dlq_seen=dlq_seen,
                batch_size=self.config.connect.batch_size,
                checkpoint_stream=self._checkpoint_stream(stream),
                on_progress=(lambda r, c, _n=stream.name: self.on_progress(_n, r, c)) if self.on_progress else None,
                cursor_form=form,
            )
            self.runners.append(runner)
        metrics.SOURCE_UP.labels(self.source.provider, self.source.name).set(1)
        metrics.AUTH_FAILURES.labels(self.source.provider, self.source.name)  # 0 until a 401/403

    # -- running ---------------------------------------------------------------------------------

    def plan_for(self, runner: StreamRunner, kind: PassKind | None = None) -> Plan | None:
        if self.mode == "backfill":
            if runner.done:  # this window was read to its end (now, or by an earlier run)
                return None
            return Plan(PassKind.BACKFILL, self.clock(), since=self.since, until=self.until)
        if kind is PassKind.POLL:
            return None if runner.stream.use_reconcile_only else Plan.poll(self.clock())
        if kind is PassKind.RECONCILE:
            return Plan.reconcile(self.clock(), runner.stream.lookback)
        return runner.next_plan()

    async def run_once(self, kind: PassKind | str | None = None) -> dict[str, PassResult]:
        """One pass of every stream (``kind``: poll, reconcile, or None for what is due)."""
        kind = None if kind is None else PassKind(kind)
        results: dict[str, PassResult] = {}
        for runner in self.runners:
            plan = self.plan_for(runner, kind)
            if plan is None:
                continue
            results[runner.stream.name] = await self._pass(runner, plan)
        return results

    async def _pass(self, runner: StreamRunner, plan: Plan) -> PassResult:
        result = await runner.run_pass(plan)
        runner.mark(plan)
        log.info("%s/%s %s", self.source.name, runner.stream.name, describe(result))
        return result

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Poll every stream until ``stop`` is set; an auth error stops this source (and only it)."""
        tasks = [
            asyncio.create_task(self._loop(r, stop), name=f"{self.source.name}/{r.stream.name}") for r in self.runners
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                exc = task.exception()
                if isinstance(exc, AuthError):
                    metrics.SOURCE_UP.labels(self.source.provider, self.source.name).set(0)
                    log.error("%s: source stopped: %s", self.source.name, exc)
                    raise exc
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, runner: StreamRunner, stop: asyncio.Event) -> None:
        name = f"{self.source.name}/{runner.stream.name}"
        interval = self.source.poll_interval.total_seconds()
        up = metrics.STREAM_UP.labels(*runner.labels)
        up.set(1)
        try:
            await self._poll(runner, stop, name, interval)
        finally:
            up.set(0)

    async def _poll(self, runner: StreamRunner, stop: asyncio.Event, name: str, interval: float) -> None:
        while not stop.is_set():
            plan = self.plan_for(runner)
            if plan is not None:
                try:
                    await self._pass(runner, plan)
                except AuthError:
                    raise
                except (PaginationError, ProducerFenced) as exc:
                    # Going on would skip records (or fight another copy of this poller): stop this stream, loudly.
                    log.error("%s: stream stopped: %s", name, exc)
                    return
                except ConnectorError as exc:
                    log.error("%s: pass failed, cursor kept, retrying next poll: %s", name, exc)
                except KafkaError as exc:
                    log.error("%s: Kafka error, transaction aborted, retrying next poll: %r", name, exc)
            elif self.mode == "backfill":
                return
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def close(self) -> None:
        for publisher in getattr(self, "_publishers", {}).values():
            await publisher.stop()
        await self.client.aclose()


async def run_connect(
    config: Config,
    stop: asyncio.Event,
    *,
    clock: Clock = utcnow,
    names: list[str] | None = None,
    retry: RetryPolicy | None = None,
) -> int:
    """Run every configured source until ``stop``; 0 if all ran to the end, 1 if any source stopped on an error."""
    sources = [s for s in config.sources if names is None or s.name in names]
    if not sources:
        log.error("no sources configured")
        return 1
    failed = 0

    async def one(source: Any) -> None:
        nonlocal failed
        runner = SourceRunner(config, source, clock=clock, retry=retry)
        try:
            await runner.start()
            await runner.run_forever(stop)
        except AuthError:
            failed += 1
        except Exception:
            failed += 1
            metrics.SOURCE_UP.labels(source.provider, source.name).set(0)
            log.exception("%s: source stopped by an unexpected error", source.name)
        finally:
            await runner.close()

    await asyncio.gather(*(one(s) for s in sources))
    return 1 if failed else 0


def parse_cli_time(value: str) -> datetime:
    """``2026-11-01`` or an ISO 8601 timestamp (UTC when naive)."""
    return parse_timestamp(value if "T" in value or " " in value else value + "T00:00:00")
