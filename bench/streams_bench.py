"""End-to-end throughput of the streams worker, side by side with a Quix Streams peer.

    .venv/bin/python bench/streams_bench.py [--events 300000] [--contacts N] [--seed 2026]
        [--scale] [--no-restart] [--api-rate 1000] [--api-seconds 15] [--json PATH]
        [--bootstrap HOST:PORT [--broker-log-dir DIR]] [--no-peer]

1. starts a throwaway local Kafka broker (or uses ``--bootstrap``), creates the
   contract topics under a fresh prefix;
2. generates a realistic event set (bench/eventgen.py: three providers,
   duplicates, reordering; keys ``{source}:{message_id}``, 8 partitions) chunk
   by chunk (whole messages per chunk, so memory stays one chunk's), publishes
   each chunk twice: once for the worker, once for the peer, and sums the
   expected campaign ``sent`` total (the ground truth) chunk by chunk;
3. runs one ``mailpulse worker`` subprocess and times it from its first event
   read to the moment every event is merged, every partial is consumed by
   stage 2 and the campaign totals are exact; reads its peak RSS (VmHWM);
   stops it with SIGTERM and measures its state on disk: the RocksDB data_dir
   and the log segments of its changelog topics, per message;
4. unless ``--no-restart``: starts it again on the same data_dir, then on an
   empty one (every table recovered from its changelog), each time measuring
   the seconds from process start until ``/readyz`` is 200 and the campaign
   totals are exact; after the restart on its data_dir, the query API is held at
   ``--api-rate`` requests/s (open loop, bench/api_latency.py) for ``--api-seconds``
   on campaign and contact keys of the generated events, and its latency
   percentiles are reported;
5. runs the peer (bench/peer_quix.py, Quix Streams in bench/.venv-peer, which
   this script creates on first use) on the same events, timed the same way;
6. prints the figures and the ratio (``--json PATH``: also the result dict).

``--scale`` is the scale volume: 5,000,000 events, 1,000,000 contacts.

The machine is shared (2 cores, other agents at work): figures are noisy,
run it more than once before trusting a difference under ~10%.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_latency import hold_rate  # noqa: E402
from bench.eventgen import DEFAULT_CHUNK_MESSAGES, EventStream  # noqa: E402
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
DEFAULT_EVENTS = 300_000
#: --scale: the volume a sender with a million contacts reaches (the memory and recovery targets).
SCALE_EVENTS = 5_000_000
SCALE_CONTACTS = 1_000_000
#: Events per generated message, duplicates included (about 4.06 + 10 %).
EVENTS_PER_MESSAGE = 4.3
MB = 1024 * 1024
#: Keys of each kind the API latency run requests (round robin), taken from the first chunk.
API_KEYS = 500


def ensure_peer_venv() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import quixstreams"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEER_REQUIREMENT], check=True)
    return python


async def publish(bootstrap: str, topics: list[str], stream: EventStream) -> dict:
    """Generate ``stream`` chunk by chunk, publish each chunk to every topic, and sum the ground truth.

    Memory stays that of one chunk (a chunk holds whole messages, so the expected
    campaign totals are summed chunk by chunk, independently of the worker).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1 << 20, acks=1)
    await producer.start()
    generate_s = send_s = 0.0
    n = expected_sent = 0
    keys: dict[str, set[str]] = {"campaigns": set(), "contacts": set()}
    try:
        chunks = iter(stream)
        while True:
            t = time.perf_counter()
            chunk = next(chunks, None)
            if chunk is None:
                break
            # A copy of each value: orjson's own result keeps ~4 KB resident per record (its
            # buffer, shrunk in place), which made a 430k-event chunk cost 1.6 GB instead of 150 MB.
            records = [(e.key.encode(), bytes(memoryview(encode_event(e)))) for e in chunk]
            for e in chunk:
                if len(keys["contacts"]) >= API_KEYS:
                    break
                if e.campaign_id is not None:
                    keys["campaigns"].add(f"{e.source}:{e.campaign_id}")
                if e.contact_id is not None:
                    keys["contacts"].add(f"{e.source}:{e.contact_id}")
            expected_sent += expected_totals(chunk)
            n += len(records)
            del chunk
            generate_s += time.perf_counter() - t
            t = time.perf_counter()
            for topic in topics:
                for key, value in records:
                    await producer.send(topic, value, key=key)
            del records
            send_s += time.perf_counter() - t
        t = time.perf_counter()
        await producer.flush()
        send_s += time.perf_counter() - t
    finally:
        await producer.stop()
    return {
        "events": n,
        "duplicates": stream.duplicates,
        "expected_sent": expected_sent,
        "generate_s": generate_s,
        "publish_s": send_s,
        "api_paths": [f"/v1/{kind}/{key}" for kind in sorted(keys) for key in sorted(keys[kind])],
    }


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not want or want in line) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] == name:
                total += float(value)
    return total


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """The process's RSS in MiB: its peak (``VmHWM``, the default) or its RSS now (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


#: ``--worker KEY=VALUE`` settings, added to every worker's ``worker:`` config.
WORKER_SETTINGS: dict = {}


def write_worker_config(workdir: Path, bootstrap: str, prefix: str, data_dir: Path, name: str) -> tuple[Path, int]:
    port = free_port()
    config = workdir / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "replication_factor": 1},
                "worker": {"web_port": port, "web_host": "127.0.0.1", "data_dir": str(data_dir), **WORKER_SETTINGS},
            }
        )
    )
    return config, port


def start_worker(config: Path, log_path: Path, profile: str | None = None) -> subprocess.Popen:
    prof_args = ["-m", "cProfile", "-o", profile] if profile else []
    # MAILPULSE_BENCH_MEMRAY=path: record the worker's allocations with memray (pip install memray;
    # `python -m memray stats path.0`, or memray's FileReader for what the peak is made of).
    # One file per worker start: path.0, path.1, ...
    memray = os.environ.get("MAILPULSE_BENCH_MEMRAY")
    if memray and not profile:
        out = Path(memray)
        n = sum(1 for _ in out.parent.glob(out.name + ".*"))
        prof_args = ["-m", "memray", "run", "--quiet", "-o", f"{out}.{n}"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, *prof_args, "-m", "mailpulse.cli", "worker", "--config", str(config)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_worker(proc: subprocess.Popen, timeout_s: float = 120.0) -> bool:
    """SIGTERM, as a rolling restart does; True when the worker stopped by itself within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout_s)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def campaigns_sent(client: httpx.Client, url: str) -> int | None:
    """The campaign ``sent`` total the worker answers now; None while it does not answer."""
    r = client.get(url + "/v1/campaigns", params={"limit": 1000})
    if r.status_code != 200:
        return None
    return sum(i["counts"]["sent"] for i in r.json().get("items", []))


