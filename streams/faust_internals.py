"""The one door to Faust's, aiokafka's and prometheus_client's internals.

mailpulse relies on a few private attributes and methods of faust-streaming
0.15, aiokafka 0.14 and prometheus_client. Every such access is in this
module, and ``NEEDS`` lists each of them with the reason it is needed;
``check_internals`` verifies them at start (``mailpulse worker``,
``mailpulse connect``/``backfill``) and fails with one line naming the
supported versions and what is missing, instead of a crash mid-stream after an
upgrade. ``tests/streams/test_faust_internals.py`` pins the check.

What the worker changes in Faust (docs/streams.md, "No Faust agent reads a
record", explains why):

* **Committed records only.** faust-streaming 0.15.3 creates its worker
  consumer with ``isolation_level="read_uncommitted"`` unless
  ``processing_guarantee`` is ``exactly_once``
  (``AIOKafkaConsumerThread._create_worker_consumer``) and has no setting to
  change it. The connectors publish in Kafka transactions and a connector
  killed mid-batch leaves aborted records behind, which a worker must never
  count. ``ReadCommittedConsumerThread`` lets Faust build its consumer as
  usual and then flips the one attribute aiokafka 0.14 reads when it starts
  its fetcher (``AIOKafkaConsumer._isolation_level``, passed to ``Fetcher`` in
  ``start()``).
* **Bulk agents.** ``ReadCommittedConsumer._drain_messages`` is a copy of
  Faust's record drain loop that hands the raw records of one fetch of a topic
  registered with ``@bulk_agent(app, topic)`` to its handler in one call.
* **No commit after a lost changelog batch** (``ReadCommittedConsumer._commit``).
* **Changelogs restored in bulk.** ``BulkRestoringRecovery`` (installed with
  ``BulkRestoringTableManager``, Faust's ``TableManager`` setting) hands the
  active changelog partitions to a restorer (streams/restore.py) once Faust has
  worked out where each one starts and ends, and before it seeks its consumer
  there; Faust then replays only what the restorer left.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiokafka
import faust
from aiokafka.errors import IllegalStateError
from faust.stores.rocksdb import RocksDBOptions
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport import consumer as _faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types import tuples as _faust_tuples
from mode.utils import futures as _mode_futures

from mailpulse.errors import MailpulseError

__all__ = [
    "NEEDS",
    "SUPPORTED",
    "BulkHandler",
    "BulkRestoringRecovery",
    "BulkRestoringTableManager",
    "IncompatibleInternals",
    "Need",
    "ReadCommittedTransport",
    "aiokafka_producer",
    "bulk_agent",
    "check_internals",
    "fetch_cluster_metadata",
    "gauge_label_values",
    "missing_internals",
    "partition_owner_urls",
    "patch_read_committed",
    "read_offset",
    "set_bulk_restorer",
    "record_changelog_failure",
    "store_db",
    "use_rocksdb_options",
    "store_holds_partition",
]

#: Receives every record of one fetch for its topic, in log order per partition.
BulkHandler = Callable[[list[Any]], Awaitable[None]]

#: The versions this module was read against and is tested with (the worker refuses others).
SUPPORTED = "faust-streaming 0.15.x and aiokafka 0.14.x"
_FAUST_VERSIONS = ("0.15.",)
_AIOKAFKA_VERSIONS = ("0.14.",)

# Module-level names of the drain loop, looked up here so that a release
# without them is reported by check_internals rather than by an ImportError.
_CONSUMER_FETCHING = getattr(_faust_consumer, "CONSUMER_FETCHING", None)
ack_lock = getattr(_faust_tuples, "ack_lock", None)
notify = getattr(_mode_futures, "notify", None)


# ---------------------------------------------------------------------------
# What we rely on, and the start-up check


class IncompatibleInternals(MailpulseError):
    """An installed Faust/aiokafka lacks an internal mailpulse relies on: install the supported versions."""


@dataclass(frozen=True)
class Need:
    """One internal: ``attr`` of ``where`` ("module" or "module:Class"), with its parameters if a method."""

    where: str
    attr: str
    #: Parameter names of a method (``self`` first), or None for an attribute.
    params: tuple[str, ...] | None = None
    #: The commands that rely on it.
    used_by: frozenset[str] = frozenset({"worker"})

    def __str__(self) -> str:
        name = f"{self.where.replace(':', '.')}.{self.attr}"
        return name if self.params is None else f"{name}({', '.join(self.params)})"


_CONNECT = frozenset({"worker", "connect"})
_FA = "faust.transport.drivers.aiokafka"
_CONSUMER = f"{_FA}:Consumer"

#: Every internal this module touches. Instance attributes count when a class
#: of the MRO assigns them in its ``__init__`` (they do not exist on the class).
NEEDS: tuple[Need, ...] = (
    # read_committed: the method that builds the consumer, and the attribute its fetcher reads.
    Need(f"{_FA}:AIOKafkaConsumerThread", "_create_worker_consumer", ("self", "transport")),
    Need(f"{_FA}:Consumer", "_new_consumer_thread", ("self",)),
    Need("aiokafka:AIOKafkaConsumer", "_isolation_level"),
    # The drain loop (a copy of Consumer._drain_messages) and bulk acks.
    Need(_CONSUMER, "_drain_messages", ("self", "fetcher")),
    Need(_CONSUMER, "_wait_next_records", ("self", "timeout")),
    Need(_CONSUMER, "_add_gap", ("self", "tp", "offset_from", "offset_to")),
    Need(_CONSUMER, "_to_message", ("self", "tp", "record")),
    Need(_CONSUMER, "_commit", ("self", "offsets")),
    *(
        Need(_CONSUMER, attr)
        for attr in (
            "_stopped",
            "_read_offset",
            "_commit_every",
            "_unacked_messages",
            "_buffered_partitions",
            "_n_acked",
            "_committed_offset",
            "_acked_index",
            "_acked",
            "_waiting_for_ack",
            "diag",
            "scheduler",
            "suspend_flow",
            "flow_active",
        )
    ),
    Need("faust.transport.consumer", "CONSUMER_FETCHING"),
    Need("faust.types.tuples", "ack_lock"),
    Need("mode.utils.futures", "notify"),
    # Tables written in batches (streams/tables.py): the producer and the RocksDB of a partition.
    Need(f"{_FA}:Producer", "_ensure_producer", ("self",)),
    Need("aiokafka:AIOKafkaProducer", "create_batch", ("self",)),
    Need("aiokafka:AIOKafkaProducer", "send_batch", ("self", "batch", "topic", "partition")),
    Need("faust.stores.rocksdb:Store", "_db_for_partition", ("self", "partition")),
    Need("faust.stores.rocksdb:Store", "_dbs"),
    Need("faust.stores.rocksdb:Store", "set_persisted_offset", ("self", "tp", "offset")),
    # One RocksDB memory budget for every table partition (streams/rocksdb_memory.py): the store
    # opens each partition with its rocksdb_options.as_options().
    Need("faust.stores.rocksdb:Store", "rocksdb_options"),
    Need("faust.stores.rocksdb:RocksDBOptions", "as_options", ("self",)),
    Need("faust.stores.rocksdb:RocksDBOptions", "open", ("self", "path", "read_only")),
    # Bulk restore: where Faust's recovery has worked out each active changelog partition's span.
    Need("faust.tables.manager:TableManager", "_recovery"),
    Need("faust.tables.recovery:Recovery", "_seek_offsets", ("self", "consumer", "tps", "offsets", "title")),
    Need("faust.tables.recovery:Recovery", "active_highwaters"),
    Need("faust.tables.recovery:Recovery", "tp_to_table"),
    Need("faust.stores.rocksdb:Store", "offset_key"),
    # The query API's routing: which worker owns a partition.
    Need("faust.assignor.partition_assignor:PartitionAssignor", "_tps_url"),
    # Progress gauges: the labels a gauge holds.
    Need("prometheus_client:Gauge", "_metrics"),
    # Connectors: a fresh metadata request (aiokafka has no public call for it).
    Need("aiokafka:AIOKafkaConsumer", "_client", used_by=_CONNECT),
    Need("aiokafka.client:AIOKafkaClient", "fetch_all_metadata", ("self",), used_by=_CONNECT),
)


def _assigned_in_init(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        code = getattr(init, "__code__", None)
        if code is not None:
            names.update(code.co_names)
    return names


def _problem(need: Need) -> str | None:
    """What is wrong with ``need`` in the installed packages, or None."""
    module_name, _, class_name = need.where.partition(":")
    try:
        owner: Any = importlib.import_module(module_name)
        if class_name:
            owner = getattr(owner, class_name)
    except (ImportError, AttributeError):
        return f"{need} (no {need.where.replace(':', '.')})"
    if not hasattr(owner, need.attr) and not (isinstance(owner, type) and need.attr in _assigned_in_init(owner)):
        return str(need)
    if need.params is not None:
        try:
            params = tuple(inspect.signature(getattr(owner, need.attr)).parameters)
        except (TypeError, ValueError):
            return f"{need} (no signature)"
        if params != need.params:
            return f"{need} (found ({', '.join(params)}))"
    return None


def missing_internals(command: str = "worker") -> list[str]:
    """Every internal ``command`` relies on that the installed packages lack (empty: all present)."""
    problems = [p for need in NEEDS if command in need.used_by if (p := _problem(need)) is not None]
    if command == "worker" and not (
        faust.__version__.startswith(_FAUST_VERSIONS) and aiokafka.__version__.startswith(_AIOKAFKA_VERSIONS)
    ):
        # The drain loop is a copy of one Faust release's: refuse others even if every name is there.
        problems.insert(0, "a version the worker's copy of Faust's drain loop was not read against")
    return problems


def check_internals(command: str = "worker") -> None:
    """Raise ``IncompatibleInternals`` (one line) unless everything ``command`` relies on is installed."""
    problems = missing_internals(command)
    if problems:
        raise IncompatibleInternals(
            f"needs {SUPPORTED} (found faust-streaming {faust.__version__}, aiokafka {aiokafka.__version__}): "
            f"missing {'; '.join(problems)}"
        )


# ---------------------------------------------------------------------------
# Accessors: the one place each private name is read


def aiokafka_producer(app: faust.App) -> aiokafka.AIOKafkaProducer:
    """Faust's aiokafka producer (at-least-once: the only one), started if need be."""
    return app.producer._ensure_producer()


