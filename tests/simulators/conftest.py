"""Fixtures of the simulator tests: a seeded simulator, served on free ports, and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mailpulse.simulators import Simulator, SimulatorConfig, serve_simulators


@dataclass
class Served:
    sim: Simulator
    urls: dict[str, str]
    client: httpx.AsyncClient

    async def get(self, provider: str, path: str, *, auth: bool = True, **params: Any) -> httpx.Response:
        return await self.request("GET", provider, path, auth=auth, params=params)

    async def request(self, method: str, provider: str, path: str, *, auth: bool = True, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        params = dict(kw.pop("params", {}) or {})
        if auth and provider == "smtpeter":
            params.setdefault("access_token", self.sim.credentials["smtpeter"])
        elif auth:
            headers.setdefault("Authorization", f"Bearer {self.sim.credentials[provider]}")
        return await self.client.request(method, self.urls[provider] + path, params=params, headers=headers, **kw)


@pytest.fixture
def sim() -> Simulator:
    return Simulator(SimulatorConfig(seed=7, size=2000))


@pytest.fixture
async def served(sim: Simulator) -> AsyncIterator[Served]:
    async with serve_simulators(sim) as urls:
        async with httpx.AsyncClient(timeout=20) as client:
            yield Served(sim, urls, client)