def run_worker(bootstrap: str, prefix: str, n_events: int, expected_sent: int, workdir: Path, data_dir: Path) -> dict:
    config, port = write_worker_config(workdir, bootstrap, prefix, data_dir, "worker")
    log_path = workdir / "worker.log"
    # MAILPULSE_BENCH_PROFILE=path: run the worker under cProfile.
    proc = start_worker(config, log_path, os.environ.get("MAILPULSE_BENCH_PROFILE"))
    url = f"http://127.0.0.1:{port}"
    t0 = t1 = None
    # When the peak happens says which phase sets it (ingest, republication, the final merge).
    rss_top, rss_top_at = 0.0, 0.0
    limit_s = max(900.0, n_events / 2000)
    try:
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + limit_s
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise SystemExit(f"worker exited with {proc.returncode}; see {log_path}")
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
                rss_now = rss_mb(proc.pid, "VmRSS")
                if t0 is not None and rss_now > rss_top:
                    rss_top, rss_top_at = rss_now, time.perf_counter() - t0
                published = metric(text, "mailpulse_stream_partials_published_total")
                consumed = metric(text, "mailpulse_stream_partials_consumed_total")
                if seen >= n_events and consumed >= published > 0:
                    if campaigns_sent(client, url) == expected_sent:
                        t1 = time.perf_counter()
                        break
                time.sleep(0.25)
        if t0 is None or t1 is None:
            raise SystemExit(f"worker did not finish within {limit_s / 60:.0f} minutes; see {log_path}")
        rss = rss_mb(proc.pid)
        writes = metric(text, "mailpulse_stream_state_writes_total")
    finally:
        clean = stop_worker(proc)
    seconds = t1 - t0
    return {
        "seconds": round(seconds, 2),
        "events_per_s": round(n_events / seconds),
        "peak_rss_mb": round(rss),
        # Sampled with each poll (every ~0.25 s): the highest RSS seen and when, from the first event.
        "peak_rss_at_s": round(rss_top_at, 1),
        "peak_rss_at_fraction": round(rss_top_at / seconds, 2),
        "table_writes_per_event": round(writes / n_events, 2),
        "clean_stop": clean,
    }


