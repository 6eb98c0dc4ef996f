"""Make Faust's stream consumer read committed records only.

faust-streaming 0.15.3 creates its worker consumer with
``isolation_level="read_uncommitted"`` unless ``processing_guarantee`` is
``exactly_once`` (``faust/transport/drivers/aiokafka.py``,
``AIOKafkaConsumerThread._create_worker_consumer``), and has no setting to
change it. The connectors publish in Kafka transactions and a connector killed
mid-batch leaves aborted records behind, which a worker must never count.

The override below lets Faust build its consumer as usual and then flips the
one attribute aiokafka 0.14 reads when it starts its fetcher
(``AIOKafkaConsumer._isolation_level``, passed to ``Fetcher`` in ``start()``).
It is pinned: on other versions it refuses to run rather than silently
reading aborted records. ``tests/streams/test_kafka_compat.py`` proves it with
an aborted transaction against the real broker.

The same pinned consumer class also carries a faster copy of Faust's record
drain loop (``ReadCommittedConsumer._drain_messages``, see its docstring).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka
import faust
from faust.transport.consumer import CONSUMER_FETCHING as _CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["ReadCommittedTransport", "patch_read_committed"]

#: Versions the override was read against and is tested with.
_FAUST_VERSIONS = ("0.15.",)
_AIOKAFKA_VERSIONS = ("0.14.",)


def _check_versions() -> None:
    if not faust.__version__.startswith(_FAUST_VERSIONS) or not aiokafka.__version__.startswith(_AIOKAFKA_VERSIONS):
        raise RuntimeError(
            f"streams.kafka_compat was written for faust-streaming 0.15 and aiokafka 0.14 "
            f"(found {faust.__version__} and {aiokafka.__version__}): re-read "
            "AIOKafkaConsumerThread._create_worker_consumer before upgrading"
        )


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        if getattr(consumer, "_isolation_level", None) not in ("read_uncommitted", "read_committed"):
            raise RuntimeError("aiokafka consumer has no _isolation_level: kafka_compat needs updating")
        consumer._isolation_level = "read_committed"
        return consumer


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised by every worker test
        """Faust 0.15.3's ``Consumer._drain_messages`` with a fast path.

        Faust hands every record to the conductor through ``wait_first(callback,
        suspend_flow.wait())``, which creates four tasks per record: the largest
        single cost of a worker (profiled). The tasks exist so that a callback
        blocked on suspended flow control can be abandoned at a rebalance. When
        neither the consumer's flow nor the app's flow control is suspended the
        callback cannot block on them, so it is awaited directly; otherwise
        Faust's path runs unchanged. Everything else is Faust's code as is.
        """
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        flow_active = self.app.flow_control.is_active
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(_CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset:
                                if acks_enabled_for(message.topic):
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            if not suspended() and flow_active():
                                # Step the callback once: it almost always completes
                                # without suspending (the record goes into a stream
                                # queue), and then no task is needed at all.
                                coro = callback(message)
                                try:
                                    first = coro.send(None)
                                except StopIteration:
                                    pass
                                else:
                                    # It would block (full stream queue, producer
                                    # buffer, flow control): finish it as Faust does,
                                    # raced against a rebalance suspending the flow.
                                    task = asyncio.ensure_future(_finish(coro, first))
                                    await self.wait_first(task, self.suspend_flow.wait())
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
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
            raise
        finally:
            unset_flag(_CONSUMER_FETCHING)


class _Resume:
    """Continue a coroutine that was stepped once by hand and yielded ``first`` (a future)."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Any:
        value = self.first
        while True:
            try:
                yield value  # the running task waits for it, then resumes us
            except BaseException as exc:  # cancellation included: pass it into the coroutine
                try:
                    value = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = self.coro.send(None)
                except StopIteration as stop:
                    return stop.value


async def _finish(coro: Any, first: Any) -> Any:
    return await _Resume(coro, first)


class ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = ReadCommittedConsumer


def patch_read_committed(app: faust.App) -> None:
    """Use the read-committed transport for ``app``: call right after creating it, before any topic."""
    _check_versions()
    # Same construction as faust.App._new_transport, with our class.
    app.transport = ReadCommittedTransport(app.conf.broker_consumer, app)
