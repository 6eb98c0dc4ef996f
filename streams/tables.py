"""Direct, batched access to a Faust RocksDB table partition.

Faust's ``table[key] = value`` sends one changelog record per write through
its producer buffer, one at a time, and that loop is the worker's ceiling
(docs/streams.md, Faust on this stack). ``PartitionStore`` writes a whole batch to the
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
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import rocksdict
from faust.types import TP

from mailpulse.streams.faust_internals import (
    aiokafka_producer,
    record_changelog_failure,
    store_db,
    store_holds_partition,
)
from mailpulse.topics.contracts import EVENTS

__all__ = ["BatchedSender", "PartitionStore", "discard_unacknowledged", "murmur2", "partition_of"]

log = logging.getLogger(__name__)

#: Local bookkeeping keys, never changelogged: the token of the last batch written
#: to this RocksDB, and of the last batch whose changelog records the broker acknowledged.
WRITTEN_KEY = b"__mailpulse\x00written__"
ACKED_KEY = b"__mailpulse\x00acked__"
_LOCAL_PREFIXES = (b"__faust\x00", b"__mailpulse\x00")
#: Batch tokens: increasing within a process, distinct across restarts.
_tokens = itertools.count(time.time_ns())


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_words = struct.Struct("<I").iter_unpack


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as aiokafka's, faster.

    aiokafka's pure-Python version assembles every 4-byte word from single
    bytes with a dozen masks; here ``struct`` reads the words and only the
    masks the 32-bit arithmetic needs remain (2-2.5x faster). Equal to aiokafka's for every
    input (tests/streams/test_tables.py, hypothesis).
    """
    length = len(data)
    h = 0x9747B28C ^ length
    body = length & ~3
    for (k,) in _words(data[:body]):
        k = (k * _M) & _MASK
        h = ((h * _M) ^ (((k ^ (k >> 24)) * _M) & _MASK)) & _MASK
    tail = length & 3
    if tail:
        if tail == 3:
            h ^= data[body + 2] << 16
        if tail >= 2:
            h ^= data[body + 1] << 8
        h = ((h ^ data[body]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@functools.lru_cache(maxsize=1 << 17)
def partition_of(key: bytes, partitions: int = EVENTS.partitions) -> int:
    """Kafka's default (murmur2) partition of a key: where producers put it and Faust's router looks.

    Cached: the same campaign and contact keys come back with every publication.
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
        return store_db(self._store, partition)

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self._db(partition).get(key)

    def items(self, partition: int, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """The partition's keys and values in key order (from ``start`` on), bookkeeping keys left out."""
        for key, value in self._db(partition).items(from_key=start):
            if not key.startswith(_LOCAL_PREFIXES):
                yield key, value

    def prefixed(self, partition: int, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The partition's keys that start with ``prefix``, and their values (one seek, key order)."""
        for key, value in self._db(partition).items(from_key=prefix):
            if not key.startswith(prefix):
                return
            yield key, value

    async def put_many(
        self, partition: int, items: Sequence[tuple[bytes, bytes | None]], *, atomic: bool = False
    ) -> None:
        """Write ``items`` to the partition's RocksDB and queue their changelog records.

        A None value deletes its key (a tombstone in the changelog). ``atomic``: every record
        goes in one Kafka record batch, which the broker appends whole or not at all, so a
        worker killed while sending leaves either all of them in the changelog or none
        (``ValueError`` if they do not fit in one producer batch; nothing is written then).
        """
        if not items:
            return
        token = str(next(_tokens)).encode()
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in items:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        # Until the broker acknowledges this batch's changelog records, the local
        # store is ahead of the changelog; see discard_unacknowledged.
        batch.put(WRITTEN_KEY, token)
        sender = BatchedSender(self.app, self.table.changelog_topic_name, single_batch=atomic)
        if atomic:
            for key, value in items:  # builds the one batch first: if it does not fit, nothing is written
                await sender.add(partition, key, value)
        self._db(partition).write(batch)
        if not atomic:
            for key, value in items:
                await sender.add(partition, key, value)
        await self._persist_when_sent(partition, sender, token)

    async def _persist_when_sent(self, partition: int, sender: BatchedSender, token: bytes) -> None:
        topic = self.table.changelog_topic_name
        fut, last = (await sender.flush())[partition]
        tp = TP(topic, partition)
        fut.add_done_callback(lambda f: self._persisted(tp, f, token, last))

    def _persisted(self, tp: TP, fut: Any, token: bytes, last: int) -> None:
        # Like Faust's Collection._on_changelog_sent: remember the changelog offset
        # (of the batch's last record: its base offset plus ``last``) in the
        # partition's RocksDB so recovery reads only what came after it.
        # Batches of one partition are acknowledged in order, so the last batch
        # acknowledged is the last one written once the producer is flushed.
        if fut.cancelled() or fut.exception() is not None:
            exc = fut.exception() if not fut.cancelled() else RuntimeError("changelog batch cancelled")
            log.error("the changelog batch for %s[%s] was not written: %r", tp.topic, tp.partition, exc)
            record_changelog_failure(self.app, exc)
            return
        if store_holds_partition(self._store, tp.partition):
            self._store.set_persisted_offset(tp, fut.result().offset + last)
            self._db(tp.partition).put(ACKED_KEY, token)


class BatchedSender:
    """Records for one topic, queued to the producer as whole record batches per partition.

    One ``BatchBuilder`` per partition and up to ``producer_max_batch_size``
    bytes instead of one ``send`` (with its future and Faust's wrapper) per
    record: the records, their order and their partition are those of one
    ``send`` each, at a fraction of the producer's CPU. A full batch is sent
    at once, the rest by ``flush``. The batches join the producer's
    accumulator, so ``Consumer.commit``'s producer flush waits for them
    before committing source offsets.
    """

    def __init__(self, app: Any, topic: str, *, single_batch: bool = False) -> None:
        self.producer = aiokafka_producer(app)
        self.topic = topic
        self._open: dict[int, tuple[Any, int]] = {}  # partition -> (builder, records in it)
        self.sent = 0
        #: Every record of a partition in one batch, or ValueError (see PartitionStore.put_many).
        self.single_batch = single_batch

    async def add(self, partition: int, key: bytes, value: bytes | None) -> None:
        builder, count = self._open.get(partition) or (self.producer.create_batch(), 0)
        if builder.append(key=key, value=value, timestamp=None) is None:
            if self.single_batch:
                raise ValueError(f"{count + 1} {self.topic} records do not fit in one producer batch")
            await self._send(builder, partition)
            builder, count = self.producer.create_batch(), 0
            if builder.append(key=key, value=value, timestamp=None) is None:
                size = len(key) + len(value or b"")
                raise ValueError(f"a {self.topic} record of {size} bytes exceeds the producer's batch size")
        self._open[partition] = (builder, count + 1)
        self.sent += 1

    async def flush(self) -> dict[int, tuple[Any, int]]:
        """Send every open batch: partition -> (its future, the index of its last record).

        The future's result's ``offset`` is the batch's base offset.
        """
        out = {}
        for partition, (builder, count) in self._open.items():
            out[partition] = (await self._send(builder, partition), count - 1)
        self._open.clear()
        return out

    async def _send(self, builder: Any, partition: int) -> Any:
        # Closed: nothing else joins it, so the sender takes it without lingering.
        builder.close()
        return await self.producer.send_batch(builder, self.topic, partition=partition)


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