def time_to_ready(
    bootstrap: str,
    prefix: str,
    expected_sent: int,
    workdir: Path,
    data_dir: Path,
    name: str,
    limit_s: float,
    api_load: tuple[list[str], float, float] | None = None,
) -> dict:
    """Start a worker on ``data_dir``; seconds from its start until /readyz is 200 and the totals are exact.

    ``api_load`` (paths, rate, seconds): then hold the API at that rate and report its latency.
    """
    config, port = write_worker_config(workdir, bootstrap, prefix, data_dir, name)
    log_path = workdir / f"{name}.log"
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = start_worker(config, log_path)
    ready_s = None
    try:
        with httpx.Client(timeout=10) as client:
            while time.perf_counter() - started < limit_s:
                if proc.poll() is not None:
                    raise SystemExit(f"worker exited with {proc.returncode}; see {log_path}")
                try:
                    if client.get(url + "/readyz").status_code == 200 and campaigns_sent(client, url) == expected_sent:
                        ready_s = time.perf_counter() - started
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        if ready_s is None:
            raise SystemExit(f"{name}: not ready with exact totals within {limit_s / 60:.0f} minutes; see {log_path}")
        rss = rss_mb(proc.pid)
        api = None
        if api_load is not None:
            paths, rate, seconds = api_load
            api = asyncio.run(hold_rate(url, paths, rate, seconds))
    finally:
        clean = stop_worker(proc)
    out = {"seconds": round(ready_s, 2), "peak_rss_mb": round(rss), "clean_stop": clean}
    if api is not None:
        out["api"] = api
    return out


