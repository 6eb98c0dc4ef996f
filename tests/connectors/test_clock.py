"""``--clock-url``: the poller follows a simulator's clock, never ahead of it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from mailpulse.connectors.clock import RemoteClock
from mailpulse.connectors.errors import ConnectorError
from mailpulse.simulators import Simulator, SimulatorConfig, serve_simulators


async def test_the_remote_clock_follows_advances_of_the_simulated_clock():
    sim = Simulator(SimulatorConfig(seed=1, size=50))
    async with serve_simulators(sim, providers=("smartcq",)) as urls:
        clock = RemoteClock(urls["smartcq"] + "/_sim/now", interval=0.02)
        await clock.start()
        try:
            assert clock() == sim.now
            sim.advance(timedelta(hours=5))
            for _ in range(200):
                if clock() == sim.now:
                    break
                await asyncio.sleep(0.01)
            assert clock() == sim.now
        finally:
            await clock.stop()


async def test_an_unreachable_clock_is_a_clear_error():
    clock = RemoteClock("http://127.0.0.1:9/_sim/now?access_token=secret")
    with pytest.raises(ConnectorError, match="cannot read the provider clock") as info:
        await clock.start()
    assert "secret" not in str(info.value)
    await clock.stop()