def partition_owner_urls(app: faust.App) -> Mapping[TP, str]:
    """Topic partition -> web URL of the worker it is assigned to, as Faust's assignor last learnt it."""
    return app.assignor._tps_url


def read_offset(consumer: Any, tp: TP) -> int | None:
    """Offset of the last record of ``tp`` handed over (Faust's own bookkeeping)."""
    return consumer._read_offset.get(tp)


def store_db(store: Any, partition: int) -> Any:
    """The ``rocksdict.Rdict`` of one partition of a Faust RocksDB store (opened if need be)."""
    return store._db_for_partition(partition)


class _OptionsFrom(RocksDBOptions):
    """Faust's RocksDB options of a table, built by a callable (one shared memory budget)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        super().__init__(use_rocksdict=True)
        self._build = build

    def as_options(self) -> Any:
        return self._build()


def use_rocksdb_options(table: Any, build: Callable[[], Any]) -> None:
    """Open every partition of ``table`` with the ``rocksdict.Options`` that ``build()`` returns.

    Faust builds each partition's options from numbers (its own cache per
    partition); a shared cache and write-buffer manager need the objects.
    Call before the table opens a partition.
    """
    store = table.data
    if store._dbs:
        raise RuntimeError(f"table {table.name} already opened partitions {sorted(store._dbs)}")
    store.rocksdb_options = _OptionsFrom(build)


def store_holds_partition(store: Any, partition: int) -> bool:
    """Whether the store has the partition's RocksDB open (it is dropped when the partition is revoked)."""
    return partition in store._dbs


