"""topics create, a poller and a worker through a real broker's SASL_SSL listener (SCRAM-SHA-512 over TLS).

The broker is ``secure_kafka`` (tests/fixtures/kafka.py): its own process,
ports and state, a CA and broker certificate made with openssl, user alice
created when its storage is formatted. Every command runs as the real
``mailpulse`` CLI in a subprocess, with the password only in the environment.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailpulse.config import load_config
from mailpulse.connectors.state import scan_topic
from mailpulse.kafkaclient import KafkaAccessError, check_kafka
from mailpulse.simulators import Simulator, SimulatorConfig, serve_simulators
from mailpulse.topics.contracts import CHECKPOINTS, EVENTS, topic_name
from mailpulse.topics.events import decode_event
from tests.connectors.providers.test_smartcq_integration import expected_facts
from tests.fixtures.kafka import SecureKafkaUnderTest
from tests.streams.compare import mismatches
from tests.streams.fixtures import TEST_WORKER, WorkerProcess, free_port, wait_until
from tests.streams.groundtruth import ground_truth

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSWORD_ENV = "KAFKA_TEST_PASSWORD"


def _env(password: str) -> dict[str, str]:
    env = {**os.environ, PASSWORD_ENV: password, "PYTHONUNBUFFERED": "1"}
    env.pop("MAILPULSE_KAFKA_BOOTSTRAP", None)  # the config's SASL_SSL listener, not a shared broker
    return env


def _write_config(path: Path, kafka: dict[str, Any], **sections: Any) -> Path:
    path.write_text(yaml.safe_dump({"kafka": kafka, **sections}))
    return path


def _cli(*args: str, password: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailpulse.cli", *args],
        cwd=ROOT,
        env=_env(password),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_clear_line(result: subprocess.CompletedProcess[str], command: str, secret: str) -> str:
    """Exit 2, no traceback, no secret, and stderr is exactly one mailpulse error line."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    assert secret not in output
    mine = [line for line in result.stderr.splitlines() if line.startswith(f"mailpulse {command}: ")]
    assert len(mine) == 1, result.stderr
    assert result.stderr.strip().splitlines() == mine, "stderr holds more than the one line"
    return mine[0]


@pytest.fixture
def prefix(unique_prefix: str) -> str:
    return unique_prefix


def test_wrong_password_and_unknown_ca_fail_with_one_clear_line(
    secure_kafka: SecureKafkaUnderTest, prefix: str, tmp_path: Path
):
    wrong = "wrong-" + secure_kafka.password[::-1]
    worker = {**TEST_WORKER, "web_port": free_port(), "web_host": "127.0.0.1", "data_dir": str(tmp_path / "data")}
    sources = [{"name": "acme-smartcq", "provider": "smartcq", "base_url": "http://127.0.0.1:9", "api_key": "k"}]
    config = _write_config(
        tmp_path / "bad.yaml",
        secure_kafka.kafka_section(prefix),
        worker=worker,
        sources=sources,
        connect={"metrics_port": 0},
    )
    commands = {"topics": ["topics", "create"], "connect": ["connect"], "worker": ["worker"]}
    for name, args in commands.items():
        line = _one_clear_line(_cli(*args, "--config", str(config), password=wrong), name, wrong)
        assert "Kafka authentication failed" in line, line
        assert secure_kafka.bootstrap in line and "SCRAM-SHA-512" in line and "user 'alice'" in line, line

    other_ca = _write_config(
        tmp_path / "other-ca.yaml", secure_kafka.kafka_section(prefix, ssl_cafile=str(secure_kafka.other_cafile)),
        worker=worker, sources=sources, connect={"metrics_port": 0},
    )  # fmt: skip
    for name, args in commands.items():
        line = _one_clear_line(
            _cli(*args, "--config", str(other_ca), password=secure_kafka.password), name, secure_kafka.password
        )
        assert "Kafka TLS failed" in line and "certificate verify failed" in line and "kafka.ssl_cafile" in line, line
        assert secure_kafka.bootstrap in line

    # The system CAs (no ssl_cafile) do not know the test CA either.
    no_ca = secure_kafka.kafka_section(prefix)
    del no_ca["ssl_cafile"]
    line = _one_clear_line(
        _cli("topics", "create", "--config", str(_write_config(tmp_path / "no-ca.yaml", no_ca)), password=secure_kafka.password),
        "topics", secure_kafka.password,
    )  # fmt: skip
    assert "certificate verify failed" in line and "set kafka.ssl_cafile" in line


async def test_plaintext_and_tls_without_sasl_are_refused_with_one_line(
    secure_kafka: SecureKafkaUnderTest, tmp_path: Path
):
    plain = load_config(_write_config(tmp_path / "plain.yaml", {"bootstrap_servers": secure_kafka.bootstrap}))
    with pytest.raises(KafkaAccessError, match="expects TLS"):
        await check_kafka(plain.kafka)
    section = secure_kafka.kafka_section("", security_protocol="SSL")
    for key in ("sasl_mechanism", "sasl_username", "sasl_password"):
        del section[key]
    tls_only = load_config(_write_config(tmp_path / "tls.yaml", section))
    with pytest.raises(KafkaAccessError, match="expects SASL"):
        await check_kafka(tls_only.kafka)


