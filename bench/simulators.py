"""Provider simulators: generation, snapshot and HTTP page times per provider.

    python bench/simulators.py [--sizes 2000,20000,100000] [--pages 200]

Prints a calibration figure (CPU seconds of a plain 10M-iteration loop, to
compare machines), then one line per (size, provider): records visible at the
clock start, CPU seconds to generate, seconds to render the full snapshot, and
the mean time of one API page served over real HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from mailpulse.simulators import PROVIDERS, Simulator, SimulatorConfig, serve_simulators

__all__ = ["main"]

_PAGE = {
    "smartcq": ("/api/v1/sends", {"limit": "500"}),
    "smtpeter": ("/v1/events/tags/newsletter", {}),
    "supersend": ("/v2/events", {"limit": "100"}),
    "smartersends": ("/api/events", {}),
}


def _snapshot(sim: Simulator, provider: str) -> list:
    return sim.snapshot(provider, **({"kind": "campaigns"} if provider == "smartersends" else {}))


async def _pages(sim: Simulator, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with serve_simulators(sim) as urls, httpx.AsyncClient(timeout=60) as client:
        for p in PROVIDERS:
            path, params = _PAGE[p]
            headers, query = {}, dict(params)
            if p == "smtpeter":
                query["access_token"] = sim.credentials[p]
            else:
                headers["Authorization"] = f"Bearer {sim.credentials[p]}"
            began = time.perf_counter()
            for _ in range(n):
                (await client.get(urls[p] + path, params=query, headers=headers)).raise_for_status()
            out[p] = (time.perf_counter() - began) / n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000,100000")
    parser.add_argument("--pages", type=int, default=100)
    args = parser.parse_args()
    began = time.process_time()
    x = 0
    for i in range(10_000_000):
        x += i
    # A yardstick: this loop takes about 0.4 s of CPU on an idle modern core.
    print(f"calibration: a 10M-iteration Python loop took {time.process_time() - began:.2f} s CPU")
    print(f"{'size':>7} {'provider':<13} {'records':>8} {'gen cpu s':>11} {'snapshot s':>11} {'page ms':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        sim = Simulator(SimulatorConfig(seed=1, size=size))
        rows = []
        for p in PROVIDERS:
            began = time.process_time()
            sim.data(p)
            generated = time.process_time() - began
            began = time.perf_counter()
            n = len(_snapshot(sim, p))
            rows.append((p, n, generated, time.perf_counter() - began))
        pages = asyncio.run(_pages(sim, args.pages))
        for p, n, generated, snap in rows:
            print(f"{size:>7} {p:<13} {n:>8} {generated:>11.2f} {snap:>11.2f} {pages[p] * 1000:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
