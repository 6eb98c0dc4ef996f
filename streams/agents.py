"""The worker's agents and timers: thin I/O around the pure reducers and aggregates.

Every agent runs at concurrency 1 (faust-streaming/faust #606) and at least
once; exactness comes from state that a replayed event cannot change:

* stage 1 merges an event into its message's fact set (a duplicate adds
  nothing, so nothing is written or counted);
* the partition views are rebuilt from the message table whenever a
  partition is (re)assigned, so events replayed after a crash find their facts
  already merged;
* stage 2 keeps the newest partial per source partition, by version, so a
  republished or stale partial changes nothing.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from operator import itemgetter
from typing import Any, TypeVar

import orjson

from mailpulse.streams.aggregates import (
    CONTACT_HOURLY_RETENTION_MS,
    HOURLY_RETENTION_MS,
    Partial,
    PartitionView,
    decode_aggregate,
    decode_bundle,
    decode_value,
    encode_aggregate,
    encode_bundle,
    encode_value,
    merge_partial,
)
from mailpulse.streams.app import Streams
from mailpulse.streams.decode import decode_record
from mailpulse.streams.faust_internals import bulk_agent
from mailpulse.streams.pacing import Pacer
from mailpulse.streams.query import campaign_answer, contact_answer
from mailpulse.streams.reducers import Fact, MessageState, decode_state, encode_state, merge_facts
from mailpulse.streams.rollups import Rollup, campaign_group, contact_group
from mailpulse.streams.sealing import (
    CAMPAIGN_BASE,
    CONTACT_BASE,
    MARKER,
    MESSAGES_START,
    base_key,
    decode_base,
    last_fact_ms,
    marker_expired,
    seal_writes,
)
from mailpulse.streams.spill import SpillingDict
from mailpulse.streams.tables import BatchedSender, partition_of
from mailpulse.topics.events import SchemaError
from mailpulse.topics.records import DeadLetter, encode_record

__all__ = ["install_agents", "process_events", "process_partials", "sync_views"]

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Partials per bundle record (keeps records well under the broker's 1 MiB limit).
BUNDLE_MAX = 500
#: Stage 2 decodes and merges at most about this many partials at a time (memory, see process_partials).
PARTIALS_PER_MERGE = 2_500
#: Changed stage-2 keys whose merged value is kept for publish_stats; beyond, it reads the table.
DIRTY_VALUES_MAX = 5_000
#: Contacts one view turns into partials between two checks of the pacer (streams/pacing.py).
TAKE_SLICE = 500
#: After an assignment, stage-2 keys whose answer one publish tick sends again (per kind), and how
#: many it reads from the table at once.
REPUBLISH_PER_TICK = 20_000
REPUBLISH_SLICE = 500


def _now_ms() -> int:
    return int(time.time() * 1000)


def _dead_letter(key: bytes | None, value: bytes | None, reason: str) -> tuple[bytes, bytes]:
    source = (key or b"").decode("utf-8", "replace").partition(":")[0] or "unknown"
    try:
        raw: Any = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        raw = (value or b"").decode("utf-8", "replace")[:10_000]
    provider = raw.get("provider") if isinstance(raw, dict) and isinstance(raw.get("provider"), str) else "unknown"
    letter = DeadLetter(
        source=source,
        provider=provider,
        stream="streams.events",
        reason=reason,
        raw=raw,
        observed_at=datetime.now(UTC),
    )
    return source.encode(), encode_record(letter)


#: Most contact partials one view publishes per tick: after an assignment every contact of the
#: partition is to be published, and one list of them all would cost memory in proportion to them.
CONTACTS_PER_PUBLISH = 5_000
#: Under worker.data_dir: the contact spills of the partition views (disposable, removed at start).
VIEWS_DIR = "views"


def view_for(s: Streams, partition: int) -> PartitionView:
    view = s.views.get(partition)
    if view is None:
        w = s.config.worker
        contacts = None
        if w.contact_cache_size:
            contacts = SpillingDict(
                w.data_dir / VIEWS_DIR / f"contacts-{partition}",
                w.contact_cache_size,
                encode_aggregate,
                decode_aggregate,
                options=s.memory.options if s.memory else None,
            )
        view = PartitionView(partition, epoch=_now_ms(), contacts=contacts)
        now = _now_ms()

        def bases() -> Any:
            # The sealed messages' sums: one record per campaign or contact, not one per message.
            for prefix, kind in ((CAMPAIGN_BASE, "campaign"), (CONTACT_BASE, "contact")):
                for key, raw in s.messages.prefixed(partition, prefix):
                    yield kind, key[len(prefix) :].decode(), decode_base(raw, now, kind)

        def states() -> Any:
            # Not cached: the cache would keep the last 4,096 in key order, no likelier to change
            # than any other; it fills with the states events touch.
            for _, value in s.messages.items(partition, start=MESSAGES_START):
                yield decode_state(value)

        view.rebuild(states(), now, bases())
        view.markers = next(s.messages.prefixed(partition, MARKER), None) is not None
        s.views[partition] = view
        s.metrics.rebuilds.inc()
        s.metrics.partitions.set(len(s.views))
    return view


async def process_events(s: Streams, records: list[Any]) -> None:
    """Stage 1: merge a batch of event records into message states and the partition views."""
    # Sealing (seal_expired) reads and deletes message states: never in the middle of a batch.
    async with s.stage1_lock:
        await _process_events(s, records)


async def _process_events(s: Streams, records: list[Any]) -> None:
    started = time.perf_counter()
    # Pausing anywhere here is safe: stage 1 is held (s.stage1_lock), a rebalance waits for
    # the batch to be acked, and a state is cached only once the table holds it.
    pacer = Pacer()
    by_partition: dict[int, dict[bytes, list[Fact]]] = defaultdict(lambda: defaultdict(list))
    dead: list[tuple[bytes, bytes]] = []
    for msg in records:
        if pacer.due():
            await pacer.pause()
        value = msg.value
        if value is None:
            dead.append(_dead_letter(msg.key, None, "invalid event: $: null value (tombstone) on the events topic"))
            continue
        try:
            fact = decode_record(value)
        except (SchemaError, ValueError, TypeError) as exc:
            dead.append(_dead_letter(msg.key, value, f"invalid event: {exc}"))
            continue
        except Exception as exc:  # noqa: BLE001 - one bad record must not crash-loop the worker
            log.exception("unexpected error decoding an event at %s[%s]@%s", msg.topic, msg.partition, msg.offset)
            dead.append(_dead_letter(msg.key, value, f"invalid event: undecodable ({type(exc).__name__}: {exc})"))
            continue
        key = msg.key
        # The record key must be the {source}:{message_id} of its value.
        if key is None or key.decode("utf-8", "replace") != f"{fact.source}:{fact.message_id}":
            dead.append(_dead_letter(msg.key, value, "record key does not match {source}:{message_id} of its value"))
            continue
        by_partition[msg.partition][key].append(fact)
    new = dup = sealed = 0
    now = _now_ms()
    #: provider -> (occurred_ms, observed_ms) of the events applied: the freshness histogram.
    applied: dict[str, tuple[list[int], list[int]]] = {}
    get = s.messages.get
    # No ownership filter here: during a rebalance the consumer's assignment is
    # briefly empty, and skipping (yet acking) a batch of a partition this worker
    # keeps lost events (seen in the two-worker test). Merging is idempotent.
    for partition, messages in by_partition.items():
        view = view_for(s, partition)
        cached = view.cached_state
        writes: list[tuple[bytes, bytes]] = []
        changed: list[tuple[bytes, MessageState]] = []
        for key, facts in messages.items():
            if pacer.due():
                await pacer.pause()
            old = cached(key)
            if old is None:
                raw = get(partition, key)
                if raw is not None:
                    old = decode_state(raw)
                    view.cache_state(key, old)
                elif view.markers and get(partition, MARKER + key) is not None:
                    # A sealed message: its figures are final (the rule of streams/sealing.py).
                    sealed += len(facts)
                    continue
            state = merge_facts(old, facts)
            if state is old or state is None:
                dup += len(facts)
                continue
            new += len(facts)
            times = applied.get(state.provider)
            if times is None:
                times = applied[state.provider] = ([], [])
            times[0].extend(map(_OCCURRED_MS, facts))
            times[1].extend(map(_OBSERVED_MS, facts))
            writes.append((key, encode_state(state)))
            changed.append((key, state))
            view.apply(old, state, now)
        await s.messages.put_many(partition, writes)
        # Cache what the table now holds (only once it does).
        for key, state in changed:
            view.cache_state(key, state)
        s.metrics.state_writes.labels("messages").inc(len(writes))
    for key, value in dead:
        await s.app.producer.send(s.dlq_name, key, value, None, None, None)
    for provider, (occurred, observed) in applied.items():
        s.freshness.observe(provider, now, occurred, observed)
    m = s.metrics
    m.events.labels("new").inc(new)
    m.events.labels("duplicate").inc(dup)
    m.events.labels("invalid").inc(len(dead))
    m.events.labels("sealed").inc(sealed)
    m.batch_seconds.labels("messages").observe(time.perf_counter() - started)


async def publish_partials(s: Streams) -> None:
    """Send every changed partial aggregate (absolute values) to the partials topics.

    Partials are bundled: one record per (source partition, target partition)
    carries up to ``BUNDLE_MAX`` changed keys that live in the target partition,
    so stage 2 pays Faust's per-record cost once per bundle, not once per key.
    A view's partials are made ``TAKE_SLICE`` contacts at a time, pausing for
    the loop between slices; a rebalance meanwhile ends the pass (whoever owns
    a partition next republishes all of it, see sync_views).
    """
    pacer = Pacer()
    generation = s.generation
    now = _now_ms()
    for view in list(s.views.values()):
        if s.generation != generation:
            return
        view.expire(now)
        bundles = _Bundles(s, view.partition)
        budget = CONTACTS_PER_PUBLISH
        while True:
            limit = min(TAKE_SLICE, budget)
            campaigns, contacts = view.take_dirty(limit)
            budget -= limit
            await bundles.add("campaign", campaigns)
            await bundles.add("contact", contacts)
            if budget <= 0 or not view.dirty_contacts:
                break
            if pacer.due():
                await pacer.pause()
                if s.generation != generation:
                    return
        await bundles.flush()


class _Bundles:
    """The partials of one view on their way to the partials topics, a bundle per target partition."""

    def __init__(self, s: Streams, partition: int) -> None:
        self.send = s.app.producer.send
        self.source = b"p%d" % partition
        self.topics = {"campaign": s.campaign_partials.get_topic_name(), "contact": s.contact_partials.get_topic_name()}
        self.counter = s.metrics.partials
        self.open: dict[tuple[str, int], list[tuple[str, Partial]]] = defaultdict(list)

    async def add(self, kind: str, items: list[tuple[str, Partial]]) -> None:
        for key, partial in items:
            target = partition_of(key.encode())
            bundle = self.open[kind, target]
            bundle.append((key, partial))
            if len(bundle) >= BUNDLE_MAX:
                del self.open[kind, target]
                await self._send(kind, target, bundle)

    async def flush(self) -> None:
        for (kind, target), bundle in list(self.open.items()):
            await self._send(kind, target, bundle)
        self.open.clear()

    async def _send(self, kind: str, target: int, bundle: list[tuple[str, Partial]]) -> None:
        await self.send(self.topics[kind], self.source, encode_bundle(bundle), target, None, None)
        self.counter.labels(kind).inc(len(bundle))


#: Message states one sealing step reads while holding stage 1 (then events get their turn).
SEAL_SCAN = 5_000
#: Messages sealed in one changelog record batch (their bases, markers and tombstones).
SEAL_BATCH = 200
#: Most key and value bytes of one seal batch: well inside the producer's 1 MiB batches.
SEAL_BYTES = 512 * 1024
#: Per-record overhead in a Kafka record batch, counted against SEAL_BYTES (generous).
_RECORD_OVERHEAD = 64


def _ms(duration: Any) -> int:
    return int(duration.total_seconds() * 1000)


async def seal_expired(s: Streams) -> None:
    """One sealing pass over the owned partitions: drop expired markers, seal messages past the horizon.

    The pass reads ``SEAL_SCAN`` states at a time, holding stage 1 off meanwhile (a state must
    not change between being read and being sealed), and lets it in between.
    """
    w = s.config.worker
    horizon = _ms(w.message_horizon)
    if horizon <= 0:
        return
    pacer = Pacer()
    for partition in sorted(s.views):
        view = s.views.get(partition)
        if view is None:
            continue
        await _drop_expired_markers(s, view, partition, _ms(w.sealed_marker_ttl))
        cursor = MESSAGES_START
        while cursor is not None:
            async with s.stage1_lock:
                if s.views.get(partition) is not view:
                    break  # revoked meanwhile: the new owner seals it
                now = _now_ms()
                batch = list(islice(s.messages.items(partition, start=cursor), SEAL_SCAN))
                cursor = batch[-1][0] + b"\x00" if len(batch) == SEAL_SCAN else None
                due = []
                for key, raw in batch:
                    if pacer.due():
                        await pacer.pause()  # stage 1 stays held: the states read cannot change
                    state = decode_state(raw)
                    if last_fact_ms(state) < now - horizon:
                        due.append((key, state))
                for i in range(0, len(due), SEAL_BATCH):
                    await _seal(s, view, partition, due[i : i + SEAL_BATCH], now)
            await asyncio.sleep(0)


async def _seal(s: Streams, view: PartitionView, partition: int, due: Sequence[tuple[bytes, Any]], now: int) -> None:
    def lookup(kind: str, key: str) -> Any:
        raw = s.messages.get(partition, base_key(kind, key))
        return None if raw is None else decode_base(raw, now, kind)

    writes = seal_writes(due, lookup, now)
    size = sum(len(k) + len(v or b"") + _RECORD_OVERHEAD for k, v in writes)
    if size > SEAL_BYTES and len(due) > 1:
        half = len(due) // 2
        await _seal(s, view, partition, due[:half], now)
        await _seal(s, view, partition, due[half:], now)
        return
    await s.messages.put_many(partition, writes, atomic=True)
    for key, _ in due:
        view.states.pop(key, None)
    view.markers = True
    s.metrics.sealed.inc(len(due))
    s.metrics.state_writes.labels("messages").inc(len(writes))


async def _drop_expired_markers(s: Streams, view: PartitionView, partition: int, ttl: int) -> None:
    if ttl <= 0:
        return
    async with s.stage1_lock:
        if s.views.get(partition) is not view:
            return
        now = _now_ms()
        expired = [(k, None) for k, v in s.messages.prefixed(partition, MARKER) if marker_expired(v, now, ttl)]
        for i in range(0, len(expired), 10_000):
            await s.messages.put_many(partition, expired[i : i + 10_000])
        s.metrics.markers_dropped.inc(len(expired))
        s.metrics.state_writes.labels("messages").inc(len(expired))


#: A fact's event times, read at C speed for the freshness histogram (a NamedTuple field by index).
_OCCURRED_MS = itemgetter(Fact._fields.index("occurred_ms"))
_OBSERVED_MS = itemgetter(Fact._fields.index("observed_ms"))

#: What stage 2 keeps of a metadata record: campaigns' names for the API, contacts' addresses for the mailbox figures.
_META_FIELDS = {"campaign": ("name", "subject", "send_time"), "contact": ("email",)}


def _decode_meta(value: bytes | None, kind: str) -> dict[str, Any] | None:
    if value is None:
        return None
    data = orjson.loads(value)
    if not isinstance(data, dict):
        raise ValueError(f"{kind} metadata must be a JSON object")
    meta = {k: data.get(k) for k in _META_FIELDS[kind]}
    if kind == "contact" and not (isinstance(meta["email"], str) and "@" in meta["email"]):
        meta["email"] = None
    return meta


def rollup_for(s: Streams, kind: str, partition: int) -> Rollup:
    """The stage-2 partition's totals by group, built from its table the first time they are needed."""
    rollups = s.campaign_rollups if kind == "campaign" else s.contact_rollups
    rollup = rollups.get(partition)
    if rollup is None:
        if kind == "campaign":
            rollup = Rollup(campaign_group, HOURLY_RETENTION_MS)
        else:
            rollup = Rollup(contact_group(s.classifier.classify), CONTACT_HOURLY_RETENTION_MS)
        store = s.campaign_table if kind == "campaign" else s.contact_table
        last_at: dict[bytes, int] = {}

        def items() -> Any:
            # One key at a time: a partition's contacts decoded at once would cost memory in
            # proportion to them (a rollup keeps only the sums).
            for key, raw in store.items(partition):
                value = decode_value(raw)
                if kind == "campaign":
                    _note_last_at(last_at, key, value)
                yield key.decode(), value

        rollup.rebuild(items(), _now_ms())
        rollups[partition] = rollup
        if kind == "campaign":
            s.campaign_last_at[partition] = last_at
    return rollup


