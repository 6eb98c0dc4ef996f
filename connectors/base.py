"""The poll loop, written once: read pages, normalise, de-duplicate, publish with the cursor.

A provider module declares a ``Stream`` subclass (what to request, how to
page, a pure ``normalise``); ``StreamRunner`` does everything else:

1. ``stream.read(cursor, plan)`` yields ``Page``s (raw records + the cursor after them);
2. each record goes through ``stream.normalise_record``; a ``NormalisationError``
   sends the raw record to the DLQ with the reason, and the loop goes on;
3. facts already on the topic (``EventIndex``) and unchanged metadata
   (``ChangeIndex``) are dropped;
4. events, DLQ and metadata records and the new checkpoint are committed in
   one Kafka transaction (``Publisher``); only then do the in-memory cursor
   and indexes move.

Passes (``PassKind``): ``poll`` (from the cursor), ``reconcile`` (the trailing
``lookback`` window, for streams whose records change after creation) and
``backfill`` (an explicit window, with its own checkpoint and transactional id);
``cursors.pass_start`` is where each of them starts.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from mailpulse.connectors import metrics
from mailpulse.connectors.cursors import CursorForm, LiveCursor, PassKind
from mailpulse.connectors.dedupe import ChangeIndex, EventIndex, content_digest
from mailpulse.connectors.errors import NormalisationError
from mailpulse.connectors.http import ApiClient
from mailpulse.connectors.publisher import OutRecord, Publisher
from mailpulse.connectors.records import CalendarEvent, UsageReport
from mailpulse.topics.contracts import (
    CALENDAR,
    CAMPAIGNS,
    CHECKPOINTS,
    CONTACTS,
    DLQ,
    EVENTS,
    USAGE,
    TopicSpec,
    topic_name,
)
from mailpulse.topics.events import EmailEvent, encode_event
from mailpulse.topics.records import CampaignMetadata, Checkpoint, ContactRecord, DeadLetter

__all__ = [
    "Clock",
    "Plan",
    "PassKind",
    "Page",
    "Tombstone",
    "Stream",
    "StreamRunner",
    "PassResult",
    "utcnow",
    "dlq_digest",
    "describe",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Plan:
    kind: PassKind
    #: The provider clock when the pass started: no cursor or window goes past it (the signpost).
    now: datetime
    #: Start of the window to read (reconcile: now - lookback; backfill: --since). None for poll.
    since: datetime | None = None
    #: End of the window (backfill: --until); None: ``now``.
    until: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", PassKind(self.kind))  # "poll" (tests, CLI) is PassKind.POLL

    @classmethod
    def poll(cls, now: datetime) -> Plan:
        return cls(PassKind.POLL, now)

    @classmethod
    def reconcile(cls, now: datetime, lookback: timedelta) -> Plan:
        return cls(PassKind.RECONCILE, now, since=now - lookback)

    @property
    def end(self) -> datetime:
        return min(self.until, self.now) if self.until is not None else self.now

    def window_start(self, lookback: timedelta) -> datetime:
        """Where this pass's window begins: ``since``, or for a poll the trailing ``lookback``."""
        return self.since if self.since is not None else self.now - lookback


@dataclass(slots=True)
class Page:
    records: Sequence[Any]
    #: The checkpoint once these records are published; None keeps the previous one.
    cursor: Any = None


@dataclass(frozen=True, slots=True)
class Tombstone:
    """Deletes ``key`` from a compacted topic."""

    spec: TopicSpec
    key: str


Output = EmailEvent | CampaignMetadata | ContactRecord | UsageReport | CalendarEvent | Tombstone
_META_TOPICS: dict[type, TopicSpec] = {
    CampaignMetadata: CAMPAIGNS,
    ContactRecord: CONTACTS,
    UsageReport: USAGE,
    CalendarEvent: CALENDAR,
}


