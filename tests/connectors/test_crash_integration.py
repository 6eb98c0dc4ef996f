"""Crash safety: SIGKILL a backfill mid-way, restart it, and find every fact on the topic exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC
from pathlib import Path

import pytest
import yaml

from mailpulse.simulators import Simulator, SimulatorConfig, serve_simulators
from mailpulse.topics.contracts import CHECKPOINTS, EVENTS
from tests.connectors.conftest import facts, read_topic
from tests.connectors.providers.test_smartcq_integration import expected_facts

pytestmark = pytest.mark.integration


def write_config(path: Path, bootstrap: str, prefix: str, url: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix},
                "connect": {"metrics_port": 0, "batch_size": 1500},
                "sources": [
                    {"name": "acme-smartcq", "provider": "smartcq", "base_url": url, "api_key": "sim-smartcq-key"}
                ],
            }
        )
    )
    return path


async def backfill(config: Path, log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MAILPULSE_KAFKA_BOOTSTRAP", None)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailpulse.cli",
        "backfill",
        "--config",
        str(config),
        "--source",
        "acme-smartcq",
        "--since",
        "2026-10-25",
        "--no-progress",
        stdout=log.open("ab"),
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )


def sends_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.request_log if r[0] == "smartcq" and r[2] == "/api/v1/sends")


async def test_sigkill_mid_backfill_then_restart_publishes_every_fact_exactly_once(kafka, topic_prefix, tmp_path):
    sim = Simulator(SimulatorConfig(seed=31, size=20000))
    truth = expected_facts(sim.snapshot("smartcq"))
    async with serve_simulators(sim, providers=("smartcq",)) as urls:
        config = write_config(tmp_path / "config.yaml", kafka.bootstrap, topic_prefix, urls["smartcq"])
        log = tmp_path / "backfill.log"
        first = await backfill(config, log)
        deadline = time.monotonic() + 120
        # Kill it in the middle: some batches committed, one most likely open.
        while sends_requests(sim) < 20 and first.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert first.returncode is None, f"the backfill ended before it could be killed:\n{log.read_text()[-2000:]}"
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL

        partial = facts(await read_topic(kafka.bootstrap, topic_prefix, EVENTS))
        assert 0 < len(partial) < len(truth), "the kill should land mid-way"
        assert len(partial) == len(set(partial))

        second = await backfill(config, log)
        assert await asyncio.wait_for(second.wait(), 240) == 0, log.read_text()[-3000:]

    events = await read_topic(kafka.bootstrap, topic_prefix, EVENTS)
    got = facts(events)
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} facts published twice"
    assert set(got) == truth
    assert len({e.value["event_id"] for e in events}) == len(events) == len(truth)
    # The restart resumed from the committed cursor rather than from --since.
    resumed = [r for r in sim.request_log if r[0] == "smartcq" and r[2] == "/api/v1/sends"]
    assert any(q.get("since", "").startswith("2026-10-25") for (_, _, _, q, _) in [r[:5] for r in resumed][:1])
    checkpoint = [
        r.value
        for r in await read_topic(kafka.bootstrap, topic_prefix, CHECKPOINTS)
        if r.key == "acme-smartcq/sends.backfill"
    ]
    assert checkpoint[-1]["cursor"]["done"] is True
    # Records of the transaction the kill left open are on the log, aborted: read_uncommitted sees more.
    uncommitted = await read_topic(kafka.bootstrap, topic_prefix, EVENTS, isolation="read_uncommitted")
    print(
        f"events: {len(events)} committed, {len(uncommitted) - len(events)} aborted by the crash; log:\n{log.read_text()[-1500:]}"
    )


async def test_a_transaction_left_open_by_a_dead_poller_is_aborted_and_its_facts_published_once(kafka, topic_prefix):
    from datetime import datetime

    import orjson
    from aiokafka import AIOKafkaProducer

    from mailpulse.connectors.providers.smartcq import normalise
    from mailpulse.connectors.publisher import transactional_id
    from mailpulse.topics.contracts import topic_name
    from mailpulse.topics.events import encode_event
    from tests.connectors.conftest import make_config, runner_for

    sim = Simulator(SimulatorConfig(seed=32, size=1000))
    truth = expected_facts(sim.snapshot("smartcq"))
    # The dead predecessor: the same transactional id, a batch and a cursor far ahead sent, never committed.
    ghost = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap,
        transactional_id=transactional_id(topic_prefix, "acme-smartcq", "sends"),
        enable_idempotence=True,
    )
    await ghost.start()
    await ghost.begin_transaction()
    observed = datetime.now(UTC)
    ghost_events = [
        e for s in sim.snapshot("smartcq")[:300] for e in normalise(s, source="acme-smartcq", observed_at=observed)
    ]
    for e in ghost_events:
        await ghost.send(topic_name(EVENTS, topic_prefix), key=e.key.encode(), value=encode_event(e))
    cursor = {
        "source": "acme-smartcq",
        "provider": "smartcq",
        "stream": "sends",
        "cursor": {"since": "2030-01-01T00:00:00.000Z"},
        "committed_at": "2026-11-23T00:00:00.000Z",
    }
    await ghost.send(topic_name(CHECKPOINTS, topic_prefix), key=b"acme-smartcq/sends", value=orjson.dumps(cursor))
    await ghost.flush()

    async with serve_simulators(sim, providers=("smartcq",)) as urls:
        config = make_config(kafka.bootstrap, topic_prefix, urls, ("smartcq",))
        runner = runner_for(config, "smartcq", sim, streams=("sends",))
        await runner.start()  # fences the ghost and aborts its open transaction
        try:
            result = await runner.run_once("poll")
        finally:
            await runner.close()
    try:
        await ghost.stop()
    except Exception:  # fenced: it may complain on the way out, as a crashed process would have
        pass

    assert result["sends"].events == len(truth), "the uncommitted cursor must not have been used"
    events = await read_topic(kafka.bootstrap, topic_prefix, EVENTS)
    got = facts(events)
    assert len(got) == len(set(got)) and set(got) == truth
    uncommitted = await read_topic(kafka.bootstrap, topic_prefix, EVENTS, isolation="read_uncommitted")
    assert len(uncommitted) == len(events) + len(
        ghost_events
    )  # the aborted batch is on the log, invisible to read_committed