def _note_last_at(index: dict[bytes, int], key: bytes, value: Any) -> None:
    """Remember a campaign's latest event time (the exported top N are the most recent)."""
    partials = (value or {}).get("partials") or {}
    latest = max((p.get("last_at") or 0 for p in partials.values() if p.get("messages", 0) > 0), default=0)
    if latest:
        index[key] = latest
    else:
        index.pop(key, None)


async def process_partials(s: Streams, records: list[Any], *, kind: str) -> None:
    """Stage 2: merge partials (and metadata) into the campaign or contact table, and its rollup.

    One fetch can carry hundreds of thousands of partials (bundles of up to ``BUNDLE_MAX``):
    they are decoded and merged ``PARTIALS_PER_MERGE`` at a time, so the decoded partials held
    at once stay bounded whatever the backlog.
    """
    started = time.perf_counter()
    meta_topic = (s.campaigns_topic if kind == "campaign" else s.contacts_topic).get_topic_name()
    # partition -> key -> [("meta", value) | ("partial", partial)], in log order
    grouped: dict[int, dict[bytes, list[tuple[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    consumed = pending = stale = 0
    pacer = Pacer()
    for msg in records:
        if pacer.due():
            await pacer.pause()
        try:
            if msg.topic == meta_topic:
                if msg.key is not None:
                    grouped[msg.partition][msg.key].append(("meta", _decode_meta(msg.value, kind)))
                    consumed += 1
                    pending += 1
                continue
            for key, partial in decode_bundle(msg.value):
                grouped[msg.partition][key.encode()].append(("partial", partial))
                consumed += 1
                pending += 1
        except (ValueError, KeyError, TypeError) as exc:
            log.warning(
                "skipping malformed %s record at %s[%s]@%s: %s", kind, msg.topic, msg.partition, msg.offset, exc
            )
        if pending >= PARTIALS_PER_MERGE:
            stale += await _merge_grouped(s, grouped, kind)
            grouped.clear()
            pending = 0
    stale += await _merge_grouped(s, grouped, kind)
    s.metrics.partials_stale.labels(kind).inc(stale)
    s.metrics.partials_consumed.labels(kind).inc(consumed)
    s.metrics.batch_seconds.labels(kind + "s").observe(time.perf_counter() - started)


async def _merge_grouped(s: Streams, grouped: dict[int, dict[bytes, list[tuple[str, Any]]]], kind: str) -> int:
    """Merge decoded partials and metadata, grouped by partition and key, into the table; the stale count."""
    store = s.campaign_table if kind == "campaign" else s.contact_table
    dirty = s.dirty_campaigns if kind == "campaign" else s.dirty_contacts
    now = _now_ms()
    stale = 0
    pacer = Pacer()
    for partition, keys in grouped.items():
        writes: list[tuple[bytes, bytes]] = []
        #: Keys whose answer changed, marked for publish_stats only once the table holds them: a
        #: publish_stats run during a pause would otherwise read (and publish) the old value.
        changed: list[tuple[bytes, Any]] = []
        rollup = rollup_for(s, kind, partition)
        last_at = s.campaign_last_at.get(partition) if kind == "campaign" else None
        for key, items in keys.items():
            if pacer.due():
                await pacer.pause()
            raw = store.get(partition, key)
            value = decode_value(raw)
            new = value
            answer_changed = False
            for what, item in items:
                if what == "meta":
                    new = dict(new or {})
                    new["meta"] = item
                    # A contact's answer shows no metadata (its address stays in the worker).
                    answer_changed = answer_changed or kind == "campaign"
                    continue
                try:
                    merged = merge_partial(new, item)
                except (KeyError, TypeError) as exc:
                    log.warning("skipping malformed %s partial for %r: %s", kind, key, exc)
                    continue
                if merged is None:
                    stale += 1
                else:
                    new = merged
                    answer_changed = True
            if new is not value:
                writes.append((key, encode_value(new)))
                rollup.replace(key.decode(), value, new, now)
                if last_at is not None:
                    _note_last_at(last_at, key, new)
                if answer_changed:
                    changed.append((key, new))
        await store.put_many(partition, writes)
        for key, new in changed:
            # The merged value spares publish_stats a table read, up to a bound (memory).
            dirty[key] = (partition, new if len(dirty) < DIRTY_VALUES_MAX else None)
        s.metrics.state_writes.labels(kind + "s").inc(len(writes))
    return stale


def take_slice(items: Iterator[tuple[bytes, T]], size: int) -> tuple[list[tuple[bytes, T]], bytes | None]:
    """The first ``size`` of ``items`` (key order), and the key to go on from (None: no more)."""
    batch = list(islice(items, size + 1))
    if len(batch) > size:
        return batch[:size], batch[size][0]
    return batch, None


async def publish_stats(s: Streams) -> None:
    """Publish the answer of every changed campaign and contact to the stats topics.

    Then go on with the republication of the owned stage-2 partitions after an assignment, at most
    ``REPUBLISH_PER_TICK`` keys of each kind per call, so it never holds (or sends) them all at once.
    """
    now = _now_ms()
    await _publish_answers(
        s,
        s.dirty_campaigns,
        s.republish_campaigns,
        s.campaign_table,
        s.campaign_stats_name,
        campaign_answer,
        now,
        "campaign",
    )
    await _publish_answers(
        s, s.dirty_contacts, s.republish_contacts, s.contact_table, s.contact_stats_name, contact_answer, now, "contact"
    )


async def _publish_answers(
    s: Streams,
    dirty: dict[bytes, tuple[int, Any]],
    republish: dict[int, bytes],
    store: Any,
    topic: str,
    answer: Any,
    now: int,
    kind: str,
) -> None:
    if not dirty and not republish:
        return
    items = list(dirty.items())
    dirty.clear()
    sender = BatchedSender(s.app, topic)
    generation = s.generation
    pacer = Pacer()

    async def publish(key: bytes, partition: int, value: Any) -> bool:
        """Send one key's answer; False once a revocation started meanwhile."""
        if pacer.due():
            await pacer.pause()
            if s.generation != generation:
                # Revoked meanwhile: whoever owns these keys now republishes them all (sync_views).
                return False
        body = answer(key.decode(), value, now)
        # An aggregate whose messages all moved away is deleted (a compaction tombstone).
        # A stage-2 key lives in partition partition_of(key) of its table, and the
        # stats topics have as many partitions (a test holds the contracts to it),
        # so the record goes where the default partitioner would put it, unhashed.
        await sender.add(partition, key, None if body is None else orjson.dumps(body))
        return True

    for key, (partition, value) in items:
        if value is None:
            raw = store.get(partition, key)
            if raw is None:
                continue
            value = decode_value(raw)
        if not await publish(key, partition, value):
            break
    budget = REPUBLISH_PER_TICK
    # A revocation (publish said False) changed the generation, and emptied ``republish`` too.
    while republish and budget > 0 and s.generation == generation:
        partition = min(republish)
        # A slice read at once: the table is not iterated across a pause (a revocation may close it).
        batch, resume = take_slice(store.items(partition, start=republish[partition]), min(REPUBLISH_SLICE, budget))
        if resume is None:
            del republish[partition]
        else:
            republish[partition] = resume
        budget -= len(batch)
        for key, raw in batch:
            if not await publish(key, partition, decode_value(raw)):
                break
    await sender.flush()
    s.metrics.stats.labels(kind).inc(sender.sent)


def sync_views(s: Streams) -> None:
    """After a rebalance: drop views of revoked partitions, build views of new ones."""
    assignment = s.app.consumer.assignment()
    owned = {tp.partition for tp in assignment if tp.topic == s.events_name}
    for partition in list(s.views):
        if partition not in owned:
            s.views.pop(partition).close()
    for partition in sorted(owned):
        view_for(s, partition)
    # Republish the stats of every stage-2 key this worker now owns (a crashed
    # owner may have died before publishing its last changes): publish_stats
    # walks each partition's table from its first key.
    for dirty, republish, topic in (
        (s.dirty_campaigns, s.republish_campaigns, s.campaign_partials.get_topic_name()),
        (s.dirty_contacts, s.republish_contacts, s.contact_partials.get_topic_name()),
    ):
        stage2 = {tp.partition for tp in assignment if tp.topic == topic}
        republish.clear()
        republish.update(dict.fromkeys(stage2, b""))
        for key in [k for k, (p, _) in dirty.items() if p not in stage2]:
            del dirty[key]
    # Stage-2 totals: dropped for partitions given up (their series go with them), built for new ones.
    for kind, rollups, topic in (
        ("campaign", s.campaign_rollups, s.campaign_partials.get_topic_name()),
        ("contact", s.contact_rollups, s.contact_partials.get_topic_name()),
    ):
        stage2 = {tp.partition for tp in assignment if tp.topic == topic}
        for partition in [p for p in rollups if p not in stage2]:
            del rollups[partition]
            if kind == "campaign":
                s.campaign_last_at.pop(partition, None)
        for partition in sorted(stage2):
            rollup_for(s, kind, partition)
    s.metrics.partitions.set(len(s.views))
    # The rebuilt views and cached states live until the next rebalance: move
    # them out of the collector's way (gen2 collections would rescan them all).
    gc.freeze()
    s.views_ready = True
    s.metrics.ready.set(1)


def install_agents(s: Streams) -> None:
    """Register the stage-1 and stage-2 agents, the publishing timer and the rebalance hooks.

    The agents are bulk agents (``mailpulse.streams.faust_internals.bulk_agent``):
    each gets every record of one fetch of its topic in one call, acked when
    it returns. Faust still owns the group membership, the assignment, table
    recovery, commits, timers and the web server.
    """
    app = s.app
    w = s.config.worker

    @bulk_agent(app, s.events_topic)
    async def messages(records: list[Any]) -> None:
        await process_events(s, records)

    @bulk_agent(app, s.campaign_inputs)  # campaign partials + campaign metadata
    async def campaigns(records: list[Any]) -> None:
        await process_partials(s, records, kind="campaign")

    @bulk_agent(app, s.contact_inputs)  # contact partials + contacts' addresses (mailpulse.contacts.v1)
    async def contacts(records: list[Any]) -> None:
        await process_partials(s, records, kind="contact")

    interval = w.publish_interval.total_seconds()

    @app.timer(max(w.seal_interval.total_seconds(), 0.1))
    async def seal() -> None:
        if s.views_ready:
            await seal_expired(s)

    @app.timer(interval)
    async def publish() -> None:
        if s.views_ready:
            await publish_partials(s)
            await publish_stats(s)

    @app.on_rebalance_complete.connect
    async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
        sync_views(s)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Forget every view: whatever this worker gets back after the rebalance
        # is rebuilt from the (recovered) message table with a new epoch. A view
        # kept across a rebalance could be stale (another worker may have owned
        # the partition meanwhile), and its partials, carrying the old epoch,
        # would be ignored by stage 2 forever.
        for view in s.views.values():
            view.close()
        s.views.clear()
        s.campaign_rollups.clear()
        s.contact_rollups.clear()
        s.campaign_last_at.clear()
        s.republish_campaigns.clear()
        s.republish_contacts.clear()
        s.views_ready = False
        s.generation += 1
        s.metrics.ready.set(0)