def gauge_label_values(gauge: Any) -> list[tuple[str, ...]]:
    """The label values of every child of a labelled prometheus_client metric."""
    return list(gauge._metrics)


async def fetch_cluster_metadata(consumer: aiokafka.AIOKafkaConsumer) -> Any:
    """A fresh metadata request (an unsubscribed consumer has none cached; aiokafka has no public call)."""
    return await consumer._client.fetch_all_metadata()


# ---------------------------------------------------------------------------
# The read-committed consumer and its bulk drain loop


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        if getattr(consumer, "_isolation_level", None) not in ("read_uncommitted", "read_committed"):
            raise RuntimeError("aiokafka consumer has no _isolation_level: faust_internals needs updating")
        consumer._isolation_level = "read_committed"
        return consumer


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _commit(self, offsets: Any) -> bool:
        # Faust commits right after flushing the producer, and the flush does not
        # check results: a changelog batch that failed for good would have its
        # events committed while no changelog holds their facts. Crash instead;
        # the restart discards the local tables ahead of their changelog
        # (streams.tables.discard_unacknowledged) and replays from the last commit.
        failure = self.transport.changelog_failure
        if failure is not None:
            self.log.error("not committing offsets: a changelog batch was not written (%r)", failure)
            await self.crash(failure)
            return False
        return bool(await super()._commit(offsets))

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised by every worker test
        """Faust 0.15.3's ``Consumer._drain_messages``, with records of bulk topics handed over in batches.

        Faust turns every record into a message, hands it to the conductor, which
        builds an event and puts it in a stream queue, and an agent iterates and
        acks it: over half of a worker's CPU (profiled), and a path whose
        flow-control races (queue clears cancelling blocked puts, records
        dropped mid-fetch) are hard to reason about. For a topic registered with
        ``register_bulk_handler`` the raw records of one fetch go to the handler
        in one call, in log order per partition:

        * before the first ``await``, the batch is tracked as one unacked
          message, so a rebalance's ``wait_empty`` waits for it: no write for a
          revoked partition can land after the revocation;
        * the records are acked (Faust's own ack bookkeeping, in bulk) only
          once the handler returned; a handler that raises crashes the
          consumer and nothing of the batch is acked, so it is read again;
        * Faust's read-offset and gap bookkeeping is kept: offsets skipped
          inside a fetch (transaction markers) are recorded as gaps, so commits
          move past them.

        Records of other topics take Faust's path unchanged.
        """
        handlers: dict[str, Any] = getattr(self.transport, "bulk_handlers", {})
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        to_message = self._to_message
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(_CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                if not records or self.should_stop:
                    unset_flag(_CONSUMER_FETCHING)
                    continue
                if not self.flow_active:
                    # As Faust's getmany: whatever was fetched is read again after a seek.
                    await self.perform_seek()
                    await self._rewind_dropped({tp: batch[0].offset for tp, batch in records.items() if batch})
                    unset_flag(_CONSUMER_FETCHING)
                    continue
                token = _Batch()
                self._unacked_messages.add(token)
                bulk: dict[str, list[Any]] = {}
                taken: list[tuple[TP, list[int]]] = []
                others: dict[TP, list[Any]] = {}
                dropped: dict[TP, int] = {}
                for tp, batch in records.items():
                    if not (active is None or tp in active or tp in self._buffered_partitions):
                        # Paused while the fetch was in flight (Faust mutates the active set in place).
                        dropped[tp] = batch[0].offset
                        continue
                    if tp.topic not in handlers:
                        others[tp] = batch
                        continue
                    last = read_offset[tp]
                    if last is not None and batch[0].offset < last:
                        batch = [r for r in batch if r.offset >= last]
                        if not batch:
                            continue
                    offsets = [r.offset for r in batch]
                    gaps = []
                    previous = last
                    for offset in offsets:
                        if previous and offset - previous > 1:
                            gaps.append((previous + 1, offset))
                        previous = offset
                    if gaps and acks_enabled_for(tp.topic):
                        for begin, stop in gaps:
                            await self._add_gap(tp, begin, stop)
                    read_offset[tp] = offsets[-1]
                    bulk.setdefault(tp.topic, []).extend(batch)
                    taken.append((tp, offsets))
                if dropped:
                    await self._rewind_dropped(dropped)
                try:
                    for topic, batch in bulk.items():
                        await handlers[topic](batch)
                        await sleep(0)
                    self._ack_offsets(taken)
                finally:
                    token.acked = True
                    self._unacked_messages.discard(token)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                # Everything else as Faust does it, record by record.
                for tp, record in self.scheduler.iterate(others):
                    if not self.flow_active:
                        break
                    message = to_message(tp, record)
                    offset = message.offset
                    r_offset = read_offset[tp]
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                        read_offset[tp] = offset
                unset_flag(_CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            await self.crash(exc)
            raise
        finally:
            unset_flag(_CONSUMER_FETCHING)

    async def _rewind_dropped(self, dropped: dict[TP, int]) -> None:
        """Move each partition whose fetched records were dropped back to the first of them.

        Faust drops records fetched for a partition that was paused (or for
        every partition when the flow stopped) while the fetch was in flight,
        and relies on a later seek to committed offsets to read them again. But
        aiokafka's ``seek_to_committed`` skips a partition that has no
        committed offset yet, so on a fresh group the dropped records were never
        read again: a first batch of a partition silently lost (seen after a
        restart, when recovery resumed the partitions mid-fetch). Only ever
        rewinds: a position at or before the first dropped record (after a
        seek to committed offsets, say) is left alone, and records read twice
        change nothing.
        """
        assignment = self.assignment()
        for tp, first in dropped.items():
            if tp not in assignment:
                continue  # revoked: its next owner starts from the committed offset
            try:
                position = await self.position(tp)
                if position is not None and position > first:
                    self.log.info(
                        "re-reading %s from offset %s: its fetched records were dropped by a pause", tp, first
                    )
                    await self.seek(tp, first)
            except IllegalStateError:
                continue  # revoked meanwhile (a rebalance): as above

    def _ack_offsets(self, taken: list[tuple[TP, list[int]]]) -> None:
        """``Consumer.ack`` for whole batches of offsets: Faust's bookkeeping, one lock per fetch."""
        with ack_lock:
            n = 0
            for tp, offsets in taken:
                if not self.app.topics.acks_enabled_for(tp.topic):
                    continue
                committed = self._committed_offset[tp]
                acked_index = self._acked_index[tp]
                acked = self._acked[tp]
                for offset in offsets:
                    if (committed is None or offset >= committed) and offset not in acked_index:
                        acked_index.add(offset)
                        acked.append(offset)
                        n += 1
            self._n_acked += n
            notify(self._waiting_for_ack)


class _Batch:
    """Stands for a batch in flight in ``Consumer._unacked_messages`` (a WeakSet Faust's wait_empty polls)."""

    __slots__ = ("acked", "refcount", "__weakref__")

    def __init__(self) -> None:
        self.acked = False
        self.refcount = 1


class ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = ReadCommittedConsumer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Topic name -> ``async handler(list[Message])``; see ``ReadCommittedConsumer._drain_messages``.
        self.bulk_handlers: dict[str, BulkHandler] = {}
        #: The error of a changelog batch the producer gave up on; no commit happens after it.
        self.changelog_failure: BaseException | None = None


def patch_read_committed(app: faust.App) -> None:
    """Use the read-committed transport for ``app``: call right after creating it, before any topic."""
    check_internals("worker")
    # Same construction as faust.App._new_transport, with our class.
    app.transport = ReadCommittedTransport(app.conf.broker_consumer, app)


def record_changelog_failure(app: faust.App, exc: BaseException) -> None:
    """Stop every later offset commit of ``app``'s consumer (see ``ReadCommittedConsumer._commit``)."""
    transport = app.transport
    if isinstance(transport, ReadCommittedTransport) and transport.changelog_failure is None:
        transport.changelog_failure = exc


def register_bulk_handler(app: faust.App, topic: Any, handler: BulkHandler) -> None:
    """Subscribe ``topic`` and hand its records to ``handler`` in batches, bypassing Faust's streams.

    The topic joins the conductor's subscription (so Faust's assignor
    co-partitions it with the tables, and acks and commits cover it), but no
    agent reads it: ``ReadCommittedConsumer._drain_messages`` calls ``handler``
    with each fetch's records and acks them when it returns.
    """
    transport = app.transport
    if not isinstance(transport, ReadCommittedTransport):
        raise RuntimeError("register_bulk_handler needs patch_read_committed(app) first")
    for name in topic.topics:
        transport.bulk_handlers[name] = handler
    app.topics.add(topic)


def bulk_agent(app: faust.App, topic: Any) -> Callable[[BulkHandler], BulkHandler]:
    """Decorator: the batch handler of ``topic``, Faust's ``@app.agent(topic)`` for whole fetches.

    ::

        @bulk_agent(app, events_topic)
        async def messages(records: list[Message]) -> None: ...

    The handler gets every record of one fetch of the topic (``record.key``,
    ``.value``, ``.topic``, ``.partition``, ``.offset``), in log order per
    partition; they are acked when it returns, and a handler that raises
    crashes the worker with nothing of the batch acked.
    """

    def register(handler: BulkHandler) -> BulkHandler:
        register_bulk_handler(app, topic, handler)
        return handler

    return register


# ---------------------------------------------------------------------------
# Changelogs restored in bulk (streams/restore.py)

#: ``async restorer(jobs) -> {(topic, partition): last offset applied}``; jobs are ``streams.restore.RestoreJob``.
BulkRestorer = Callable[[list[Any]], Awaitable[Mapping[tuple[str, int], int]]]


class BulkRestoringRecovery(Recovery):
    """Faust's recovery, with the active changelog partitions first restored by ``bulk_restorer``.

    ``_restart_recovery`` builds each active partition's highwater and the offset
    its store holds, then seeks the consumer there and replays the rest record by
    record. This hooks the seek: the restorer gets the spans first, and the
    offsets it reached become the ones Faust seeks to (and compares with the
    highwaters to decide whether anything is left).
    """

    bulk_restorer: BulkRestorer | None = None

    async def _seek_offsets(self, consumer: Any, tps: Any, offsets: Any, title: str) -> None:
        if title == "active" and self.bulk_restorer is not None and tps:
            from mailpulse.streams.restore import RestoreJob

            jobs = []
            for tp in tps:
                highwater = self.active_highwaters.get(tp)
                if highwater is None or highwater < 0:
                    continue
                table = self.tp_to_table[tp]
                store: Any = table.data  # type: ignore[attr-defined]  # a Table's store
                jobs.append(
                    RestoreJob(
                        table=table.name,
                        topic=tp.topic,
                        partition=tp.partition,
                        db=store_db(store, tp.partition),
                        offset_key=store.offset_key,
                        next_offset=max(offsets[tp], -1) + 1,
                        end_offset=highwater + 1,
                    )
                )
            reached = await self.bulk_restorer(jobs)
            for tp in tps:
                offset = reached.get((tp.topic, tp.partition))
                if offset is not None:
                    offsets[tp] = offset
        await super()._seek_offsets(consumer, tps, offsets, title)


class BulkRestoringTableManager(TableManager):
    """Faust's table manager, with ``BulkRestoringRecovery`` as its recovery (``App(TableManager=...)``)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BulkRestoringRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


def set_bulk_restorer(app: faust.App, restorer: BulkRestorer) -> None:
    """Restore ``app``'s changelogs with ``restorer`` before Faust's replay (the app needs BulkRestoringTableManager)."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # TableManager has it, its protocol not
    if not isinstance(recovery, BulkRestoringRecovery):
        raise RuntimeError("set_bulk_restorer needs faust.App(TableManager=BulkRestoringTableManager)")
    recovery.bulk_restorer = restorer