class Stream:
    """One provider endpoint. Subclasses set the class attributes and implement ``read`` and ``normalise_record``."""

    provider: ClassVar[str]
    name: ClassVar[str]
    #: Records change after creation: re-read the trailing ``lookback`` every ``reconcile_interval``.
    is_mutable: ClassVar[bool] = False
    #: A full scan, run only on reconcile ticks (and at start), not every poll.
    use_reconcile_only: ClassVar[bool] = False
    #: ``mailpulse backfill`` can re-read a window of history.
    supports_backfill: ClassVar[bool] = True
    #: Compacted topics whose de-dup index this stream needs.
    meta_topics: ClassVar[tuple[TopicSpec, ...]] = ()
    #: Whether it publishes email events (and so needs the event index).
    emits_events: ClassVar[bool] = True

    def __init__(self, source: Any, client: ApiClient) -> None:
        self.source = source
        self.client = client
        self.source_name: str = source.name
        self.lookback: timedelta = source.lookback

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        """Yield pages for this pass, starting from ``cursor`` (None: never polled)."""
        raise NotImplementedError
        yield  # pragma: no cover

    def normalise_record(self, raw: Any, observed_at: datetime) -> Sequence[Output]:
        """Raw record -> outputs; raise ``NormalisationError`` naming the field when it cannot."""
        raise NotImplementedError

    def dlq_payload(self, raw: Any) -> Any:
        """What goes to the DLQ as ``raw`` for a record that failed (the provider's record as received)."""
        return raw

    def cursor_time(self, cursor: Any) -> datetime | None:
        """The provider time the cursor stands at, for the lag metric."""
        return None

    def finish_pass(self, outputs: list[Output], plan: Plan, known: dict[str, ChangeIndex]) -> Iterable[Output]:
        """Outputs to add once the pass has read everything (e.g. tombstones for deleted entries)."""
        return ()

    def after_commit(self, outputs: Sequence[Output]) -> None:
        """Called with a batch's outputs once they are on the topic (changed or not): the place for side effects such as gauges."""

    async def request(
        self, path: str, params: dict[str, Any] | None = None, *, method: str = "GET", parse: Any = None
    ) -> Any:
        return await self.client.request(method, path, stream=self.name, params=params, parse=parse)


@dataclass
class PassResult:
    kind: PassKind
    records: int = 0
    events: int = 0
    duplicates: int = 0
    dlq: int = 0
    meta: int = 0
    transactions: int = 0
    cursor: Any = None


@dataclass
class _Batch:
    records: list[OutRecord] = field(default_factory=list)
    events: dict[str, float] = field(default_factory=dict)
    changes: dict[tuple[str, str], bytes | None] = field(default_factory=dict)
    dlq: set[bytes] = field(default_factory=set)
    n_events: int = 0
    #: Events by type (EventType values): the published-events metric's type label.
    n_by_type: dict[str, int] = field(default_factory=dict)
    n_dlq: int = 0
    n_meta: dict[str, int] = field(default_factory=dict)
    cursor: Any = None
    cursor_changed: bool = False
    #: Every output normalised into this batch, kept only for a stream with ``after_commit``.
    outputs: list[Output] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


