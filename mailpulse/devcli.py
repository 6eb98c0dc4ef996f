"""``mailpulse dev ...``: the local development loop.

mailpulse dev kafka start|stop|status   a real local Kafka broker, no Docker
mailpulse dev up                         Kafka, topics, simulators, pollers and the worker
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from mailpulse.config import BOOTSTRAP_ENV, load_config
from mailpulse.devkafka import LocalKafka, broker_answers
from mailpulse.devprometheus import LocalPrometheus, PrometheusError, prometheus_binary

__all__ = ["register"]

DEFAULT_STATE_DIR = Path(os.environ.get("MAILPULSE_STATE_DIR", "./var"))
DEV_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "dev.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    dev = subparsers.add_parser("dev", help="local development: Kafka, the whole pipeline")
    sub = dev.add_subparsers(dest="dev_command", required=True, metavar="ACTION")

    kafka = sub.add_parser("kafka", help="a real local Kafka broker (assembled from Maven Central)")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    _kafka_args(kafka)
    kafka.set_defaults(func=_kafka)

    up = sub.add_parser("up", help="run Kafka, topics, simulators, pollers and the worker until Ctrl-C")
    up.add_argument("--config", default=str(DEV_CONFIG), help="config file (default examples/dev.yaml)")
    up.add_argument("--size", type=int, default=2000, help="simulated messages per provider")
    up.add_argument("--no-simulate", action="store_true", help="poll the configured base_urls, start no simulators")
    up.add_argument("--keep-kafka", action="store_true", help="leave the local broker running on exit")
    up.add_argument("--verbose", action="store_true", help="show the parts' info logs (default: warnings only)")
    up.add_argument("--prometheus-port", type=int, default=9090, help="local Prometheus, when installed (0: none)")
    _kafka_args(up)
    up.set_defaults(func=_up)


def _kafka_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9092, help="broker port (controller: port+1)")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR / "kafka")


def _launcher(args: argparse.Namespace) -> LocalKafka:
    return LocalKafka(state_dir=args.state_dir, port=args.port, controller_port=args.port + 1)


def _external_broker() -> str | None:
    """``MAILPULSE_KAFKA_BOOTSTRAP``, when it points at a broker that answers."""
    bootstrap = os.environ.get(BOOTSTRAP_ENV)
    if bootstrap and broker_answers(bootstrap):
        return bootstrap
    return None


def _kafka(args: argparse.Namespace) -> int:
    external = _external_broker()
    kafka = _launcher(args)
    if args.action == "start":
        if external:
            print(f"{BOOTSTRAP_ENV}={external} answers: starting nothing")
            return 0
        started = time.monotonic()
        bootstrap = kafka.start()
        print(f"Kafka ready on {bootstrap} ({time.monotonic() - started:.1f}s; log {kafka.log_file})")
        return 0
    if args.action == "stop":
        print("stopped" if kafka.stop() else "not running")
        return 0
    running = kafka.is_running() and broker_answers(kafka.bootstrap)
    print(f"{'running' if running else 'not running'}: {kafka.bootstrap} (state {kafka.state_dir})")
    if external:
        print(f"{BOOTSTRAP_ENV}={external} answers")
    return 0 if running or external else 1


def _registered_commands() -> set[str]:
    from mailpulse.cli import build_parser

    parser = build_parser()
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        return set(action.choices)
    return set()


def _pipe(name: str, stream: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"[{name}] {line.decode(errors='replace')}")
        sys.stdout.flush()


def _up(args: argparse.Namespace) -> int:
    from mailpulse.topics.admin import ensure_topics

    config = load_config(args.config, command="connect")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the status line's own scrapes
    kafka = _launcher(args)
    started_kafka = False
    bootstrap = _external_broker()
    if bootstrap is None:
        print(f"starting Kafka on 127.0.0.1:{args.port} ...", flush=True)
        started_kafka = not kafka.is_running()
        bootstrap = kafka.start()
    print(f"Kafka: {bootstrap}")
    report = asyncio.run(
        ensure_topics(bootstrap, prefix=config.kafka.topic_prefix, replication_factor=config.kafka.replication_factor)
    )
    for line in report.lines():
        print(f"topics: {line}")

    env = {**os.environ, BOOTSTRAP_ENV: bootstrap}
    commands = _registered_commands()
    level = "info" if args.verbose else "warning"
    mailpulse = [sys.executable, "-m", "mailpulse.cli", "--log-level", level]
    parts: list[tuple[str, list[str]]] = []
    if "simulate" in commands and not args.no_simulate:
        parts.append(
            (
                "simulate",
                [
                    *mailpulse,
                    "simulate",
                    "--size",
                    str(args.size),
                    "--port-base",
                    "8701",
                    "--start",
                    "now",
                    "--clock-speed",
                    "1",
                ],
            )
        )
    if "connect" in commands:
        connect = [*mailpulse, "connect", "--config", args.config]
        if "simulate" in [p[0] for p in parts]:
            # Follow the simulators' clock, not the wall clock, for window ends and lag.
            connect += ["--clock-url", "http://127.0.0.1:8701/_sim/now"]
        parts.append(("connect", connect))
    if "worker" in commands:
        parts.append(("worker", [*mailpulse, "worker", "--config", args.config]))

    procs: list[subprocess.Popen[bytes]] = []
    prometheus = _prometheus(args, config, [p[0] for p in parts])
    try:
        for name, cmd in parts:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            threading.Thread(target=_pipe, args=(name, proc.stdout), daemon=True).start()
            procs.append(proc)
            if name == "simulate":
                time.sleep(2)  # let the simulators bind before the pollers call them
        if prometheus is not None:
            try:
                prometheus.start()
            except PrometheusError as exc:
                print(f"prometheus: {exc}; going on without it", file=sys.stderr)
                prometheus = None
        _print_banner(config, bootstrap, [p[0] for p in parts], prometheus)
        next_status = time.monotonic() + 10
        while True:
            for (name, _), proc in zip(parts, procs, strict=True):
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", file=sys.stderr)
                    return 1
            if time.monotonic() >= next_status:
                print(_status_line(config, [p[0] for p in parts]), flush=True)
                next_status = time.monotonic() + 15
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping ...")
        return 0
    finally:
        if prometheus is not None:
            prometheus.stop()
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if started_kafka and not args.keep_kafka:
            kafka.stop()


def _get(url: str) -> tuple[int, str] | None:
    import httpx

    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.status_code, response.text


def _scrape(url: str) -> str | None:
    got = _get(url)
    return got[1] if got and got[0] == 200 else None


def _sum_metric(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in "{ "):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _status_line(config, parts: list[str]) -> str:  # type: ignore[no-untyped-def]
    """One line of progress, read from the parts' own endpoints."""
    out = ["status:"]
    if "connect" in parts:
        metrics = _scrape(f"http://127.0.0.1:{config.connect.metrics_port}/metrics")
        published = _sum_metric(metrics, "mailpulse_connector_events_published_total")
        dlq = _sum_metric(metrics, "mailpulse_connector_dlq_records_total")
        out.append(
            f"events published {published if published is not None else '?'}, dead letters {dlq if dlq is not None else '?'};"
        )
    if "worker" in parts:
        base = f"http://127.0.0.1:{config.worker.web_port}"
        ready = _get(f"{base}/readyz")
        seen = _sum_metric(_scrape(f"{base}/metrics"), "mailpulse_stream_events_total")
        state = "unreachable" if ready is None else ("ready" if ready[0] == 200 else "recovering")
        out.append(f"worker {state}, events processed {seen if seen is not None else '?'}")
    return " ".join(out)


