"""Long loops hand the event loop back (streams/pacing.py): what the query API's latency rests on."""

from __future__ import annotations

import asyncio
from time import perf_counter

from mailpulse.streams.pacing import Pacer


def test_a_pacer_is_due_only_once_its_slice_has_passed() -> None:
    pacer = Pacer(slice_s=0.05)
    assert not pacer.due()
    started = perf_counter()
    while perf_counter() - started < 0.06:
        pass
    assert pacer.due()


async def test_a_pause_starts_a_new_slice() -> None:
    always = Pacer(slice_s=0.0)
    assert always.due()
    await always.pause()
    assert always.pauses == 1
    rarely = Pacer(slice_s=60.0)
    await rarely.pause()
    assert rarely.pauses == 1
    assert not rarely.due()


async def _other_task_wakeups_during(work) -> int:
    """How often a task that only waits for its turn ran while ``work`` held the loop."""
    wakeups = 0
    stop = False

    async def other() -> None:
        nonlocal wakeups
        while not stop:
            await asyncio.sleep(0)
            wakeups += 1

    task = asyncio.create_task(other())
    await asyncio.sleep(0)  # let it start
    before = wakeups
    await work()
    during = wakeups - before
    stop = True
    await task
    return during


async def test_work_that_checks_its_pacer_lets_other_tasks_run_and_work_that_does_not_starves_them() -> None:
    pacer = Pacer(slice_s=0.002)

    async def paced() -> None:
        started = perf_counter()
        while perf_counter() - started < 0.05:
            if pacer.due():
                await pacer.pause()

    async def unpaced() -> None:
        started = perf_counter()
        while perf_counter() - started < 0.05:
            pass

    assert await _other_task_wakeups_during(paced) >= 1
    assert pacer.pauses >= 1
    assert await _other_task_wakeups_during(unpaced) == 0
