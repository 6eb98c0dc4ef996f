"""Sharing the event loop: long loops hand it back every few milliseconds.

The agents, the publishing timer, Faust's consumer and heartbeats and the query
API all run on one asyncio loop. Merging a fetch of 10,000 events, a stage-2
merge of 5,000 partials or a view's publish of 20,000 contacts is tens to
hundreds of milliseconds of Python with no ``await`` that suspends, and a
request arriving meanwhile waits for all of it (p99 of about 750 ms for a key at
1,000 requests/s while a restarted worker republished its state). Such loops
check ``pacer.due()`` as they go and ``await pacer.pause()`` when it says so:
then no stretch of their work holds the loop much longer than ``SLICE_SECONDS``.

A pause is ``asyncio.sleep(0)``: the loop polls its sockets and runs whatever
became ready (a request, a fetch, a heartbeat) before the loop goes on, so a
pause costs a few microseconds when nothing waits. Whoever pauses must leave
shared state consistent at that point (see the callers).
"""

from __future__ import annotations

import asyncio
from time import perf_counter

__all__ = ["SLICE_SECONDS", "Pacer"]

#: Longest stretch of work between two pauses (the API's p99 target is 10 ms).
SLICE_SECONDS = 0.002


class Pacer:
    """Says when ``slice_s`` has passed since the last pause (or since it was made)."""

    __slots__ = ("_deadline", "_slice_s", "pauses")

    def __init__(self, slice_s: float = SLICE_SECONDS) -> None:
        self._slice_s = slice_s
        self._deadline = perf_counter() + slice_s
        #: Pauses taken so far (the tests read it).
        self.pauses = 0

    def due(self) -> bool:
        return perf_counter() >= self._deadline

    async def pause(self) -> None:
        """Let the loop run everything that is ready, then start a new slice."""
        await asyncio.sleep(0)
        self.pauses += 1
        self._deadline = perf_counter() + self._slice_s
