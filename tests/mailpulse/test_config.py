"""Config: one clear line naming the file and the key, before anything connects."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mailpulse.config import BOOTSTRAP_ENV, CONFIG_ENV, load_config, parse_duration
from mailpulse.errors import ConfigError

SMARTCQ = """
sources:
  - name: acme-smartcq
    provider: smartcq
    base_url: https://app.smartcq.it
    api_key: ${SMARTCQ_KEY}
"""


@pytest.fixture
def write(tmp_path: Path):
    def _write(text: str) -> Path:
        path = tmp_path / "mailpulse.yaml"
        path.write_text(text)
        return path

    return _write


def _error(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_the_documented_example_loads_with_defaults(write):
    path = write(
        """
kafka: {bootstrap_servers: "127.0.0.1:9092"}
worker: {web_port: 6066, data_dir: ./var/worker}
sources:
  - name: acme-smartcq
    provider: smartcq
    base_url: https://app.smartcq.it
    api_key: ${SMARTCQ_KEY}
    poll_interval: 60s
    lookback: 7d
"""
    )
    config = load_config(path, env={"SMARTCQ_KEY": "k-123"})
    (source,) = config.sources
    assert source.api_key.get_secret_value() == "k-123"
    assert source.poll_interval == timedelta(seconds=60)
    assert source.lookback == timedelta(days=7)
    assert source.reconcile_interval == timedelta(minutes=15)
    assert config.worker.web_port == 6066
    assert config.path == path


def test_every_provider_of_the_dev_config_validates():
    dev = Path(__file__).resolve().parents[2] / "examples" / "dev.yaml"
    config = load_config(dev, env={})
    assert [s.provider for s in config.sources] == ["smartcq", "smtpeter", "supersend", "smartersends"]
    smtpeter = config.sources[1]
    assert [s.campaign_id for s in smtpeter.selectors] == ["tags:newsletter", "template:42"]


def test_secret_never_appears_in_repr_or_dump(write):
    config = load_config(write(SMARTCQ), env={"SMARTCQ_KEY": "super-secret-value"})
    assert "super-secret-value" not in repr(config)
    assert "super-secret-value" not in str(config.model_dump())
    assert "super-secret-value" not in config.model_dump_json()


def test_missing_secret_names_the_key_and_the_variable_not_a_value(write):
    message = _error(write(SMARTCQ))
    assert "sources[0].api_key" in message
    assert "SMARTCQ_KEY is not set" in message


def test_env_default_is_used_when_the_variable_is_unset(write):
    path = write(SMARTCQ.replace("${SMARTCQ_KEY}", "${SMARTCQ_KEY:-fallback}"))
    assert load_config(path, env={}).sources[0].api_key.get_secret_value() == "fallback"


def test_unknown_key_is_named(write):
    message = _error(write("kafka: {bootstrap_servers: 'h:1', bootstrap: 'x'}"))
    assert "kafka.bootstrap: unknown key" in message


def test_a_memtable_too_big_for_the_rocksdb_budget_names_the_key(write):
    message = _error(
        write("kafka: {bootstrap_servers: 'h:1'}\nworker: {rocksdb_memory_mb: 128, rocksdb_write_buffer_mb: 4}\n")
    )
    assert "worker.rocksdb_write_buffer_mb" in message and "rocksdb_memory_mb / 64" in message
    # The retired per-partition key is named, not silently ignored.
    message = _error(write("kafka: {bootstrap_servers: 'h:1'}\nworker: {rocksdb_block_cache_mb: 8}\n"))
    assert "worker.rocksdb_block_cache_mb: unknown key" in message


@pytest.mark.parametrize("mb", [0, 65])
def test_a_fetch_size_out_of_range_names_the_key(write, mb):
    message = _error(write(f"kafka: {{bootstrap_servers: 'h:1'}}\nworker: {{fetch_partition_mb: {mb}}}\n"))
    assert "worker.fetch_partition_mb" in message


def test_unknown_key_inside_a_source_is_named(write):
    message = _error(write(SMARTCQ + "    apikey: oops\n"), {"SMARTCQ_KEY": "k"})
    assert "sources[0].apikey: unknown key" in message


@pytest.mark.parametrize("value", ["6x", "-5s", "soon", "0s"])
def test_bad_duration_is_named(write, value):
    message = _error(write(SMARTCQ + f"    poll_interval: {value}\n"), {"SMARTCQ_KEY": "k"})
    assert "sources[0].poll_interval" in message


def test_bad_url_is_named(write):
    message = _error(write(SMARTCQ.replace("https://app.smartcq.it", "ftp//nope")), {"SMARTCQ_KEY": "k"})
    assert "sources[0].base_url" in message and "http(s) URL" in message


def test_unknown_provider_lists_the_known_ones(write):
    message = _error(write(SMARTCQ.replace("provider: smartcq", "provider: mailchimp")), {"SMARTCQ_KEY": "k"})
    assert "unknown provider 'mailchimp'" in message and "smartersends" in message


def test_duplicate_source_names_are_rejected(write):
    body = SMARTCQ + SMARTCQ.split("sources:\n", 1)[1]
    message = _error(write(body), {"SMARTCQ_KEY": "k"})
    assert "'acme-smartcq' is used twice" in message


def test_source_name_cannot_break_the_key_format(write):
    message = _error(write(SMARTCQ.replace("acme-smartcq", "acme:smartcq")), {"SMARTCQ_KEY": "k"})
    assert "sources[0].name" in message


def test_smtpeter_selector_needs_exactly_one_of_tags_or_template(write):
    path = write(
        """
