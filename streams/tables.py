"""Direct, batched access to a Faust RocksDB table partition.

Faust's ``table[key] = value`` sends one changelog record per write through
its producer buffer, one at a time, and that loop is the worker's ceiling
(/work/shared/faust-notes.md). ``PartitionStore`` writes a whole batch to the
partition's RocksDB in one ``WriteBatch`` and hands the changelog records to
the producer together, addressed to the same partition, so the changelog and
the store hold exactly what ``table[key] = value`` would have written. Faust
still owns the changelog topic, the RocksDB files, recovery and standby
replicas; and ``Consumer.commit`` flushes the producer before committing
source offsets, so a batch's changelog records are durable before its events
are marked processed.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import rocksdict
from aiokafka.partitioner import murmur2
from faust.types import TP

from topics.contracts import EVENTS

__all__ = ["PartitionStore", "partition_of"]


def partition_of(key: bytes, partitions: int = EVENTS.partitions) -> int:
    """Kafka's default (murmur2) partition of a key: where producers put it and Faust's router looks."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class PartitionStore:
    """One Faust table (RocksDB store, raw bytes keys and values), addressed by partition."""

    def __init__(self, app: Any, table: Any) -> None:
        self.app = app
        self.table = table

    @property
    def _store(self) -> Any:
        return self.table.data

    def _db(self, partition: int) -> Any:
        return self._store._db_for_partition(partition)

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self._db(partition).get(key)

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        offset_key = self._store.offset_key
        for key, value in self._db(partition).items():
            if key != offset_key:
                yield key, value

    async def put_many(self, partition: int, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Write ``items`` to the partition's RocksDB and queue their changelog records."""
        if not items:
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in items:
            batch.put(key, value)
        self._db(partition).write(batch)
        topic = self.table.changelog_topic_name
        send = self.app.producer.send
        fut = None
        for key, value in items:
            fut = await send(topic, key, value, partition, None, None)
        assert fut is not None
        tp = TP(topic, partition)
        fut.add_done_callback(lambda f: self._persisted(tp, f))  # type: ignore[attr-defined]

    def _persisted(self, tp: TP, fut: Any) -> None:
        # Like Faust's Collection._on_changelog_sent: remember the changelog offset
        # in the partition's RocksDB so recovery reads only what came after it.
        if fut.cancelled() or fut.exception() is not None:
            return
        if tp.partition in self._store._dbs:
            self._store.set_persisted_offset(tp, fut.result().offset)