def tree_bytes(path: Path) -> int:
    """Total size of the files under ``path`` (apparent sizes)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


def changelog_bytes(log_dir: Path, prefix: str) -> dict[str, int]:
    """Per changelog topic of the worker: the summed size of its partitions' log segments (``*.log``)."""
    pattern = re.compile(rf"^({re.escape(prefix)}mailpulse-streams-.+-changelog)-\d+$")
    sizes: dict[str, int] = {}
    for d in log_dir.iterdir():
        m = pattern.match(d.name)
        if m and d.is_dir():
            size = sum(f.stat().st_size for f in d.glob("*.log"))
            sizes[m.group(1)] = sizes.get(m.group(1), 0) + size
    return sizes


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


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--events", type=int, help=f"about this many events, duplicates included (default {DEFAULT_EVENTS:,})"
    )
    ap.add_argument(
        "--contacts",
        type=int,
        help="distinct contacts across all sources (default: each message draws from messages/4 per source)",
    )
    ap.add_argument(
        "--scale",
        action="store_true",
        help=f"the scale run: {SCALE_EVENTS:,} events, {SCALE_CONTACTS:,} contacts (unless told)",
    )
    ap.add_argument("--seed", type=int, default=2026, help="the generator's seed (default 2026)")
    ap.add_argument(
        "--chunk-messages",
        type=int,
        default=DEFAULT_CHUNK_MESSAGES,
        help=f"generate and publish this many messages at a time (default {DEFAULT_CHUNK_MESSAGES:,})",
    )
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the result dict to PATH")
    ap.add_argument("--no-restart", action="store_true", help="skip the two restarts (same data_dir, empty data_dir)")
    ap.add_argument("--bootstrap", help="use this broker instead of starting one")
    ap.add_argument(
        "--broker-log-dir",
        type=Path,
        help="with --bootstrap: the broker's log.dirs, to measure the changelogs' size (else not reported)",
    )
    ap.add_argument("--no-peer", action="store_true", help="skip the Quix Streams peer")
    ap.add_argument(
        "--api-rate",
        type=float,
        default=1000.0,
        help="after the restart, hold the query API at this many requests/s (default 1000; 0: skip)",
    )
    ap.add_argument("--api-seconds", type=float, default=15.0, help="for this long (default 15)")
    ap.add_argument(
        "--worker",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a worker: setting for every worker the bench starts (YAML value), e.g. contact_cache_size=5000",
    )
    args = ap.parse_args()
    for item in args.worker:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--worker {item!r}: expected KEY=VALUE")
        WORKER_SETTINGS[key] = yaml.safe_load(value)
    return args


def per_message(total: int | None, messages: int) -> float | None:
    return None if total is None else round(total / messages, 1)


