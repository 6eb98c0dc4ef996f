"""Normalisation speed per provider (records/s on one core), and optionally poll -> Kafka end to end.

    .venv/bin/python bench/connectors_bench.py                    # normalise only
    .venv/bin/python bench/connectors_bench.py --e2e HOST:PORT   # + a SmartCQ and a SuperSend poll into Kafka

Raw records come from the simulators (the shapes the APIs return), repeated up
to ``--records``. The clock is ``time.perf_counter``; the best of ``--repeat`` runs is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mailpulse.connectors.providers import smartcq, smartersends, smtpeter, supersend
from mailpulse.simulators import Simulator, SimulatorConfig

OBSERVED = datetime(2026, 11, 23, tzinfo=UTC)


def corpus(sim: Simulator, n: int) -> dict[str, tuple[list[Any], Callable[[Any], Any]]]:
    def grow(items: list[Any]) -> list[Any]:
        return (items * (n // max(1, len(items)) + 1))[:n]

    sends = grow(sim.snapshot("smartcq"))
    contacts = grow(sim.snapshot("smartcq", kind="contacts"))
    peter = grow(smtpeter.with_ordinals("template:42", sim.snapshot("smtpeter", template=42)))
    rows = grow(sim.snapshot("supersend"))
    campaigns = grow([c for c in sim.snapshot("smartersends", kind="campaigns") if c.get("sent_mailing_id")])
    return {
        "smartcq sends": (sends, lambda r: smartcq.normalise(r, source="acme", observed_at=OBSERVED)),
        "smartcq contacts": (contacts, lambda r: smartcq.normalise_contact(r, source="acme", observed_at=OBSERVED)),
        "smtpeter events": (
            peter,
            lambda r: smtpeter.normalise(r[2], source="acme", campaign_id=r[0], observed_at=OBSERVED, ordinal=r[1]),
        ),
        "supersend events": (rows, lambda r: supersend.normalise(r, source="acme", observed_at=OBSERVED)),
        "smartersends campaigns": (
            campaigns,
            lambda r: smartersends.normalise_campaign(r, source="acme", observed_at=OBSERVED),
        ),
    }


def bench_normalise(n: int, repeat: int) -> None:
    sim = Simulator(SimulatorConfig(seed=1, size=4000))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"normalise: {n} records per provider, best of {repeat} (python {'.'.join(map(str, sys.version_info[:3]))}, "
        f"{os.cpu_count()} cores, load average {load:.1f}: CPU-seconds discount other processes)"
    )
    for name, (records, fn) in corpus(sim, n).items():
        best = best_cpu = float("inf")
        outputs = 0
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            out = 0
            for r in records:
                res = fn(r)
                out += len(res) if isinstance(res, list) else 1
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
            outputs = out
        print(
            f"  {name:<24} {n / best:>10,.0f} records/s wall  {n / best_cpu:>10,.0f} records/s per CPU-second"
            f"   ({outputs / n:.2f} outputs/record = {outputs / best_cpu:>9,.0f} outputs/s per CPU-second)"
        )


async def bench_e2e(bootstrap: str, size: int) -> None:
    from mailpulse.config import Config
    from mailpulse.connectors.http import RetryPolicy
    from mailpulse.connectors.runner import SourceRunner
    from mailpulse.simulators import serve_simulators
    from mailpulse.topics.admin import ensure_topics

    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await ensure_topics(bootstrap, prefix=prefix, replication_factor=1)
    sim = Simulator(SimulatorConfig(seed=2, size=size))
    async with serve_simulators(sim, providers=("smartcq", "supersend")) as urls:
        for provider, key in (("smartcq", "sim-smartcq-key"), ("supersend", "sim-supersend-key")):
            config = Config.model_validate(
                {
                    "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix},
                    "sources": [
                        {"name": f"bench-{provider}", "provider": provider, "base_url": urls[provider], "api_key": key}
                    ],
                }
            )
            runner = SourceRunner(
                config,
                config.sources[0],
                clock=lambda: sim.now,
                retry=RetryPolicy(base_delay=0.01),
                streams=("sends", "events"),
            )
            t0 = time.perf_counter()
            await runner.start()
            t1 = time.perf_counter()
            results = await runner.run_once("poll")
            t2 = time.perf_counter()
            await runner.close()
            r = next(iter(results.values()))
            print(
                f"  {provider:<10} poll -> Kafka: {r.records:,} records, {r.events:,} events in {t2 - t1:.1f}s = "
                f"{r.records / (t2 - t1):,.0f} records/s, {r.events / (t2 - t1):,.0f} events/s "
                f"({r.transactions} transactions; start incl. state read {t1 - t0:.1f}s)"
            )
            # Restart cost: rebuild the index from the events just published.
            again = SourceRunner(config, config.sources[0], clock=lambda: sim.now, streams=("sends", "events"))
            t0 = time.perf_counter()
            await again.start()
            t1 = time.perf_counter()
            await again.close()
            print(f"  {provider:<10} restart: state rebuilt from {r.events:,} events in {t1 - t0:.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--e2e", metavar="BOOTSTRAP", help="also poll the simulators into this Kafka")
    parser.add_argument("--size", type=int, default=20_000, help="simulated messages for --e2e")
    args = parser.parse_args()
    bench_normalise(args.records, args.repeat)
    if args.e2e:
        print(f"end to end (simulator in this process, size {args.size}):")
        asyncio.run(bench_e2e(args.e2e, args.size))


if __name__ == "__main__":
    main()
