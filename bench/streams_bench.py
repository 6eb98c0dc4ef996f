"""End-to-end throughput of the streams worker, side by side with a Quix Streams peer.

    .venv/bin/python bench/streams_bench.py [--events 300000] [--bootstrap HOST:PORT] [--no-peer]

1. starts a throwaway local Kafka broker (or uses ``--bootstrap``), creates the
   contract topics under a fresh prefix;
2. generates a realistic event set (bench/eventgen.py: three providers,
   duplicates, reordering; keys ``{source}:{message_id}``, 8 partitions) and
   publishes it twice: once for the worker, once for the peer;
3. runs one ``mailpulse worker`` subprocess and times it from its first event
   read to the moment every event is merged, every partial is consumed by
   stage 2 and the campaign totals are exact; reads its peak RSS (VmHWM);
4. runs the peer (bench/peer_quix.py, Quix Streams in bench/.venv-peer, which
   this script creates on first use) on the same events, timed the same way;
5. prints both figures and their ratio.

The machine is shared (2 cores, other agents at work): figures are noisy,
run it more than once before trusting a difference under ~10%.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import yaml
from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.eventgen import generate_events  # noqa: E402
from mailpulse.devkafka import LocalKafka, free_port  # noqa: E402
from mailpulse.streams.reducers import COUNT_FIELDS, apply_events, campaign_key, contribution  # noqa: E402
from mailpulse.topics.admin import ensure_topics  # noqa: E402
from mailpulse.topics.contracts import EVENTS, topic_name  # noqa: E402
from mailpulse.topics.events import encode_event  # noqa: E402

PEER_VENV = ROOT / "bench" / ".venv-peer"
PROGRESS_METRICS = [
    ("name[]", name)
    for name in (
        "mailpulse_stream_events_total",
        "mailpulse_stream_partials_published_total",
        "mailpulse_stream_partials_consumed_total",
        "mailpulse_stream_state_writes_total",
    )
]
PEER_REQUIREMENT = "quixstreams>=3.28,<4"


def ensure_peer_venv() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import quixstreams"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEER_REQUIREMENT], check=True)
    return python


async def publish(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1 << 20, acks=1)
    await producer.start()
    started = time.perf_counter()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not want or want in line) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] == name:
                total += float(value)
    return total


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_worker(bootstrap: str, prefix: str, n_events: int, expected_sent: int, workdir: Path) -> dict:
    port = free_port()
    config = workdir / "worker.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "replication_factor": 1},
                "worker": {"web_port": port, "web_host": "127.0.0.1", "data_dir": str(workdir / "worker-data")},
            }
        )
    )
    log = open(workdir / "worker.log", "wb")
    profile = os.environ.get("MAILPULSE_BENCH_PROFILE")  # a path: run the worker under cProfile
    prof_args = ["-m", "cProfile", "-o", profile] if profile else []
    proc = subprocess.Popen(
        [sys.executable, *prof_args, "-m", "mailpulse.cli", "worker", "--config", str(config)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    t0 = t1 = None
    try:
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise SystemExit(f"worker exited with {proc.returncode}; see {workdir / 'worker.log'}")
                try:
                    # Only the progress counters: a scrape of every state-derived series four times a
                    # second would cost the worker what Prometheus (every 15-30 s) never does.
                    text = client.get(url + "/metrics", params=PROGRESS_METRICS).text
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                seen = metric(text, "mailpulse_stream_events_total")
                if seen > 0 and t0 is None:
                    t0 = time.perf_counter()
                published = metric(text, "mailpulse_stream_partials_published_total")
                consumed = metric(text, "mailpulse_stream_partials_consumed_total")
                if seen >= n_events and consumed >= published > 0:
                    items = client.get(url + "/v1/campaigns", params={"limit": 1000}).json().get("items", [])
                    if sum(i["counts"]["sent"] for i in items) == expected_sent:
                        t1 = time.perf_counter()
                        break
                time.sleep(0.25)
        if t0 is None or t1 is None:
            raise SystemExit("worker did not finish within 15 minutes")
        rss = peak_rss_mb(proc.pid)
        writes = metric(text, "mailpulse_stream_state_writes_total")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    seconds = t1 - t0
    return {
        "seconds": round(seconds, 2),
        "events_per_s": round(n_events / seconds),
        "peak_rss_mb": round(rss),
        "table_writes_per_event": round(writes / n_events, 2),
    }


def run_peer(python: Path, bootstrap: str, topic: str, n_events: int, expected_sent: int, workdir: Path) -> dict:
    out = subprocess.run(
        [
            str(python),
            str(ROOT / "bench" / "peer_quix.py"),
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            f"peer-{uuid.uuid4().hex[:6]}",
            "--state-dir",
            str(workdir / "peer-state"),
            "--events",
            str(n_events),
            "--expected-sent",
            str(expected_sent),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise SystemExit(f"peer failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["campaign_sent"] != expected_sent:
        raise SystemExit(f"peer's campaign totals are wrong: {result}")
    return result


def expected_totals(events: list) -> int:
    by_key: dict[str, list] = {}
    for e in events:
        by_key.setdefault(e.key, []).append(e)
    sent = 0
    for evs in by_key.values():
        st = apply_events(None, evs)
        if st is not None and campaign_key(st) is not None:
            sent += contribution(st).counts[COUNT_FIELDS.index("sent")]
    return sent


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300_000, help="about this many events (duplicates included)")
    ap.add_argument("--bootstrap", help="use this broker instead of starting one")
    ap.add_argument("--no-peer", action="store_true", help="skip the Quix Streams peer")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mailpulse-bench-"))
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalKafka(state_dir=workdir / "kafka", port=free_port(), controller_port=free_port(), heap_mb=768)
    try:
        if broker is not None:
            await asyncio.to_thread(broker.start)
            bootstrap = broker.bootstrap
        messages = max(1, int(args.events / 4.3))
        t = time.perf_counter()
        gen = generate_events(messages, seed=2026, campaigns_per_source=20)
        records = [(e.key.encode(), encode_event(e)) for e in gen.events]
        n = len(records)
        expected_sent = expected_totals(gen.events)
        print(
            f"generated {n} events ({gen.duplicates} duplicates, {messages} messages) in {time.perf_counter() - t:.1f}s"
        )
        prefix = f"b{uuid.uuid4().hex[:6]}."
        peer_prefix = f"p{uuid.uuid4().hex[:6]}."
        await ensure_topics(bootstrap, prefix=prefix, replication_factor=1)
        secs = await publish(bootstrap, topic_name(EVENTS, prefix), records)
        print(f"published to {topic_name(EVENTS, prefix)} ({EVENTS.partitions} partitions) in {secs:.1f}s")
        peer_python = None
        if not args.no_peer:
            peer_python = ensure_peer_venv()
            await ensure_topics(bootstrap, prefix=peer_prefix, replication_factor=1, specs=[EVENTS])
            await publish(bootstrap, topic_name(EVENTS, peer_prefix), records)

        ours = await asyncio.to_thread(run_worker, bootstrap, prefix, n, expected_sent, workdir)
        print(
            f"mailpulse worker (Faust): {ours['events_per_s']:>7} events/s  {ours['seconds']:>6}s  peak RSS {ours['peak_rss_mb']} MB  table writes/event {ours['table_writes_per_event']}"
        )
        if peer_python is not None:
            peer = await asyncio.to_thread(
                run_peer, peer_python, bootstrap, topic_name(EVENTS, peer_prefix), n, expected_sent, workdir
            )
            print(
                f"peer (Quix Streams):      {peer['events_per_s']:>7} events/s  {peer['seconds']:>6}s  peak RSS {peer['peak_rss_mb']} MB"
            )
            print(
                f"ratio worker/peer: {ours['events_per_s'] / peer['events_per_s']:.2f}x throughput, {ours['peak_rss_mb'] / max(1, peer['peak_rss_mb']):.2f}x peak RSS"
            )
        print("note: 2 shared cores, other processes running: figures vary run to run")
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