async def test_topics_poller_and_worker_end_to_end_through_sasl_ssl(
    secure_kafka: SecureKafkaUnderTest, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    password = secure_kafka.password
    monkeypatch.setenv(PASSWORD_ENV, password)  # WorkerProcess passes os.environ on
    monkeypatch.delenv("MAILPULSE_KAFKA_BOOTSTRAP", raising=False)
    kafka = secure_kafka.kafka_section(prefix)

    # 1. topics create, through the admin client.
    base = _write_config(tmp_path / "topics.yaml", kafka)
    created = await asyncio.to_thread(_cli, "topics", "create", "--config", str(base), password=password)
    assert created.returncode == 0, created.stdout + created.stderr
    assert f"created  {topic_name(EVENTS, prefix)}" in created.stdout
    assert password not in created.stdout + created.stderr

    # 2. The poller: `mailpulse connect` against the SmartCQ simulator, following its clock.
    sim = Simulator(SimulatorConfig(seed=7, size=400))
    truth = expected_facts(sim.snapshot("smartcq"))
    assert len(truth) > 500
    secure = load_config(base, env={PASSWORD_ENV: password}).kafka
    async with serve_simulators(sim, providers=("smartcq",)) as urls:
        source = {
            "name": "acme-smartcq",
            "provider": "smartcq",
            "base_url": urls["smartcq"],
            "api_key": "sim-smartcq-key",
        }
        connect_config = _write_config(
            tmp_path / "connect.yaml", kafka, connect={"metrics_port": 0, "batch_size": 500}, sources=[source]
        )
        log_path = tmp_path / "connect.log"
        with open(log_path, "wb") as log:
            poller = subprocess.Popen(
                [sys.executable, "-m", "mailpulse.cli", "connect", "--config", str(connect_config),
                 "--clock-url", f"{urls['smartcq']}/_sim/now"],
                cwd=ROOT, env=_env(password), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:

                async def read_facts() -> list[tuple[str, str]]:
                    out: list[tuple[str, str]] = []
                    await scan_topic(
                        secure, topic_name(EVENTS, prefix),
                        lambda k, v: out.append((decode_event(v).message_id, decode_event(v).type)) if v else None,
                    )  # fmt: skip
                    return out

                got: list[tuple[str, str]] = []
                for _ in range(240):
                    assert poller.poll() is None, log_path.read_text(errors="replace")[-3000:]
                    got = await read_facts()
                    if len(got) >= len(truth):
                        break
                    await asyncio.sleep(0.5)
                assert len(got) == len(set(got)), "a fact was published twice"
                assert set(got) == truth
                checkpoints: list[bytes] = []
                await scan_topic(secure, topic_name(CHECKPOINTS, prefix), lambda k, v: checkpoints.append(k or b""))
                assert b"acme-smartcq/sends" in checkpoints
            finally:
                poller.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(poller.wait, 30)
                except subprocess.TimeoutExpired:
                    poller.kill()
        connect_log = log_path.read_text(errors="replace")
        assert poller.returncode == 0, connect_log[-3000:]
        assert "Traceback" not in connect_log
        assert password not in connect_log

    # 3. The worker: exact answers against a ground truth computed from the events on the topic.
    events: list[Any] = []
    await scan_topic(secure, topic_name(EVENTS, prefix), lambda k, v: events.append(decode_event(v)) if v else None)
    campaigns, contacts = ground_truth(events)
    assert campaigns and contacts
    w = WorkerProcess(tmp_path, secure_kafka.bootstrap, prefix, "w1")
    conf = yaml.safe_load(w.config.read_text())
    conf["kafka"] = kafka
    w.config.write_text(yaml.safe_dump(conf))
    w.start()
    try:
        await wait_until(lambda: w.get("/readyz").status_code == 200, 120, "worker ready", [w])
        await wait_until(
            lambda: not mismatches(w, campaigns, "campaigns"), 120, "exact campaign answers", [w],
            show=lambda: mismatches(w, campaigns, "campaigns")[:5],
        )  # fmt: skip
        await wait_until(
            lambda: not mismatches(w, contacts, "contacts"), 90, "exact contact answers", [w],
            show=lambda: mismatches(w, contacts, "contacts")[:5],
        )  # fmt: skip
        assert mismatches(w, campaigns, "campaigns") == []
        assert mismatches(w, contacts, "contacts") == []
    finally:
        w.stop()
    worker_log = w.log.read_text(errors="replace")
    assert password not in worker_log
    assert "Traceback" not in worker_log, worker_log[-3000:]
