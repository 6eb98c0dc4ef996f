"""Retention against the real broker: sealed messages keep their figures, late events follow the rule.

The horizon runs in seconds here (the events topic's retention is lowered to match, as the start-up
check demands); every figure is compared with a ground truth computed from the events.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bench.eventgen import generate_events
from mailpulse.topics.contracts import EVENTS, topic_name
from mailpulse.topics.events import EventType, make_event_id
from tests.streams.compare import expected_hourly_sent, hourly_mismatches, mismatches
from tests.streams.fixtures import ROOT, WorkerProcess, publish, wait_until
from tests.streams.groundtruth import ground_truth

pytestmark = pytest.mark.integration

#: Seconds-long retention for the test (the defaults are 45 days).
SEALING = {"message_horizon": "2s", "sealed_marker_ttl": "1h", "seal_interval": "300ms"}


def _metric(worker: WorkerProcess, name: str, labels: str = "") -> float:
    for line in worker.get("/metrics", **{"name[]": name}).text.splitlines():
        if line.startswith(name) and labels in line and not line.startswith("#"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _set_events_retention(bootstrap: str, topic: str, ms: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": str(ms)})])
    finally:
        await admin.close()


async def _last_values(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """The latest value of every key of a topic, read from the beginning."""
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        # A changelog has the events topic's partitions (co-partitioned).
        tps = [TopicPartition(topic, p) for p in range(EVENTS.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[bytes, bytes | None] = {}
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    out[r.key] = r.value
        return out
    finally:
        await consumer.stop()


def _all_exact(worker: WorkerProcess, campaigns: dict, contacts: dict, hourly: dict) -> list[str]:
    return (
        mismatches(worker, campaigns, "campaigns")
        + mismatches(worker, contacts, "contacts")
        + (hourly_mismatches(worker, hourly))
    )


async def test_sealed_messages_keep_their_figures_late_events_for_them_are_not_counted_and_a_fresh_worker_agrees(
    kafka, topic_prefix: str, tmp_path: Path
) -> None:
    gen = generate_events(500, seed=43, campaigns_per_source=3)
    campaigns, contacts = ground_truth(gen.events)
    hourly = expected_hourly_sent(gen.events)
    events_topic = topic_name(EVENTS, topic_prefix)
    await publish(kafka.bootstrap, events_topic, gen.events)

    # Sealing off: every event is applied; the answers and mailbox figures to keep.
    w = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "w1", message_horizon="0s").start()
    try:
        await wait_until(lambda: w.get("/readyz").status_code == 200, 90, "worker ready", [w])
        await wait_until(lambda: not _all_exact(w, campaigns, contacts, hourly), 90, "exact answers", [w])
        mailbox = w.get("/v1/mailbox-providers").json()
        assert _metric(w, "mailpulse_stream_messages_sealed_total") == 0
    finally:
        w.stop()

    # A 2 s horizon: the events topic must keep events less long (the start-up check refuses otherwise).
    await _set_events_retention(kafka.bootstrap, events_topic, 1000)
    w = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "w1", **SEALING).start()
    try:
        await wait_until(lambda: w.get("/readyz").status_code == 200, 90, "worker ready with sealing", [w])
        # Every message's last fact is older than 2 s: all are sealed, and nothing else changes.
        await wait_until(
            lambda: _metric(w, "mailpulse_stream_messages_sealed_total") == gen.messages,
            60,
            f"{gen.messages} messages sealed",
            [w],
            show=lambda: _metric(w, "mailpulse_stream_messages_sealed_total"),
        )
        assert _all_exact(w, campaigns, contacts, hourly) == []
        assert w.get("/v1/mailbox-providers").json() == mailbox

        # Late events for sealed messages: new facts (a click today) and replays of old events.
        now = datetime.now(UTC)
        originals = gen.events[:: max(1, len(gen.events) // 60)]
        late = [
            dataclasses.replace(
                e,
                event_id=make_event_id(e.provider, e.source, "late", e.message_id),
                type=EventType.CLICKED,
                occurred_at=now,
                observed_at=now,
            )
            for e in originals
        ]
        late += originals
        await publish(kafka.bootstrap, events_topic, late)
        await wait_until(
            lambda: _metric(w, "mailpulse_stream_events_total", 'result="sealed"') == len(late),
            60,
            f"{len(late)} late events counted as sealed",
            [w],
            show=lambda: _metric(w, "mailpulse_stream_events_total", 'result="sealed"'),
        )
        assert _metric(w, "mailpulse_stream_events_total", 'result="new"') == 0
        assert _all_exact(w, campaigns, contacts, hourly) == []
    finally:
        w.kill()

    # The changelog holds a tombstone for every message: their states are gone for good.
    changelog = await _last_values(kafka.bootstrap, f"{topic_prefix}mailpulse-streams-messages-changelog")
    message_keys = {e.key.encode() for e in gen.events}
    assert {k: changelog.get(k, b"absent") for k in message_keys} == dict.fromkeys(message_keys)

    # A worker with an empty data dir rebuilds from the bases alone, and still knows the sealed messages.
    fresh = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "fresh", **SEALING).start()
    try:
        await wait_until(lambda: fresh.get("/readyz").status_code == 200, 90, "fresh worker ready", [fresh])
        await wait_until(
            lambda: not _all_exact(fresh, campaigns, contacts, hourly),
            90,
            "exact answers from the changelog's bases",
            [fresh],
            show=lambda: _all_exact(fresh, campaigns, contacts, hourly)[:5],
        )
        assert fresh.get("/v1/mailbox-providers").json() == mailbox
        await publish(kafka.bootstrap, events_topic, late[:5])
        await wait_until(
            lambda: _metric(fresh, "mailpulse_stream_events_total", 'result="sealed"') == 5,
            60,
            "late events recognised from the changelog's markers",
            [fresh],
        )
        assert _all_exact(fresh, campaigns, contacts, hourly) == []
    finally:
        fresh.stop()


async def test_markers_are_dropped_after_their_ttl(kafka, topic_prefix: str, tmp_path: Path) -> None:
    gen = generate_events(60, seed=44, campaigns_per_source=2)
    events_topic = topic_name(EVENTS, topic_prefix)
    await publish(kafka.bootstrap, events_topic, gen.events)
    await _set_events_retention(kafka.bootstrap, events_topic, 1000)
    w = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "w1", **{**SEALING, "sealed_marker_ttl": "1s"}).start()
    try:
        await wait_until(
            lambda: _metric(w, "mailpulse_stream_sealed_markers_dropped_total") == gen.messages,
            90,
            f"{gen.messages} markers dropped",
            [w],
            show=lambda: (
                _metric(w, "mailpulse_stream_messages_sealed_total"),
                _metric(w, "mailpulse_stream_sealed_markers_dropped_total"),
            ),
        )
        assert _metric(w, "mailpulse_stream_messages_sealed_total") == gen.messages
    finally:
        w.stop()


async def test_a_horizon_shorter_than_the_events_topics_retention_stops_the_worker_with_one_line(
    kafka, topic_prefix: str, tmp_path: Path
) -> None:
    w = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "w1", message_horizon="7d")
    done = subprocess.run(
        [sys.executable, "-m", "mailpulse.cli", "worker", "--config", str(w.config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(w.config) in lines[0]
    assert "worker.message_horizon (7 days) must be longer than the events topic's retention (30 days)" in lines[0]
