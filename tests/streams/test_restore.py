"""Changelog partitions restored in bulk: the last value of every key, and the offset reached, in RocksDB."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import rocksdict
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from mailpulse.streams import restore as restore_module
from mailpulse.streams.restore import RestoreJob, Restorer, write_records

OFFSET_KEY = b"__faust\0offset__"


def _open(path: Path) -> rocksdict.Rdict:
    return rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))


def _contents(db: rocksdict.Rdict) -> dict[bytes, bytes]:
    return {k: v for k, v in db.items() if k != OFFSET_KEY}


def test_write_records_applies_puts_and_deletes_and_the_offset_in_one_batch(tmp_path: Path) -> None:
    db = _open(tmp_path / "p0")
    db[b"gone"] = b"old"
    records = [
        SimpleNamespace(key=b"a", value=b"1", offset=10),
        SimpleNamespace(key=b"gone", value=None, offset=11),
        SimpleNamespace(key=b"a", value=b"2", offset=12),
        SimpleNamespace(key=b"late", value=b"x", offset=13),  # at end_offset: not this restore's
    ]

    assert write_records(db, OFFSET_KEY, records, end_offset=13) == (12, 3)

    assert _contents(db) == {b"a": b"2"}
    assert db[OFFSET_KEY] == b"12"
    db.close()


def test_write_records_of_nothing_writes_nothing(tmp_path: Path) -> None:
    db = _open(tmp_path / "p0")
    assert write_records(db, OFFSET_KEY, [SimpleNamespace(key=b"a", value=b"1", offset=5)], end_offset=5) == (None, 0)
    assert dict(db.items()) == {}
    db.close()


def test_a_job_counts_what_is_left_to_read() -> None:
    job = RestoreJob("tbl", "t", 0, db=None, offset_key=OFFSET_KEY, next_offset=40, end_offset=100)
    assert job.remaining == 60
    assert RestoreJob("tbl", "t", 0, db=None, offset_key=OFFSET_KEY, next_offset=100, end_offset=100).remaining == 0


# ---------------------------------------------------------------------------
# Against the real broker


async def _changelog(bootstrap: str, topic: str, partitions: int, n: int) -> list[dict[bytes, bytes | None]]:
    """Write ``n`` records per partition (overwrites and tombstones); the last value per key and partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()
    rng = random.Random(7)
    truth: list[dict[bytes, bytes | None]] = [{} for _ in range(partitions)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        for partition in range(partitions):
            for i in range(n):
                key = f"k{rng.randrange(n // 3)}".encode()
                value = None if rng.random() < 0.1 else f"v{i}".encode()
                truth[partition][key] = value
                await producer.send(topic, value, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()
    return [{k: v for k, v in last.items() if v is not None} for last in truth]


@pytest.mark.integration
async def test_a_restore_leaves_each_partition_with_the_last_value_of_every_key_and_its_end_offset(
    kafka, unique_prefix: str, tmp_path: Path
) -> None:
    topic = f"{unique_prefix}table-changelog"
    n = 6_000
    truth = await _changelog(kafka.bootstrap, topic, 2, n)
    dbs = [_open(tmp_path / f"p{p}") for p in range(2)]
    jobs = [RestoreJob("tbl", topic, p, dbs[p], OFFSET_KEY, next_offset=0, end_offset=n) for p in range(2)]

    reached = await Restorer(kafka.bootstrap, fetch_partition_bytes=1 << 20, budget_s=60)(jobs)

    assert reached == {(topic, 0): n - 1, (topic, 1): n - 1}
    for p in range(2):
        assert _contents(dbs[p]) == truth[p]
        assert dbs[p][OFFSET_KEY] == str(n - 1).encode()
        dbs[p].close()


@pytest.mark.integration
async def test_a_restore_cut_short_resumes_from_the_offset_it_stored_and_ends_exact(
    kafka, unique_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"{unique_prefix}table-changelog"
    n = 8_000
    truth = await _changelog(kafka.bootstrap, topic, 1, n)
    db = _open(tmp_path / "p0")
    # One small write per fetch, and a budget that ends after the first: the restore stops part way.
    monkeypatch.setattr(restore_module, "RECORDS_PER_WRITE", 500)
    first = await Restorer(kafka.bootstrap, fetch_partition_bytes=1 << 20, budget_s=0.001)(
        [RestoreJob("tbl", topic, 0, db, OFFSET_KEY, next_offset=0, end_offset=n)]
    )
    stored = int(db[OFFSET_KEY])
    assert first == {(topic, 0): stored}
    assert 0 <= stored < n - 1

    # What a later restore (or Faust's replay) does: read on from the offset the store holds.
    second = await Restorer(kafka.bootstrap, fetch_partition_bytes=1 << 20, budget_s=60)(
        [RestoreJob("tbl", topic, 0, db, OFFSET_KEY, next_offset=stored + 1, end_offset=n)]
    )

    assert second == {(topic, 0): n - 1}
    assert _contents(db) == truth[0]
    db.close()


@pytest.mark.integration
async def test_partitions_with_nothing_left_are_not_read(kafka, unique_prefix: str, tmp_path: Path) -> None:
    topic = f"{unique_prefix}table-changelog"
    await _changelog(kafka.bootstrap, topic, 1, 10)
    db = _open(tmp_path / "p0")
    db[OFFSET_KEY] = b"9"

    reached = await Restorer(kafka.bootstrap, fetch_partition_bytes=1 << 20, budget_s=60)(
        [RestoreJob("tbl", topic, 0, db, OFFSET_KEY, next_offset=10, end_offset=10)]
    )

    assert reached == {}
    assert dict(db.items()) == {OFFSET_KEY: b"9"}
    db.close()
