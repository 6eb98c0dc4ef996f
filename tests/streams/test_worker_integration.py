"""A real ``mailpulse worker`` against the real broker: answers equal an independent ground truth."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.eventgen import generate_events
from mailpulse.topics.contracts import CAMPAIGN_STATS, CONTACT_STATS, EVENTS, topic_name
from tests.streams.compare import expected_hourly_sent, hourly_mismatches, mismatches
from tests.streams.fixtures import WorkerProcess, publish, wait_until
from tests.streams.groundtruth import ground_truth

pytestmark = pytest.mark.integration


async def test_one_worker_answers_every_campaign_and_contact_exactly_under_duplicates_and_reordering(
    kafka, topic_prefix: str, tmp_path: Path
) -> None:
    gen = generate_events(600, seed=11, campaigns_per_source=4)
    assert gen.duplicates > 50
    campaigns, contacts = ground_truth(gen.events)
    await publish(kafka.bootstrap, topic_name(EVENTS, topic_prefix), gen.events)
    w = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "w1").start()
    try:
        await wait_until(lambda: w.get("/readyz").status_code == 200, 90, "worker ready", [w])
        await wait_until(
            lambda: not mismatches(w, campaigns, "campaigns"),
            90,
            "exact campaign answers",
            [w],
            show=lambda: mismatches(w, campaigns, "campaigns")[:5],
        )
        await wait_until(lambda: not mismatches(w, contacts, "contacts"), 60, "exact contact answers", [w])
        assert mismatches(w, campaigns, "campaigns") == []
        assert mismatches(w, contacts, "contacts") == []
        # Progress per partition, for the stalled-partition alert: everything read, nothing behind.
        ends = await end_offsets(kafka.bootstrap, topic_name(EVENTS, topic_prefix))
        expected = {str(p): float(end - 1) for p, end in ends.items() if end > 0}
        progress = await wait_until(
            lambda: (lambda g: g if g["read"] == expected else None)(_progress(w)),
            30,
            "read offsets at the end of every partition",
            [w],
        )
        assert set(progress["lag"]) == set(expected) and set(progress["lag"].values()) == {0.0}
    finally:
        w.stop()


def _progress(worker: WorkerProcess) -> dict[str, dict[str, float]]:
    """``mailpulse_stream_read_offset`` and ``mailpulse_stream_lag_records`` by partition, from /metrics."""
    out: dict[str, dict[str, float]] = {"read": {}, "lag": {}}
    for line in worker.get("/metrics").text.splitlines():
        for name, kind in (("mailpulse_stream_read_offset{", "read"), ("mailpulse_stream_lag_records{", "lag")):
            if line.startswith(name):
                labels, value = line[len(name) :].split("} ")
                out[kind][labels.split('"')[1]] = float(value)
    return out


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(EVENTS.partitions)]
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def test_two_workers_answer_every_key_and_stay_exact_after_one_is_sigkilled_mid_stream(
    kafka, topic_prefix: str, tmp_path: Path
) -> None:
    first = generate_events(500, seed=21, campaigns_per_source=5)
    # The second half: new messages, plus re-polls of the first half's events.
    second = generate_events(1000, seed=22, campaigns_per_source=5)
    second_events = [e for e in second.events if int(e.message_id[1:]) >= 500] + first.events[::3]
    topic = topic_name(EVENTS, topic_prefix)
    await publish(kafka.bootstrap, topic, first.events)
    w1 = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "w1").start()
    w2 = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "w2").start()
    workers = [w1, w2]
    try:

        def split() -> bool:
            parts = [w.get("/readyz") for w in workers]
            owned = [set(p.json()["partitions"]) for p in parts]
            return all(p.status_code == 200 for p in parts) and all(owned) and owned[0] | owned[1] == set(range(8))

        await wait_until(split, 120, "two ready workers sharing the partitions", workers)
        campaigns, contacts = ground_truth(first.events)
        await wait_until(
            lambda: not mismatches(w1, campaigns, "campaigns"),
            90,
            "exact campaigns",
            workers,
            show=lambda: mismatches(w1, campaigns, "campaigns")[:5],
        )
        await wait_until(
            lambda: not mismatches(w1, contacts, "contacts"),
            60,
            "exact contacts",
            workers,
            show=lambda: mismatches(w1, contacts, "contacts")[:5],
        )
        for w in workers:  # every key, from either worker (routed to its owner when needed)
            assert mismatches(w, campaigns, "campaigns") == []
            assert mismatches(w, contacts, "contacts") == []
        listed = w2.get("/v1/campaigns", limit=1000).json()
        assert listed["workers"] == 2
        assert sorted(item["key"] for item in listed["items"]) == sorted(campaigns)

        await publish(kafka.bootstrap, topic, second_events)
        w1.kill()  # SIGKILL while it is processing the second batch
        all_events = first.events + second_events
        campaigns, contacts = ground_truth(all_events)
        await wait_until(
            lambda: w2.get("/readyz").json()["partitions"] == list(range(8)), 90, "w2 owning every partition", [w2]
        )
        await wait_until(
            lambda: not mismatches(w2, campaigns, "campaigns"),
            90,
            "exact campaigns after takeover",
            [w2],
            show=lambda: mismatches(w2, campaigns, "campaigns")[:5],
        )
        await wait_until(
            lambda: not mismatches(w2, contacts, "contacts"),
            60,
            "exact contacts after takeover",
            [w2],
            show=lambda: mismatches(w2, contacts, "contacts")[:5],
        )
        assert mismatches(w2, campaigns, "campaigns") == []
        assert mismatches(w2, contacts, "contacts") == []
        # Hourly windows are rebuilt from message state on takeover: still exact.
        assert hourly_mismatches(w2, expected_hourly_sent(all_events)) == []
    finally:
        for w in workers:
            w.stop()


def _new_events(worker: WorkerProcess) -> float:
    """The worker's count of events that changed a message state (``mailpulse_stream_events_total{result="new"}``)."""
    for line in worker.get("/metrics").text.splitlines():
        if line.startswith("mailpulse_stream_events_total{") and 'result="new"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_worker_killed_mid_batch_and_restarted_leaves_a_changelog_a_fresh_worker_rebuilds_exactly(
    kafka, topic_prefix: str, tmp_path: Path
) -> None:
    gen = generate_events(2000, seed=31, campaigns_per_source=6)
    campaigns, contacts = ground_truth(gen.events)
    await publish(kafka.bootstrap, topic_name(EVENTS, topic_prefix), gen.events)
    # Small fetches: the backlog takes many batches, so the kill lands between two of them.
    w1 = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "w1", batch_size=300).start()
    try:
        await wait_until(lambda: _new_events(w1) > 0, 120, "w1 merging its first events", [w1])
        w1.kill()  # SIGKILL while it works through the backlog: some batches written, some not acknowledged
        w1.start()  # same data dir: local tables ahead of the changelog must be discarded, not trusted
        await wait_until(lambda: w1.get("/readyz").status_code == 200, 120, "w1 ready again", [w1])
        await wait_until(
            lambda: not mismatches(w1, campaigns, "campaigns"),
            120,
            "exact campaigns after the restart",
            [w1],
            show=lambda: mismatches(w1, campaigns, "campaigns")[:5],
        )
        await wait_until(lambda: not mismatches(w1, contacts, "contacts"), 60, "exact contacts after the restart", [w1])
    finally:
        w1.stop()
    # A worker with an empty data dir sees only what the changelogs hold (every offset is committed).
    fresh = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "fresh").start()
    try:
        await wait_until(lambda: fresh.get("/readyz").status_code == 200, 120, "the fresh worker ready", [fresh])
        await wait_until(
            lambda: not mismatches(fresh, campaigns, "campaigns"),
            90,
            "exact campaigns from the changelog alone",
            [fresh],
            show=lambda: mismatches(fresh, campaigns, "campaigns")[:5],
        )
        assert mismatches(fresh, contacts, "contacts") == []
        assert _new_events(fresh) == 0  # nothing was replayed: the numbers came from the changelog
        # ... restored in bulk (streams/restore.py), not record by record by Faust.
        text = fresh.get("/metrics", **{"name[]": "mailpulse_stream_changelog_records_restored_total"}).text
        restored = {
            line.split('table="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("mailpulse_stream_changelog_records_restored_total{")
        }
        assert restored.get("messages", 0) > 0 and restored.get("contacts", 0) > 0, text
    finally:
        fresh.stop()


async def _latest_since(bootstrap: str, topic: str, since: dict[int, int]) -> dict[str, Any]:
    """Key -> its last value among the records written to ``topic`` after the offsets ``since``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in since]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, since[tp.partition])
        out: dict[str, Any] = {}
        while batch := await consumer.getmany(timeout_ms=1000):
            for records in batch.values():
                for r in records:
                    out[r.key.decode()] = None if r.value is None else orjson.loads(r.value)
        return out
    finally:
        await consumer.stop()


async def test_a_restarted_worker_publishes_every_answer_it_owns_again_without_any_new_event(
    kafka, topic_prefix: str, tmp_path: Path
) -> None:
    # A worker may die between writing a key's new value and publishing its answer: after an
    # assignment every owned answer is published again (stage 2 walks its tables a slice at a time,
    # and the rebuilt views' partials, carrying a new epoch, reach stage 2 as changes too).
    gen = generate_events(1200, seed=43, campaigns_per_source=4)
    campaigns, contacts = ground_truth(gen.events)
    await publish(kafka.bootstrap, topic_name(EVENTS, topic_prefix), gen.events)
    w = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "w").start()
    try:
        await wait_until(lambda: w.get("/readyz").status_code == 200, 90, "worker ready", [w])
        await wait_until(lambda: not mismatches(w, contacts, "contacts"), 90, "exact contact answers", [w])
        w.stop()
        stats = {
            kind: topic_name(spec, topic_prefix)
            for kind, spec in (("campaigns", CAMPAIGN_STATS), ("contacts", CONTACT_STATS))
        }
        since = {kind: await end_offsets(kafka.bootstrap, topic) for kind, topic in stats.items()}
        w.start()
        await wait_until(lambda: w.get("/readyz").status_code == 200, 90, "worker ready again", [w])
        deadline = asyncio.get_running_loop().time() + 60
        for kind, truth in (("campaigns", campaigns), ("contacts", contacts)):
            while True:
                got = await _latest_since(kafka.bootstrap, stats[kind], since[kind])
                missing = [k for k in truth if k not in got]
                if not missing or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(1)
            assert missing == [], f"{len(missing)} {kind} not published again, e.g. {missing[:3]}"
            assert {k: got[k]["counts"] for k in truth} == {k: v["counts"] for k, v in truth.items()}
    finally:
        w.stop()
