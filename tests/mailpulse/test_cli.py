"""The command line: bad config is one clear line and exit code 2, before anything connects."""

from __future__ import annotations

import os
import subprocess
import sys

from mailpulse.cli import build_parser
from mailpulse.topics.contracts import TOPICS


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailpulse.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_bad_config_is_one_line_naming_file_and_key_and_exit_code_2(tmp_path):
    config = tmp_path / "bad.yaml"
    # 127.0.0.1:1 would refuse a connection: the error must come before any attempt.
    config.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:1'}\n"
        "sources:\n"
        "  - {name: s, provider: supersend, base_url: 'http://h', api_key: k, poll_interval: 6x}\n"
    )
    result = _run("topics", "create", "--config", str(config), env={"MAILPULSE_KAFKA_BOOTSTRAP": ""})
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"mailpulse topics: {config}: sources[0].poll_interval: invalid duration '6x': use a number with a unit, e.g. 30s, 15m, 7d"
    ]


def test_missing_secret_is_named_without_printing_any_secret(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "sources:\n"
        "  - {name: a, provider: smartcq, base_url: 'http://h', api_key: '${OTHER_KEY}'}\n"
        "  - {name: b, provider: supersend, base_url: 'http://h', api_key: '${SUPERSEND_KEY}'}\n"
    )
    result = _run("connect", "--config", str(config), env={"OTHER_KEY": "s3cr3t-value", "SUPERSEND_KEY": ""})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mailpulse connect: {config}: sources[1].api_key: environment variable SUPERSEND_KEY is not set"
    ]
    assert "s3cr3t-value" not in result.stderr + result.stdout


def test_every_documented_command_is_registered():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert {"dev", "topics"} <= set(sub.choices)


def test_topics_create_cli_is_idempotent_against_the_real_broker(kafka, unique_prefix, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka.bootstrap}', topic_prefix: '{unique_prefix}', replication_factor: 1}}\n"
    )
    first = _run("topics", "create", "--config", str(config), env={"MAILPULSE_KAFKA_BOOTSTRAP": ""})
    second = _run("topics", "create", "--config", str(config), env={"MAILPULSE_KAFKA_BOOTSTRAP": ""})
    assert first.returncode == 0, first.stderr
    assert f"{len(TOPICS)} created, 0 existing, 0 drift" in first.stdout
    assert second.returncode == 0, second.stderr
    assert f"0 created, {len(TOPICS)} existing, 0 drift" in second.stdout


# --- hardening -----------------------------------------------------------------------------------

UNREACHABLE = {"MAILPULSE_KAFKA_BOOTSTRAP": "127.0.0.1:1"}


def test_a_config_file_that_is_not_utf8_is_one_line_for_connect_and_worker(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_bytes(b"\xff\xfe\x00bad")
    for command in ("connect", "worker"):
        result = _run(command, "--config", str(config), env=UNREACHABLE)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"mailpulse {command}: {config}: not a UTF-8 text file (byte 0xff at offset 0): save it as UTF-8"
        ]


def test_connect_without_sources_is_a_config_error_before_anything_starts(tmp_path):
    from mailpulse.devkafka import free_port

    port = free_port()
    for text in ("", "kafka: {topic_prefix: x}\n", "sources: []\n"):
        config = tmp_path / "c.yaml"
        config.write_text(text + f"connect: {{metrics_port: {port}}}\n")
        for command in (["connect"], ["backfill", "--source", "s", "--since", "2026-01-01"]):
            result = _run(*command[:1], "--config", str(config), *command[1:], env=UNREACHABLE)
            assert result.returncode == 2, result.stderr
            assert result.stderr.strip().splitlines() == [
                f"mailpulse {command[0]}: {config}: sources: at least one source is required for {command[0]}"
            ]
            assert "metrics on" not in result.stderr


def test_topics_create_does_not_ask_for_a_source_secret(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "sources:\n  - {name: b, provider: supersend, base_url: 'http://h', api_key: '${SUPERSEND_KEY}'}\n"
    )
    result = _run("topics", "create", "--config", str(config), env={**UNREACHABLE, "SUPERSEND_KEY": ""})
    assert "SUPERSEND_KEY" not in result.stderr
    # It gets as far as the broker, which does not answer: one line naming it, no traceback.
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "mailpulse topics: cannot reach Kafka at 127.0.0.1:1 (PLAINTEXT): connection refused "
        "(is the broker running? check kafka.bootstrap_servers or MAILPULSE_KAFKA_BOOTSTRAP)"
    ]


def test_connect_and_worker_with_kafka_unreachable_are_one_line_naming_the_servers(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "connect: {metrics_port: 0}\n"
        f"worker: {{data_dir: '{tmp_path / 'w'}'}}\n"
        "sources:\n"
        "  - {name: b, provider: supersend, base_url: 'http://127.0.0.1:9', api_key: k}\n"
    )
    for command in ("connect", "worker"):
        result = _run(command, "--config", str(config), env=UNREACHABLE)
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"mailpulse {command}: cannot reach Kafka at 127.0.0.1:1 (PLAINTEXT): connection refused "
            "(is the broker running? check kafka.bootstrap_servers or MAILPULSE_KAFKA_BOOTSTRAP)"
        ], result.stderr


def test_worker_and_connect_refuse_to_start_before_topics_create_and_create_nothing(kafka, unique_prefix, tmp_path):
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    config = tmp_path / "c.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka.bootstrap}', topic_prefix: '{unique_prefix}', replication_factor: 1}}\n"
        "connect: {metrics_port: 0}\n"
        f"worker: {{data_dir: '{tmp_path / 'w'}'}}\n"
        "sources:\n"
        "  - {name: b, provider: supersend, base_url: 'http://127.0.0.1:9', api_key: k}\n"
    )
    env = {"MAILPULSE_KAFKA_BOOTSTRAP": ""}
    for command in ("connect", "worker"):
        result = _run(command, "--config", str(config), env=env)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(
            f"mailpulse {command}: contract topics not ready ({unique_prefix}mailpulse.events.v1 is missing"
        )
        assert line.endswith(f"run `mailpulse topics create --config {config}` first")

    async def topics() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            return {t for t in await admin.list_topics() if t.startswith(unique_prefix)}
        finally:
            await admin.close()

    assert asyncio.run(topics()) == set()  # nothing auto-created by the refused starts

    # A topic the broker auto-created (1 partition) is refused too, after topics create made the rest.
    async def auto_created_events() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{unique_prefix}mailpulse.events.v1", 1, 1)])
        finally:
            await admin.close()

    asyncio.run(auto_created_events())
    assert _run("topics", "create", "--config", str(config), env=env).returncode == 1  # drift reported
    result = _run("worker", "--config", str(config), env=env)
    assert result.returncode == 2, result.stderr
    assert f"{unique_prefix}mailpulse.events.v1: partitions is 1, the contract says 8" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