async def main() -> int:
    args = parse_args()
    n_target = args.events or (SCALE_EVENTS if args.scale else DEFAULT_EVENTS)
    contacts = args.contacts or (SCALE_CONTACTS if args.scale else None)

    workdir = Path(tempfile.mkdtemp(prefix="mailpulse-bench-"))
    broker = None
    bootstrap = args.bootstrap
    log_dir = args.broker_log_dir
    if bootstrap is None:
        broker = LocalKafka(state_dir=workdir / "kafka", port=free_port(), controller_port=free_port(), heap_mb=768)
        log_dir = broker.state_dir / "data"
    result: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "workdir": str(workdir),
    }
    data_dir = workdir / "worker-data"
    try:
        if broker is not None:
            await asyncio.to_thread(broker.start)
            bootstrap = broker.bootstrap
        messages = max(1, int(n_target / EVENTS_PER_MESSAGE))
        stream = EventStream(
            messages,
            seed=args.seed,
            campaigns_per_source=20,
            contacts=contacts,
            cover_contacts=contacts is not None,
            chunk_messages=args.chunk_messages,
        )
        prefix = f"b{uuid.uuid4().hex[:6]}."
        peer_prefix = f"p{uuid.uuid4().hex[:6]}."
        await ensure_topics(bootstrap, prefix=prefix, replication_factor=1)
        topics = [topic_name(EVENTS, prefix)]
        peer_python = None
        if not args.no_peer:
            peer_python = ensure_peer_venv()
            await ensure_topics(bootstrap, prefix=peer_prefix, replication_factor=1, specs=[EVENTS])
            topics.append(topic_name(EVENTS, peer_prefix))
        pub = await publish(bootstrap, topics, stream)
        n, expected_sent = pub["events"], pub["expected_sent"]
        result.update(
            events=n,
            messages=messages,
            duplicates=pub["duplicates"],
            contacts=stream.distinct_contacts() if contacts is not None else None,
            chunks=stream.chunks,
            expected_sent=expected_sent,
        )
        print(
            f"generated {n} events ({pub['duplicates']} duplicates, {messages} messages"
            + (f", {result['contacts']} contacts" if contacts is not None else "")
            + f") in {pub['generate_s']:.1f}s"
            + (f" ({stream.chunks} chunks)" if stream.chunks > 1 else "")
        )
        print(f"published to {topics[0]} ({EVENTS.partitions} partitions) in {pub['publish_s']:.1f}s")

        ours = await asyncio.to_thread(run_worker, bootstrap, prefix, n, expected_sent, workdir, data_dir)
        print(
            f"mailpulse worker (Faust): {ours['events_per_s']:>7} events/s  {ours['seconds']:>6}s  peak RSS {ours['peak_rss_mb']} MB (at {ours['peak_rss_at_s']}s)  table writes/event {ours['table_writes_per_event']}"
        )
        result["worker"] = ours
        rocksdb = tree_bytes(data_dir)
        changelogs = changelog_bytes(log_dir, prefix) if log_dir is not None else None
        changelog_total = sum(changelogs.values()) if changelogs is not None else None
        result.update(
            rocksdb_bytes=rocksdb,
            rocksdb_bytes_per_message=per_message(rocksdb, messages),
            changelog_bytes=changelog_total,
            changelog_bytes_per_message=per_message(changelog_total, messages),
            changelog_topics=changelogs,
        )
        changelog_text = (
            f"changelogs {result['changelog_bytes_per_message']} bytes/message ({changelog_total / MB:.1f} MB)"
            if changelog_total is not None
            else "changelogs: not measured (pass --broker-log-dir with --bootstrap)"
        )
        print(
            f"state on disk: RocksDB {result['rocksdb_bytes_per_message']} bytes/message ({rocksdb / MB:.1f} MB), "
            + changelog_text
        )
        if not args.no_restart:
            limit_s = max(900.0, n / 2000)
            if not ours["clean_stop"]:
                print("warning: the worker did not stop within 120 s of SIGTERM and was killed")
            api_load = (pub["api_paths"], args.api_rate, args.api_seconds) if args.api_rate > 0 else None
            restart = await asyncio.to_thread(
                time_to_ready, bootstrap, prefix, expected_sent, workdir, data_dir, "worker-restart", limit_s, api_load
            )
            shutil.rmtree(data_dir, ignore_errors=True)
            empty_dir = workdir / "worker-data-empty"
            empty = await asyncio.to_thread(
                time_to_ready, bootstrap, prefix, expected_sent, workdir, empty_dir, "worker-recover", limit_s
            )
            result.update(restart=restart, recovery=empty)
            print(
                f"time to ready (readyz 200, totals exact): {restart['seconds']}s after a restart on its data_dir "
                f"(peak RSS {restart['peak_rss_mb']} MB), {empty['seconds']}s from an empty data_dir "
                f"(recovery from the changelogs, peak RSS {empty['peak_rss_mb']} MB)"
            )
            if "api" in restart:
                a = restart["api"]
                print(
                    f"query API at {a['rate']:g} requests/s for {args.api_seconds:g}s (open loop, "
                    f"{len(pub['api_paths'])} campaign and contact keys): p50 {a['p50_ms']} ms, p99 {a['p99_ms']} ms, "
                    f"p99.9 {a['p999_ms']} ms, max {a['max_ms']} ms; achieved {a['achieved_rate']}/s; statuses {a['statuses']}"
                )
        if peer_python is not None:
            peer = await asyncio.to_thread(
                run_peer, peer_python, bootstrap, topic_name(EVENTS, peer_prefix), n, expected_sent, workdir
            )
            result["peer"] = peer
            print(
                f"peer (Quix Streams):      {peer['events_per_s']:>7} events/s  {peer['seconds']:>6}s  peak RSS {peer['peak_rss_mb']} MB"
            )
            print(
                f"ratio worker/peer: {ours['events_per_s'] / peer['events_per_s']:.2f}x throughput, {ours['peak_rss_mb'] / max(1, peer['peak_rss_mb']):.2f}x peak RSS"
            )
        print("note: 2 shared cores, other processes running: figures vary run to run")
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
            print(f"result written to {args.json}")
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
        # The big state goes (the broker's data, the workers' RocksDB); logs and configs stay in workdir.
        for path in (workdir / "kafka" / "data", data_dir, workdir / "worker-data-empty", workdir / "peer-state"):
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