def _prometheus(args: argparse.Namespace, config, parts: list[str]) -> LocalPrometheus | None:  # type: ignore[no-untyped-def]
    """A Prometheus scraping the parts with the alert rules loaded, when the binary is installed."""
    if not args.prometheus_port:
        return None
    if prometheus_binary() is None:
        print("prometheus not installed: no local Prometheus (Debian/Ubuntu: apt-get install prometheus)")
        return None
    targets = {}
    if "connect" in parts and config.connect.metrics_port:
        targets["mailpulse-connect"] = [f"127.0.0.1:{config.connect.metrics_port}"]
    if "worker" in parts:
        targets["mailpulse-worker"] = [f"127.0.0.1:{config.worker.web_port}"]
    return LocalPrometheus(
        state_dir=args.state_dir.parent / "prometheus", port=args.prometheus_port, targets=targets, alerts=config.alerts
    )


def _print_banner(config, bootstrap: str, parts: list[str], prometheus: LocalPrometheus | None = None) -> None:  # type: ignore[no-untyped-def]
    print("=" * 72)
    print(f"mailpulse is up: Kafka {bootstrap}; running {', '.join(parts) or 'nothing but Kafka'}")
    if "connect" in parts:
        print(f"  poller metrics:  http://127.0.0.1:{config.connect.metrics_port}/metrics")
    if "worker" in parts:
        base = f"http://127.0.0.1:{config.worker.web_port}"
        print(f"  query API:       {base}/v1/campaigns?limit=5")
        print(f"  sample query:    curl -s '{base}/v1/campaigns?limit=5&order=last_event_at'")
        print(f"  worker metrics:  {base}/metrics")
    if prometheus is not None:
        print(f"  Prometheus:      {prometheus.url} (alerts: {prometheus.url}/alerts; Grafana: add it as a")
        print("                   Prometheus datasource and import deploy/grafana/mailpulse.json)")
    print("Ctrl-C stops everything.")
    print("=" * 72, flush=True)
