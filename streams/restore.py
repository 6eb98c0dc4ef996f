"""Table partitions restored from their changelogs in bulk, before Faust's own replay.

A worker that takes over partitions with an empty or stale data_dir (a new pod,
a lost volume, a rebalance onto a worker that never held them) must read their
changelogs. Faust replays a changelog one record at a time: the conductor makes
an event of each record, a queue hands it over, and the recovery loop does its
bookkeeping per record. That was ~14,000 records/s on the reference machine, so
at the scale volume (3.1M changelog records) a worker needed 302-348 s before it
could serve.

Restoring needs less: the last value of each key, and the changelog offset it
was read up to. ``restore`` reads the partitions with a consumer of its own and
writes each fetch of a partition into its RocksDB as one ``WriteBatch`` that
also carries the offset reached, which is what Faust's
``Store.apply_changelog_batch`` would have left. The batch is atomic, so a
restore cut short (by its time budget, a new rebalance or a crash) leaves every
partition at a consistent offset, and Faust's recovery reads whatever is left
from there. The door into Faust's recovery is
``streams/faust_internals.py:BulkRestoringRecovery``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import rocksdict
from aiokafka import AIOKafkaConsumer, TopicPartition

from mailpulse.kafkaclient import KafkaTarget, kafka_client_settings, start_client

log = logging.getLogger(__name__)

__all__ = ["RestoreJob", "Restorer", "write_records"]

#: At most this many records per WriteBatch (and per ``getmany``): bounds what one write holds.
RECORDS_PER_WRITE = 20_000


@dataclass
class RestoreJob:
    """One changelog partition to bring into its RocksDB, from ``next_offset`` to ``end_offset`` (excluded)."""

    #: The table's name (the metric's label).
    table: str
    topic: str
    partition: int
    #: The partition's ``rocksdict.Rdict`` (raw mode).
    db: Any
    #: Where the store keeps the changelog offset it holds (Faust's ``Store.offset_key``).
    offset_key: bytes
    next_offset: int
    end_offset: int

    @property
    def remaining(self) -> int:
        return max(0, self.end_offset - self.next_offset)


def write_records(db: Any, offset_key: bytes, records: Iterable[Any], end_offset: int) -> tuple[int | None, int]:
    """Apply changelog ``records`` (``.key``, ``.value``, ``.offset``; None value: delete) to ``db``.

    One atomic WriteBatch with the offset of the last record applied; records at
    or past ``end_offset`` are not applied. Returns that offset (None: nothing
    applied) and the number of records applied.
    """
    batch = rocksdict.WriteBatch(raw_mode=True)
    last = None
    count = 0
    for record in records:
        if record.offset >= end_offset:
            break
        if record.value is None:
            batch.delete(record.key)
        else:
            batch.put(record.key, record.value)
        last = record.offset
        count += 1
    if last is not None:
        batch.put(offset_key, str(last).encode())
        db.write(batch)
    return last, count


class Restorer:
    """Restores changelog partitions in bulk: ``await restorer(jobs)`` -> offset reached per (topic, partition).

    ``budget_s`` bounds one call (Faust waits on recovery steps with a timeout):
    what is left then is replayed by Faust.
    """

    def __init__(
        self, kafka: KafkaTarget, *, fetch_partition_bytes: int, budget_s: float, restored: Any = None
    ) -> None:
        self.kafka = kafka
        self.fetch_partition_bytes = fetch_partition_bytes
        self.budget_s = budget_s
        #: A prometheus Counter labelled by table, counting the records written (optional).
        self.restored = restored

    async def __call__(self, jobs: list[RestoreJob]) -> dict[tuple[str, int], int]:
        # Every partition with anything left: the consumer costs ~0.1 s to start, which the
        # replay it saves pays back from a few thousand records, and one path for every
        # recovery is one path every exactness test runs through.
        jobs = [j for j in jobs if j.remaining > 0]
        if not jobs:
            return {}
        started = time.monotonic()
        consumer = AIOKafkaConsumer(
            **kafka_client_settings(self.kafka),
            enable_auto_commit=False,
            # An offset below the log's start (compacted away meanwhile) reads from the start, never the end.
            auto_offset_reset="earliest",
            # Only what the producers committed, as Faust's own recovery reads (tables.py writes
            # without transactions; aborted records could only come from a foreign producer).
            isolation_level="read_committed",
            max_partition_fetch_bytes=self.fetch_partition_bytes,
            # One fetch request holds at most two partitions' worth, whatever the number of partitions.
            fetch_max_bytes=2 * self.fetch_partition_bytes,
        )
        await start_client(consumer, self.kafka)
        reached: dict[tuple[str, int], int] = {}
        applied = 0
        try:
            pending = {TopicPartition(j.topic, j.partition): j for j in jobs}
            consumer.assign(list(pending))
            for tp, job in pending.items():
                consumer.seek(tp, job.next_offset)
            while pending:
                fetched = await consumer.getmany(timeout_ms=500, max_records=RECORDS_PER_WRITE)
                for tp, records in fetched.items():
                    target = pending.get(tp)
                    if target is None:
                        continue
                    last, count = write_records(target.db, target.offset_key, records, target.end_offset)
                    if last is not None:
                        reached[(target.topic, target.partition)] = last
                        applied += count
                        if self.restored is not None:
                            self.restored.labels(table=target.table).inc(count)
                for tp, job in list(pending.items()):
                    if await consumer.position(tp) >= job.end_offset:
                        self._finish(job, reached)
                        consumer.pause(tp)
                        del pending[tp]
                if time.monotonic() - started >= self.budget_s:
                    break
        finally:
            await consumer.stop()
        seconds = time.monotonic() - started
        log.info(
            "restored %d changelog records of %d table partitions in bulk in %.1f s (%.0f records/s)%s",
            applied,
            len(jobs),
            seconds,
            applied / seconds if seconds else 0,
            f"; {len(pending)} left to Faust's replay (time budget {self.budget_s:.0f} s)" if pending else "",
        )
        return reached

    @staticmethod
    def _finish(job: RestoreJob, reached: dict[tuple[str, int], int]) -> None:
        # Read to the end: the store holds the partition up to its last offset, even when the
        # last offsets carried no record of ours (a transaction marker), as Faust records it.
        last = job.end_offset - 1
        if reached.get((job.topic, job.partition)) != last:
            job.db.put(job.offset_key, str(last).encode())
            reached[(job.topic, job.partition)] = last
