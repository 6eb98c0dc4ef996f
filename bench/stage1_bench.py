"""Stage 1 CPU per event, without Kafka: decode, message-state codec, merge, partition views.

Run from the repository root::

    .venv/bin/python bench/stage1_bench.py [--messages 25000] [--batch 10000] [--repeat 3]

It generates events (``bench/eventgen.py``, ~100k events for 25k messages),
encodes them as the events topic holds them, and feeds them, ``--batch`` raw
records per call, to

* ``end to end``: ``mailpulse.streams.agents.process_events`` itself, on an in-memory
  stand-in for the worker (dict-backed message store whose ``put_many`` only
  stores the values, a producer that drops dead letters, the real metrics).
  RocksDB writes and changelog sends are not in the figure;
* per stage, the same work split by hand: decoding the records, reading and
  decoding message states, merging events, encoding states, updating the
  partition views (``stages``).

Figures are CPU time (``time.process_time``) per event, the best of
``--repeat`` runs, with the load average printed: the machine is shared, so
compare figures of one run with each other. The same script measures older
commits (it uses whatever ``streams`` is importable).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.eventgen import generate_events  # noqa: E402
from mailpulse.streams import agents  # noqa: E402
from mailpulse.streams.aggregates import PartitionView  # noqa: E402
from mailpulse.streams.metrics import WorkerMetrics  # noqa: E402
from mailpulse.streams.reducers import apply_events, decode_state, encode_state  # noqa: E402
from mailpulse.streams.statemetrics import Freshness  # noqa: E402
from mailpulse.streams.tables import partition_of  # noqa: E402
from mailpulse.topics.events import decode_event, encode_event  # noqa: E402

try:  # absent before the lean decoder existed
    from mailpulse.streams.decode import decode_record
except ImportError:  # pragma: no cover
    decode_record = None  # type: ignore[assignment]


class Record(SimpleNamespace):
    """What aiokafka hands over: the fields ``process_events`` reads."""


class MemoryStore:
    """The message table's ``PartitionStore`` interface on dicts (no RocksDB, no changelog)."""

    def __init__(self) -> None:
        self.parts: dict[int, dict[bytes, bytes]] = defaultdict(dict)

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.parts[partition].get(key)

    def items(self, partition: int) -> Any:
        return iter(list(self.parts[partition].items()))

    async def put_many(self, partition: int, items: Any) -> None:
        self.parts[partition].update(items)


class NullProducer:
    async def send(self, *args: Any) -> None:
        return None


def fake_streams() -> Any:
    return SimpleNamespace(
        messages=MemoryStore(),
        views={},
        metrics=WorkerMetrics(),
        freshness=Freshness(),
        app=SimpleNamespace(producer=NullProducer()),
        dlq_name="dlq",
    )


def make_records(messages: int) -> list[Record]:
    gen = generate_events(messages, seed=3, campaigns_per_source=20)
    out = []
    for offset, e in enumerate(gen.events):
        key = e.key.encode()
        out.append(Record(topic="events", partition=partition_of(key), offset=offset, key=key, value=encode_event(e)))
    return out


def timed(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def end_to_end(records: list[Record], batch: int) -> None:
    s = fake_streams()

    async def run() -> None:
        for i in range(0, len(records), batch):
            await agents.process_events(s, records[i : i + batch])

    asyncio.run(run())


def stages(records: list[Record], batch: int) -> dict[str, float]:
    """The stages of the *original* process_events, timed separately (the shape the work had before)."""
    tot = dict.fromkeys(("decode", "codec", "apply", "view"), 0.0)
    states: dict[bytes, bytes] = {}
    views = {p: PartitionView(p, epoch=1) for p in range(8)}
    now = int(time.time() * 1000)
    pc = time.process_time
    for i in range(0, len(records), batch):
        t0 = pc()
        grouped: dict[bytes, list[Any]] = defaultdict(list)
        for r in records[i : i + batch]:
            grouped[r.key].append(decode_event(r.value))
        tot["decode"] += pc() - t0
        for key, evs in grouped.items():
            t0 = pc()
            raw = states.get(key)
            old = None if raw is None else decode_state(raw)
            t1 = pc()
            st = apply_events(old, evs)
            t2 = pc()
            if st is old:
                tot["codec"] += t1 - t0
                tot["apply"] += t2 - t1
                continue
            states[key] = encode_state(st)
            t3 = pc()
            views[partition_of(key)].apply(old, st, now)
            t4 = pc()
            tot["codec"] += (t1 - t0) + (t3 - t2)
            tot["apply"] += t2 - t1
            tot["view"] += t4 - t3
    return tot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=25_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    records = make_records(args.messages)
    n = len(records)
    us = 1e6 / n
    print(f"{n} events ({args.messages} messages), batches of {args.batch}, best of {args.repeat}, CPU time")
    print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    t = timed(lambda: [decode_event(r.value) for r in records], args.repeat)
    print(f"  decode_event (full EmailEvent)      {t * us:6.1f} us/event")
    if decode_record is not None:
        t = timed(lambda: [decode_record(r.value) for r in records], args.repeat)
        print(f"  streams.decode.decode_record (lean) {t * us:6.1f} us/event")
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        gc.collect()
        for k, v in stages(records, args.batch).items():
            best[k] = min(best.get(k, float("inf")), v)
    print(
        "  stages as the EmailEvent path runs them (decode_event, decode/encode_state, apply_events, PartitionView.apply):"
    )
    print(
        "    " + ", ".join(f"{k} {v * us:.1f}" for k, v in best.items()) + f"  = {sum(best.values()) * us:.1f} us/event"
    )
    t = timed(lambda: end_to_end(records, args.batch), args.repeat)
    print(
        f"  process_events end to end (no RocksDB/Kafka) {t * us:6.1f} us/event  ->  {n / t:,.0f} events/s of one core"
    )
    print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
