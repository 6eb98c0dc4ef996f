"""The local Kafka launcher: clear errors, no-op when a broker is given, a full lifecycle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailpulse.config import BOOTSTRAP_ENV
from mailpulse.devkafka import LocalKafka, LocalKafkaError, broker_answers, free_port


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailpulse.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=240,
    )


def test_missing_java_or_maven_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither java nor mvn on it
    launcher = LocalKafka(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", port=free_port())
    with pytest.raises(LocalKafkaError, match=r"'mvn' is not on PATH: install Maven"):
        launcher.ensure_classpath()
    with pytest.raises(LocalKafkaError, match=r"'java' is not on PATH: install a Java 17\+ runtime"):
        launcher.start()


def test_start_starts_nothing_when_the_bootstrap_env_points_at_a_live_broker(kafka, tmp_path):
    state = tmp_path / "never-used"
    result = _cli("dev", "kafka", "start", "--state-dir", str(state), env={BOOTSTRAP_ENV: kafka.bootstrap})
    assert result.returncode == 0, result.stderr
    assert "starting nothing" in result.stdout
    assert not state.exists()


def test_start_status_stop_from_separate_processes(kafka, tmp_path):
    # `kafka` is requested so that the jars are cached before this second broker starts.
    env = {BOOTSTRAP_ENV: ""}
    port = str(free_port())
    state = str(tmp_path / "kafka")
    started = _cli("dev", "kafka", "start", "--port", port, "--state-dir", state, env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert f"Kafka ready on 127.0.0.1:{port}" in started.stdout
        # start returned, so the broker must already answer a metadata request
        assert broker_answers(f"127.0.0.1:{port}")
        assert _cli("dev", "kafka", "status", "--port", port, "--state-dir", state, env=env).returncode == 0
        again = _cli("dev", "kafka", "start", "--port", port, "--state-dir", state, env=env)
        assert again.returncode == 0 and "Kafka ready" in again.stdout
    finally:
        stopped = _cli("dev", "kafka", "stop", "--port", port, "--state-dir", state, env=env)
    assert stopped.stdout.strip() == "stopped"
    status = _cli("dev", "kafka", "status", "--port", port, "--state-dir", state, env=env)
    assert status.returncode == 1 and status.stdout.startswith("not running")
    assert not broker_answers(f"127.0.0.1:{port}", timeout_s=2)


def test_jars_are_cached_outside_the_repository(kafka):
    if kafka.launcher is None:
        pytest.skip("the session uses an external broker")  # only with MAILPULSE_KAFKA_BOOTSTRAP set by hand
    lib = kafka.launcher.lib_dir
    repo = Path(__file__).resolve().parents[2]
    assert (lib / ".complete").exists()
    assert repo not in lib.parents
    assert any(p.name.startswith("kafka_2.13-") for p in lib.iterdir())
