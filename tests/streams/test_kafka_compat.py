"""The pinned consumer override: read_committed isolation and the drain loop's stepping helper.

(The aborted-transaction proof against the real broker is in test_api_integration.py.)
"""

from __future__ import annotations

import asyncio

import pytest

from mailpulse.config import Config
from streams.kafka_compat import ReadCommittedConsumerThread, ReadCommittedTransport, _finish


async def test_a_coroutine_stepped_by_hand_finishes_in_a_task_with_its_result() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def blocked() -> int:
        value = await gate
        await asyncio.sleep(0)
        return value + 1

    coro = blocked()
    first = coro.send(None)  # suspends on the gate
    task = asyncio.ensure_future(_finish(coro, first))
    await asyncio.sleep(0.01)
    assert not task.done()
    gate.set_result(41)
    assert await task == 42


async def test_cancelling_the_task_cancels_the_stepped_coroutine() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned = []

    async def blocked() -> None:
        try:
            await gate
        finally:
            cleaned.append(True)

    coro = blocked()
    task = asyncio.ensure_future(_finish(coro, coro.send(None)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]


def test_the_worker_app_uses_the_read_committed_consumer() -> None:
    from streams.app import create_app

    s = create_app(Config())
    assert isinstance(s.app.transport, ReadCommittedTransport)
    assert s.app.transport.Consumer._new_consumer_thread.__qualname__.startswith("ReadCommittedConsumer")
    assert issubclass(ReadCommittedConsumerThread, __import__("faust.transport.drivers.aiokafka", fromlist=["x"]).AIOKafkaConsumerThread)