sources:
  - {name: p, provider: smtpeter, base_url: "http://h", access_token: t, selectors: [{tags: [a], template: 4}]}
"""
    )
    assert "sources[0].selectors[0]" in _error(path)


def test_invalid_yaml_names_the_line(write):
    assert "at line 3" in _error(write("kafka:\n  brokers: [a\n  other: 1\n"))


def test_missing_file_and_missing_path_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml", env={})
    with pytest.raises(ConfigError, match=f"pass --config PATH or set {CONFIG_ENV}"):
        load_config(None, env={})


def test_config_path_comes_from_the_environment(write):
    path = write("kafka: {bootstrap_servers: 'h:1'}")
    assert load_config(None, env={CONFIG_ENV: str(path)}).kafka.bootstrap_servers == "h:1"


def test_bootstrap_env_overrides_the_file(write):
    path = write("kafka: {bootstrap_servers: 'file:1'}")
    assert load_config(path, env={BOOTSTRAP_ENV: "env:2"}).kafka.bootstrap_servers == "env:2"


def test_bad_bootstrap_servers_are_named(write):
    assert "kafka.bootstrap_servers" in _error(write("kafka: {bootstrap_servers: 'nohostport'}"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("60s", 60), ("15m", 900), ("1h", 3600), ("7d", 604800), ("2w", 1209600), (30, 30)],
)
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


# --- hardening: encodings, per-command sections, secrets, URLs -------------------------------------


def test_a_file_that_is_not_utf8_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    message = _error(path)
    assert "not a UTF-8 text file" in message


@pytest.mark.parametrize("text", ["", "kafka: {bootstrap_servers: 'h:1'}\n", "sources: []\n", "sources:\n"])
@pytest.mark.parametrize("command", ["connect", "backfill"])
def test_connect_and_backfill_need_a_source_worker_and_topics_do_not(write, text, command):
    path = write(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={}, command=command)
    assert str(info.value) == f"{path}: sources: at least one source is required for {command}"
    for other in ("worker", "topics create"):
        assert load_config(path, env={}, command=other).sources == []


def test_a_command_resolves_only_the_sections_it_uses(write):
    path = write(SMARTCQ.replace("https://app.smartcq.it", "${SMARTCQ_URL}"))
    for command in ("topics create", "worker"):
        load_config(path, env={}, command=command)  # neither key nor URL asked for
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"SMARTCQ_URL": "https://h"}, command="connect")
    assert str(info.value) == f"{path}: sources[0].api_key: environment variable SMARTCQ_KEY is not set"


def test_an_unused_section_is_still_validated(write):
    path = write(SMARTCQ + "    poll_interval: 6x\n")
    with pytest.raises(ConfigError, match=r"sources\[0\].poll_interval: invalid duration"):
        load_config(path, env={}, command="topics create")


@pytest.mark.parametrize(
    "value, env, problem",
    [
        ("${SMARTCQ_KEY:-}", {}, "secret is empty"),
        ("'   '", {}, "secret is empty"),
        ("${SMARTCQ_KEY}", {"SMARTCQ_KEY": "abc def"}, "secret is malformed"),
        ("${SMARTCQ_KEY}", {"SMARTCQ_KEY": "abc\n"}, "secret is malformed"),
    ],
)
def test_an_empty_or_malformed_secret_names_the_key_not_the_value(write, value, env, problem):
    path = write(SMARTCQ.replace("${SMARTCQ_KEY}", value))
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env, command="connect")
    message = str(info.value)
    assert message.startswith(f"{path}: sources[0].api_key: {problem}")
    assert "abc" not in message


@pytest.mark.parametrize("value", ['"${SMARTCQ_KEY"', '"x${}"', '"${1KEY}"', '"${SMARTCQ_KEY:-x"'])
def test_a_malformed_reference_is_a_config_error_naming_the_key(write, value):
    path = write(SMARTCQ.replace("${SMARTCQ_KEY}", value))
    for command in ("connect", "topics create"):
        with pytest.raises(ConfigError) as info:
            load_config(path, env={"SMARTCQ_KEY": "k"}, command=command)
        assert str(info.value).startswith(f"{path}: sources[0].api_key: malformed environment reference")


def test_a_malformed_reference_outside_sources_is_named(write):
    path = write("kafka: {topic_prefix: '${PREFIX'}\n")
    with pytest.raises(ConfigError, match=r"kafka.topic_prefix: malformed environment reference"):
        load_config(path, env={}, command="worker")


@pytest.mark.parametrize(
    "url",
    [
        "http://admin:hunter2pw@h.example",
        "https://hunter2pw@h.example/x",
        "http://admin:hunter2pw@h x",
        "admin:hunter2pw@h.example",
    ],
)
def test_a_base_url_with_credentials_is_rejected_without_echoing_them(write, url):
    path = write(SMARTCQ.replace("https://app.smartcq.it", f"'{url}'"))
    for command in ("connect", "topics create"):
        with pytest.raises(ConfigError) as info:
            load_config(path, env={"SMARTCQ_KEY": "k"}, command=command)
        message = str(info.value)
        assert message.startswith(f"{path}: sources[0].base_url: must not hold a user name or password")
        assert "hunter2pw" not in message and "admin" not in message