class StreamRunner:
    """Runs one stream of one source: passes, transactions, metrics, schedule."""

    def __init__(
        self,
        stream: Stream,
        *,
        publisher: Publisher,
        prefix: str,
        clock: Clock,
        cursor: Any,
        event_index: EventIndex,
        change_indexes: dict[str, ChangeIndex],
        batch_size: int = 5000,
        dlq_seen: set[bytes] | None = None,
        checkpoint_stream: str | None = None,
        on_progress: Callable[[PassResult, Any], None] | None = None,
        cursor_form: CursorForm | None = None,
    ) -> None:
        self.stream = stream
        self.publisher = publisher
        self.prefix = prefix
        self.clock = clock
        #: How the cursor is stored in the checkpoint (backfill: inside its window).
        self.cursor_form: CursorForm = cursor_form if cursor_form is not None else LiveCursor()
        self.cursor = self.cursor_form.adopt(cursor)
        self.event_index = event_index
        self.change_indexes = change_indexes
        self.batch_size = batch_size
        #: Digests of the bad records already in the DLQ: a re-read does not file them again.
        self.dlq_seen = dlq_seen if dlq_seen is not None else set()
        self.checkpoint_stream = checkpoint_stream or stream.name
        self.on_progress = on_progress
        self.labels = (stream.provider, stream.source_name, stream.name)
        # Series that exist from the start at 0, so increase() and rate() read 0, not "no data",
        # until the first dead letter or aborted transaction (alerts and dashboards query them).
        metrics.DLQ_RECORDS.labels(*self.labels)
        metrics.DUPLICATES_SKIPPED.labels(*self.labels)
        for outcome in ("committed", "aborted"):
            metrics.TRANSACTIONS.labels(*self.labels, outcome)
        self._topics = {
            spec.name: topic_name(spec, prefix) for spec in (EVENTS, DLQ, CHECKPOINTS, *_META_TOPICS.values())
        }
        self.last_reconcile: float | None = None
        self._after_commit = type(stream).after_commit is not Stream.after_commit

    @property
    def done(self) -> bool:
        """The committed checkpoint marks a finished backfill: nothing is left to read."""
        return self.cursor_form.is_done(self.cursor)

    # -- one pass -----------------------------------------------------------------

    async def run_pass(self, plan: Plan) -> PassResult:
        stream = self.stream
        result = PassResult(kind=plan.kind, cursor=self.cursor)
        batch = _Batch(cursor=self.cursor)
        all_outputs: list[Output] = []
        keep_outputs = type(stream).finish_pass is not Stream.finish_pass
        # Reconcile passes re-read old records: the cursor moves only when the pass completes.
        intermediate = plan.kind is not PassKind.RECONCILE
        form = self.cursor_form
        last_cursor: Any = None
        started = time.monotonic()
        async for page in stream.read(form.unwrap(self.cursor), plan):
            observed = utcnow()
            n = len(page.records)
            result.records += n
            metrics.RECORDS_READ.labels(*self.labels).inc(n)
            for raw in page.records:
                try:
                    outputs = stream.normalise_record(raw, observed)
                except NormalisationError as exc:
                    self._add_dlq(batch, raw, exc.reason, observed)
                    continue
                except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as exc:
                    # A shape the provider module did not foresee (a list where a status
                    # string belongs, a counter as text): one record must not stall the
                    # source on every pass. Filed like any bad record, with the error.
                    log.exception("%s/%s: unexpected error normalising a record", stream.source_name, stream.name)
                    self._add_dlq(batch, raw, f"unexpected record shape: {type(exc).__name__}: {exc}"[:500], observed)
                    continue
                if keep_outputs:
                    all_outputs.extend(outputs)
                if self._after_commit:
                    batch.outputs.extend(outputs)
                self._add_outputs(batch, outputs, result)
            if page.cursor is not None:
                last_cursor = page.cursor
                if intermediate:
                    batch.cursor, batch.cursor_changed = form.wrap(page.cursor), True
            if len(batch) >= self.batch_size:
                await self._commit(batch, result)
                self._committed(batch)
                batch = _Batch(cursor=self.cursor)
                if self.on_progress is not None:
                    self.on_progress(result, self.cursor)
        if keep_outputs:
            extra = list(stream.finish_pass(all_outputs, plan, self.change_indexes))
            self._add_outputs(batch, extra, result)
        if last_cursor is not None or plan.kind is PassKind.BACKFILL:
            batch.cursor, batch.cursor_changed = (
                form.wrap(last_cursor if last_cursor is not None else form.unwrap(self.cursor), done=True),
                True,
            )
        if len(batch) or (batch.cursor_changed and batch.cursor != self.cursor):
            await self._commit(batch, result)
        # Nothing left to commit is on the topic already: committed as far as side effects go.
        self._committed(batch)
        result.cursor = self.cursor
        metrics.POLL_DURATION.labels(*self.labels, plan.kind).observe(time.monotonic() - started)
        metrics.LAST_SUCCESS.labels(*self.labels).set(time.time())
        at = stream.cursor_time(form.unwrap(self.cursor))
        if at is not None:
            metrics.CURSOR_LAG.labels(*self.labels).set(max(0.0, (plan.now - at).total_seconds()))
        if self.on_progress is not None:
            self.on_progress(result, self.cursor)
        return result

    def _committed(self, batch: _Batch) -> None:
        if self._after_commit and batch.outputs:
            self.stream.after_commit(batch.outputs)

    def _add_dlq(self, batch: _Batch, raw: Any, reason: str, observed: datetime) -> None:
        stream = self.stream
        payload = stream.dlq_payload(raw)
        digest = dlq_digest(stream.name, payload)
        if digest in self.dlq_seen or digest in batch.dlq:
            return
        batch.dlq.add(digest)
        letter = DeadLetter(stream.source_name, stream.provider, stream.name, reason, payload, observed)
        try:
            value = orjson.dumps(letter.to_dict())
        except TypeError:  # raw is not JSON-serialisable: keep its text
            value = orjson.dumps({**letter.to_dict(), "raw": repr(raw)})
        batch.records.append(OutRecord(self._topics[DLQ.name], letter.key.encode(), value))
        batch.n_dlq += 1
        log.warning("%s/%s: record sent to the DLQ: %s", stream.source_name, stream.name, reason)

    def _add_outputs(self, batch: _Batch, outputs: Iterable[Output], result: PassResult) -> None:
        index = self.event_index
        pending = batch.events
        events_topic = self._topics[EVENTS.name]
        append = batch.records.append
        dups = metrics.DUPLICATES_SKIPPED.labels(*self.labels)
        by_type = batch.n_by_type
        for out in outputs:
            if type(out) is EmailEvent:
                eid = out.event_id
                if eid in index or eid in pending:
                    result.duplicates += 1
                    dups.inc()
                    continue
                pending[eid] = out.occurred_at.timestamp()
                append(OutRecord(events_topic, out.key.encode(), encode_event(out)))
                batch.n_events += 1
                t = out.type.value
                by_type[t] = by_type.get(t, 0) + 1
                continue
            if isinstance(out, Tombstone):
                spec, key, value_dict = out.spec, out.key, None
            else:
                spec = _META_TOPICS[type(out)]
                key, value_dict = out.key, out.to_dict()
            digest = None if value_dict is None else content_digest(value_dict)
            changes = self.change_indexes.setdefault(spec.name, ChangeIndex())
            ck = (spec.name, key)
            if ck in batch.changes:
                if batch.changes[ck] == digest:
                    continue
            elif (key not in changes) if digest is None else not changes.changed(key, digest):
                result.duplicates += 1
                dups.inc()
                continue
            batch.changes[ck] = digest
            append(
                OutRecord(
                    self._topics[spec.name], key.encode(), None if value_dict is None else orjson.dumps(value_dict)
                )
            )
            batch.n_meta[spec.name] = batch.n_meta.get(spec.name, 0) + 1

    async def _commit(self, batch: _Batch, result: PassResult) -> None:
        stream = self.stream
        records = list(batch.records)
        if batch.cursor_changed:
            cp = Checkpoint(stream.source_name, stream.provider, self.checkpoint_stream, batch.cursor, utcnow())
            records.append(OutRecord(self._topics[CHECKPOINTS.name], cp.key.encode(), orjson.dumps(cp.to_dict())))
        try:
            await self.publisher.commit(records)
        except BaseException:
            metrics.TRANSACTIONS.labels(*self.labels, "aborted").inc()
            raise
        metrics.TRANSACTIONS.labels(*self.labels, "committed").inc()
        # Only now is the batch on the topic: move the cursor and the indexes.
        self.event_index.update(batch.events.items())
        self.dlq_seen |= batch.dlq
        for (spec_name, key), digest in batch.changes.items():
            self.change_indexes.setdefault(spec_name, ChangeIndex()).set(key, digest)
        if batch.cursor_changed:
            self.cursor = batch.cursor
        result.transactions += 1
        result.events += batch.n_events
        result.dlq += batch.n_dlq
        result.meta += sum(batch.n_meta.values())
        for event_type, n in batch.n_by_type.items():
            metrics.EVENTS_PUBLISHED.labels(*self.labels, event_type).inc(n)
        if batch.n_dlq:
            metrics.DLQ_RECORDS.labels(*self.labels).inc(batch.n_dlq)
        for topic, n in batch.n_meta.items():
            metrics.RECORDS_PUBLISHED.labels(*self.labels, topic).inc(n)

    # -- schedule -----------------------------------------------------------------

    def next_plan(self, *, force_reconcile: bool = False) -> Plan | None:
        """The pass due now, or None when a reconcile-only stream has nothing due."""
        stream = self.stream
        now = self.clock()
        interval = stream.source.reconcile_interval.total_seconds()
        due = self.last_reconcile is None or time.monotonic() - self.last_reconcile >= interval
        if (stream.is_mutable or stream.use_reconcile_only) and (due or force_reconcile):
            return Plan.reconcile(now, stream.lookback)
        if stream.use_reconcile_only:
            return None
        return Plan.poll(now)

    def mark(self, plan: Plan) -> None:
        if plan.kind is PassKind.RECONCILE:
            self.last_reconcile = time.monotonic()
        horizon = plan.now - self.stream.lookback - timedelta(days=1)
        self.event_index.evict_before(horizon.timestamp())


def dlq_digest(stream: str, payload: Any) -> bytes:
    """Identity of a dead letter: its stream and raw payload (not the time it was seen)."""
    try:
        body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        body = repr(payload).encode()
    return hashlib.blake2b(stream.encode() + b"\x1f" + body, digest_size=12).digest()


def describe(result: PassResult) -> str:
    return (
        f"{result.kind}: {result.records} records read, {result.events} events published, "
        f"{result.duplicates} already published, {result.meta} metadata, {result.dlq} to DLQ, "
        f"{result.transactions} transactions"
    )
