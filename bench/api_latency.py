"""Query-API latency at a fixed request rate (open loop), for bench/streams_bench.py.

    .venv/bin/python bench/api_latency.py --url http://127.0.0.1:6066 --key campaigns/src:c1 \
        [--key contacts/src:k1 ...] [--rate 1000] [--seconds 15]

``wrk`` and most load tools run a closed loop: a slow answer delays the next request,
so the tool measures its own saturation, not the latency a client sees at a given
load. Here request *i* is due at ``start + i / rate`` whatever happened before, and
its latency is counted from that due time (so time spent queued behind a slow answer
counts: no coordinated omission). The keys are requested round robin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections.abc import Sequence

import aiohttp

__all__ = ["hold_rate"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


async def hold_rate(url: str, paths: Sequence[str], rate: float, seconds: float, connections: int = 64) -> dict:
    """GET ``paths`` round robin at ``rate`` requests/s for ``seconds``; latency percentiles in ms."""
    total = int(rate * seconds)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def one(path: str, due: float) -> None:
            try:
                async with session.get(url + path) as r:
                    await r.read()
                    status = str(r.status)
            except (TimeoutError, aiohttp.ClientError) as e:
                status = type(e).__name__
            latencies.append(time.perf_counter() - due)
            statuses[status] = statuses.get(status, 0) + 1

        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(paths[i % len(paths)], due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies)
    return {
        "rate": rate,
        "requests": total,
        "achieved_rate": round(total / elapsed),
        "statuses": statuses,
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "p999_ms": round(percentile(ms, 0.999), 2),
        "max_ms": round(ms[-1], 2) if ms else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", action="append", required=True, help="campaigns/KEY or contacts/KEY (repeatable)")
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    paths = [f"/v1/{k}" for k in args.key]
    print(json.dumps(asyncio.run(hold_rate(args.url, paths, args.rate, args.seconds))))


if __name__ == "__main__":
    main()
