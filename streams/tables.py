"""Direct, batched access to a Faust RocksDB table partition.

Faust's ``table[key] = value`` sends one changelog record per write through
its producer buffer, one at a time, and that loop is the worker's ceiling
(/work/shared/faust-notes.md). ``PartitionStore`` writes a whole batch to the
partition's RocksDB in one ``WriteBatch`` and hands the changelog records to
the producer as whole record batches, addressed to the same partition, so the changelog and
the store hold exactly what ``table[key] = value`` would have written. Faust
still owns the changelog topic, the RocksDB files, recovery and standby
replicas; and ``Consumer.commit`` flushes the producer before committing
source offsets, so a batch's changelog records are durable before its events
are marked processed.
"""

from __future__ import annotations

import functools
import itertools
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import rocksdict
from aiokafka.partitioner import murmur2
from faust.types import TP

from topics.contracts import EVENTS

__all__ = ["PartitionStore", "discard_unacknowledged", "partition_of"]

log = logging.getLogger(__name__)

#: Local bookkeeping keys, never changelogged: the token of the last batch written
#: to this RocksDB, and of the last batch whose changelog records the broker acknowledged.
WRITTEN_KEY = b"__mailpulse\x00written__"
ACKED_KEY = b"__mailpulse\x00acked__"
_LOCAL_PREFIXES = (b"__faust\x00", b"__mailpulse\x00")
#: Batch tokens: increasing within a process, distinct across restarts.
_tokens = itertools.count(time.time_ns())


@functools.lru_cache(maxsize=1 << 17)
def partition_of(key: bytes, partitions: int = EVENTS.partitions) -> int:
    """Kafka's default (murmur2) partition of a key: where producers put it and Faust's router looks.

    Cached: aiokafka's murmur2 is pure Python (~20 µs a key) and the same
    campaign and contact keys come back with every publication.
    """
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
        for key, value in self._db(partition).items():
            if not key.startswith(_LOCAL_PREFIXES):
                yield key, value

    async def put_many(self, partition: int, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Write ``items`` to the partition's RocksDB and queue their changelog records."""
        if not items:
            return
        token = str(next(_tokens)).encode()
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in items:
            batch.put(key, value)
        # Until the broker acknowledges this batch's changelog records, the local
        # store is ahead of the changelog; see discard_unacknowledged.
        batch.put(WRITTEN_KEY, token)
        self._db(partition).write(batch)
        await self._send_changelog(partition, items, token)

    async def _send_changelog(self, partition: int, items: Sequence[tuple[bytes, bytes]], token: bytes) -> None:
        """Queue ``items`` for the partition's changelog as whole record batches.

        One ``BatchBuilder`` per up to ``producer_max_batch_size`` bytes instead
        of one ``send`` (with its future and Faust's wrapper) per record: the
        records, their order and their partition are those of
        ``table[key] = value``, at a fraction of the producer's CPU. The
        batches join the producer's accumulator, so ``Consumer.commit``'s
        producer flush waits for them before committing source offsets.
        """
        producer = self.app.producer._ensure_producer()  # Faust's aiokafka producer (at-least-once: one)
        topic = self.table.changelog_topic_name
        tp = TP(topic, partition)
        builder = producer.create_batch()
        count = 0
        for key, value in items:
            if builder.append(key=key, value=value, timestamp=None) is None:
                builder.close()
                await producer.send_batch(builder, topic, partition=partition)
                builder = producer.create_batch()
                count = 0
                if builder.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a {topic} record of {len(key) + len(value)} bytes exceeds the producer batch size")
            count += 1
        # Closed: nothing else joins it, so the sender takes it without lingering.
        builder.close()
        fut = await producer.send_batch(builder, topic, partition=partition)
        last = count - 1
        fut.add_done_callback(lambda f: self._persisted(tp, f, token, last))

    def _persisted(self, tp: TP, fut: Any, token: bytes, last: int) -> None:
        # Like Faust's Collection._on_changelog_sent: remember the changelog offset
        # (of the batch's last record: its base offset plus ``last``) in the
        # partition's RocksDB so recovery reads only what came after it.
        # Batches of one partition are acknowledged in order, so the last batch
        # acknowledged is the last one written once the producer is flushed.
        if fut.cancelled() or fut.exception() is not None:
            return
        if tp.partition in self._store._dbs:
            self._store.set_persisted_offset(tp, fut.result().offset + last)
            self._db(tp.partition).put(ACKED_KEY, token)


def discard_unacknowledged(table_dir: Path) -> list[Path]:
    """Delete every local table partition holding writes its changelog never got; call before Faust starts.

    A worker killed between writing a batch to RocksDB and the broker
    acknowledging the batch's changelog records restarts with local state the
    changelog lacks. Replayed events would then find their facts already merged
    and write nothing, so the changelog (and any worker that later rebuilds
    from it) would miss them for good. Such a partition is deleted here and
    rebuilt from the changelog by Faust's recovery; the replayed events then
    write their facts again.
    """
    discarded = []
    for path in sorted(table_dir.glob("*.db")) if table_dir.is_dir() else []:
        try:
            db = rocksdict.Rdict(
                str(path),
                options=rocksdict.Options(raw_mode=True),
                access_type=rocksdict.AccessType.read_only(),
            )
        except Exception as exc:  # noqa: BLE001 - unreadable: rebuild it rather than trust it
            log.warning("local table %s cannot be opened (%s): rebuilding it from its changelog", path.name, exc)
        else:
            try:
                clean = db.get(WRITTEN_KEY) == db.get(ACKED_KEY)
            finally:
                db.close()
            if clean:
                continue
            log.warning(
                "local table %s has writes its changelog never acknowledged (the worker stopped mid-batch): "
                "rebuilding it from the changelog",
                path.name,
            )
        shutil.rmtree(path)
        discarded.append(path)
    return discarded
