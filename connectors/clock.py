"""The provider's clock, when it is not the wall clock (the simulators run a simulated one).

Windows and signposts must follow the clock the provider stamps its records
with: ``mailpulse connect --clock-url http://127.0.0.1:8701/_sim/now`` polls a
simulator's ``/_sim/now``. The value is refreshed in the background and
never extrapolated, so it is never ahead of the provider (a signpost ahead of
the provider could let rows created during a pass shift SuperSend's offsets).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import httpx

from mailpulse.connectors.errors import ConnectorError
from mailpulse.connectors.redact import redact_url
from mailpulse.topics.events import parse_timestamp

__all__ = ["RemoteClock", "CLOCK_URL_ENV"]

log = logging.getLogger(__name__)

CLOCK_URL_ENV = "MAILPULSE_CLOCK_URL"


class RemoteClock:
    def __init__(self, url: str, interval: float = 0.5) -> None:
        self.url = url
        self.interval = interval
        self._now: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=5.0)

    def __call__(self) -> datetime:
        if self._now is None:
            raise RuntimeError("RemoteClock used before start()")
        return self._now

    async def _fetch(self) -> datetime:
        response = await self._client.get(self.url)
        response.raise_for_status()
        return parse_timestamp(response.json()["now"])

    async def start(self) -> None:
        try:
            self._now = await self._fetch()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise ConnectorError(
                f"--clock-url {redact_url(self.url)}: cannot read the provider clock ({type(exc).__name__})"
            ) from None
        self._task = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                now = await self._fetch()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                log.warning(
                    "provider clock %s unreadable (%s); keeping %s", redact_url(self.url), type(exc).__name__, self._now
                )
                continue
            if self._now is None or now > self._now:
                self._now = now

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()
