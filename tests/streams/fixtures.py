"""Helpers of the streams integration tests: publish events, run real ``mailpulse worker`` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaProducer

from mailpulse.topics.events import EmailEvent, encode_event

ROOT = Path(__file__).resolve().parents[2]
#: Fast rebalances for tests: a SIGKILLed worker's partitions move after ~6 s.
TEST_WORKER = {
    "session_timeout": "6s",
    "heartbeat_interval": "1s",
    "rebalance_timeout": "10s",
    "publish_interval": "200ms",
    "rocksdb_memory_mb": 64,
    "rocksdb_write_buffer_mb": 1,
    # A handful of contacts in memory per partition, the rest spilled to disk: every integration
    # test then proves the answers exact with contacts going out to the spill and back.
    "contact_cache_size": 16,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def publish(bootstrap: str, topic: str, events: Iterable[EmailEvent]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    n = 0
    try:
        for e in events:
            await producer.send(topic, encode_event(e), key=e.key.encode())
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


class WorkerProcess:
    """One ``mailpulse worker`` subprocess with its own config, port and data dir."""

    def __init__(self, tmp: Path, bootstrap: str, prefix: str, name: str, **worker: Any) -> None:
        self.port = free_port()
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "config.yaml"
        conf = {
            "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "replication_factor": 1},
            "worker": {
                **TEST_WORKER,
                "web_port": self.port,
                "web_host": "127.0.0.1",
                "data_dir": str(self.dir / "data"),
                **worker,
            },
        }
        self.config.write_text(yaml.safe_dump(conf))
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "worker.log"

    def start(self) -> WorkerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("MAILPULSE_KAFKA_BOOTSTRAP", None)
        if hasattr(self, "_logf"):
            self._logf.close()  # a restart after kill(): same log, same data dir
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailpulse.cli", "worker", "--config", str(self.config)],
            cwd=ROOT,
            env=env,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if hasattr(self, "_logf"):
            self._logf.close()

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=15)


async def wait_until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    workers: Iterable[WorkerProcess] = (),
    show: Callable[[], Any] | None = None,
) -> Any:
    """Poll ``check`` (sync, may raise) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for w in workers:
            if not w.alive():
                raise AssertionError(f"worker {w.dir.name} exited:\n{w.tail()}")
        try:
            last = await asyncio.to_thread(check)
            if last:
                return last
        except (httpx.HTTPError, AssertionError, KeyError) as exc:
            last = exc
        await asyncio.sleep(0.5)
    for w in workers:  # mode.Worker logs every thread and asyncio task on SIGUSR1
        if w.alive() and w.proc is not None:
            w.proc.send_signal(signal.SIGUSR1)
    await asyncio.sleep(2)
    tails = "\n".join(f"--- {w.dir.name}\n{w.tail()}" for w in workers)
    detail = "" if show is None else f"\ndetail: {await asyncio.to_thread(show)!r}"
    raise AssertionError(f"timed out waiting for {what}: last {last!r}{detail}\n{tails}")
