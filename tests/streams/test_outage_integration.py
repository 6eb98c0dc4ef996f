"""A broker outage of ~20 s costs the worker's log a few lines, not 60-70 a second.

Uses its own broker (stopped and restarted here), never the session's.
Documented bound: at most 12 log lines from the moment the broker stops until
the worker logs that Kafka is back (lost + summaries + back + the few
non-connection lines Faust writes around a rebalance).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mailpulse.devkafka import LocalKafka, LocalKafkaError, free_port
from mailpulse.topics.admin import ensure_topics
from tests.streams.fixtures import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

MAX_LINES = 12


async def test_a_20s_broker_outage_is_a_few_worker_log_lines(tmp_path: Path) -> None:
    broker = LocalKafka(state_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port(), heap_mb=256)
    try:
        await asyncio.to_thread(broker.start)
    except LocalKafkaError as exc:
        pytest.fail(f"the outage test's own broker could not start: {exc}")
    worker = None
    try:
        await ensure_topics(broker.bootstrap, prefix="o.", replication_factor=1)
        worker = WorkerProcess(tmp_path, broker.bootstrap, "o.", "w").start()
        await wait_until(lambda: worker.get("/readyz").status_code == 200, 120, "worker ready", [worker])
        before = len(worker.log.read_text(errors="replace").splitlines())
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(20)
        lines = worker.log.read_text(errors="replace").splitlines()[before:]
        assert sum("Kafka connection lost" in line for line in lines) == 1, "\n".join(lines[-40:])
        started = time.monotonic()
        await asyncio.to_thread(broker.start)
        await wait_until(
            lambda: "Kafka connection is back" in worker.log.read_text(errors="replace"),
            90,
            "the 'back' line",
            [worker],
        )
        lines = worker.log.read_text(errors="replace").splitlines()[before:]
        assert len(lines) <= MAX_LINES, f"{len(lines)} lines in {time.monotonic() - started + 20:.0f}s:\n" + "\n".join(
            lines[:60]
        )
        assert "Traceback" not in "\n".join(lines)
        await wait_until(lambda: worker.get("/readyz").status_code == 200, 120, "worker ready again", [worker])
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
