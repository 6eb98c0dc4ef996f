"""Cursor store and de-dup indexes, read back from Kafka at start.

Everything here reads with ``isolation_level="read_committed"``: a batch whose
transaction was aborted (a crash mid-batch) is invisible, so the poller
re-reads it from the last committed cursor and publishes it exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from mailpulse.connectors.dedupe import ChangeIndex, EventIndex, content_digest
from mailpulse.kafkaclient import KafkaTarget, kafka_client_settings, start_client
from mailpulse.topics.contracts import CHECKPOINTS, DLQ, EVENTS, TopicSpec, topic_name
from mailpulse.topics.events import parse_timestamp

__all__ = [
    "partitions_of",
    "scan_topic",
    "read_checkpoints",
    "load_event_index",
    "load_change_index",
    "load_dlq_digests",
]

log = logging.getLogger(__name__)

RecordCallback = Callable[[bytes | None, bytes | None], None]


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions, from a fresh metadata request (an unsubscribed consumer has none cached)."""
    from mailpulse.streams.faust_internals import fetch_cluster_metadata  # the one door to Kafka internals

    cluster = await fetch_cluster_metadata(consumer)
    return set(cluster.partitions_for_topic(topic) or ())


async def scan_topic(
    kafka: KafkaTarget,
    topic: str,
    on_record: RecordCallback,
    *,
    since_ms: int | None = None,
    key_prefix: bytes | None = None,
    timeout_s: float = 120.0,
    isolation_level: str = "read_committed",
) -> int:
    """Read every committed record of ``topic`` from ``since_ms`` (or the beginning) to its current end.

    Calls ``on_record(key, value)`` for records whose key starts with
    ``key_prefix``; returns how many were passed on.
    """
    consumer = AIOKafkaConsumer(
        **kafka_client_settings(kafka),
        enable_auto_commit=False,
        isolation_level=isolation_level,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    # The high watermark, not the last stable offset: a committed transaction's markers land a
    # moment after commit returns, and another producer's open transaction holds the LSO back;
    # reading "to the LSO" would then miss committed records. Read until every record written
    # before the scan began is decided (committed and passed on, or aborted and skipped).
    watermark = AIOKafkaConsumer(
        **kafka_client_settings(kafka), enable_auto_commit=False, isolation_level="read_uncommitted"
    )
    await start_client(consumer, kafka)
    try:
        await start_client(watermark, kafka)
    except BaseException:
        await consumer.stop()
        raise
    count = 0
    try:
        partitions = await partitions_of(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            raise RuntimeError(f"topic {topic} does not exist: run `mailpulse topics create` first")
        consumer.assign(tps)
        ends = await watermark.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        if since_ms is not None:
            found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
            for tp in tps:
                ot = found.get(tp)
                starts[tp] = ot.offset if ot is not None else ends[tp]
        pending = {tp for tp in tps if starts[tp] < ends[tp]}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        deadline = time.monotonic() + timeout_s
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=200, max_records=10000)
            for tp, msgs in batches.items():
                for msg in msgs:
                    if msg.offset >= ends[tp]:
                        continue
                    if key_prefix is None or (msg.key is not None and msg.key.startswith(key_prefix)):
                        on_record(msg.key, msg.value)
                        count += 1
            for tp in list(pending):
                # Transaction markers take offsets too: position, not the last record, says we are done.
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} to its end took more than {timeout_s:.0f}s (an open transaction?)")
    finally:
        await consumer.stop()
        await watermark.stop()
    return count


async def read_checkpoints(kafka: KafkaTarget, prefix: str, source: str) -> dict[str, Any]:
    """The latest committed cursor of each of ``source``'s streams: ``{stream: cursor}``."""
    cursors: dict[str, Any] = {}
    key_prefix = f"{source}/".encode()

    def on_record(key: bytes | None, value: bytes | None) -> None:
        stream = (key or b"").decode()[len(key_prefix) :]
        if value is None:
            cursors.pop(stream, None)
        else:
            cursors[stream] = orjson.loads(value).get("cursor")

    await scan_topic(kafka, topic_name(CHECKPOINTS, prefix), on_record, key_prefix=key_prefix)
    return cursors


async def load_event_index(kafka: KafkaTarget, prefix: str, source: str, since: datetime) -> EventIndex:
    """Event ids of ``source`` published (Kafka timestamp) since ``since``."""
    index = EventIndex()
    seen = index.update

    def on_record(key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        data = orjson.loads(value)
        seen(((data["event_id"], parse_timestamp(data["occurred_at"]).timestamp()),))

    started = time.monotonic()
    n = await scan_topic(
        kafka,
        topic_name(EVENTS, prefix),
        on_record,
        since_ms=int(since.timestamp() * 1000),
        key_prefix=f"{source}:".encode(),
    )
    log.info("%s: event index rebuilt from %d events in %.2fs", source, n, time.monotonic() - started)
    return index


async def load_dlq_digests(kafka: KafkaTarget, prefix: str, source: str) -> set[bytes]:
    """Digests of ``source``'s dead letters, so a re-read record is not filed twice."""
    from mailpulse.connectors.base import dlq_digest

    seen: set[bytes] = set()
    key = source.encode()

    def on_record(k: bytes | None, value: bytes | None) -> None:
        if k == key and value is not None:
            data = orjson.loads(value)
            seen.add(dlq_digest(data["stream"], data["raw"]))

    await scan_topic(kafka, topic_name(DLQ, prefix), on_record, key_prefix=key)
    return seen


async def load_change_index(kafka: KafkaTarget, prefix: str, spec: TopicSpec, source: str) -> ChangeIndex:
    """Digest of the latest value per key of ``source`` on a compacted topic."""
    index = ChangeIndex()

    def on_record(key: bytes | None, value: bytes | None) -> None:
        k = (key or b"").decode()
        index.set(k, None if value is None else content_digest(orjson.loads(value)))

    await scan_topic(kafka, topic_name(spec, prefix), on_record, key_prefix=f"{source}:".encode())
    return index
