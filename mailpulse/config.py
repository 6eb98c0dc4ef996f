"""One typed, frozen config object, built once from a YAML file and passed down.

    kafka:   {bootstrap_servers, topic_prefix, replication_factor, security_protocol, sasl_*, ssl_*}
    worker:  {web_port, data_dir, ...}
    sources: [{name, provider, base_url, <provider keys>, poll_interval, lookback, reconcile_interval}]

``${ENV_VAR}`` (or ``${ENV_VAR:-default}``) in any string value is replaced
from the environment; secrets belong there. ``MAILPULSE_KAFKA_BOOTSTRAP``
overrides ``kafka.bootstrap_servers``. Everything is validated before anything
connects, and a bad file fails with one line naming the file and the key.
Secret fields are ``SecretStr``: masked in ``repr()``, logs and errors.

A source's keys are declared by its provider module (``connectors/providers/<name>.py``,
on ``mailpulse.sources.SourceBase``); ``SourceConfig`` is the union of those models.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from mailpulse.alerts import AlertSettings
from mailpulse.connectors.providers import PROVIDERS
from mailpulse.errors import ConfigError
from mailpulse.kafkaclient import KafkaConfig
from mailpulse.sources import Duration, parse_duration
from mailpulse.sources import Model as _Model

__all__ = [
    "Config",
    "KafkaConfig",
    "WorkerConfig",
    "ConnectConfig",
    "SourceConfig",
    "load_config",
    "COMMAND_SECTIONS",
    "parse_duration",
    "CONFIG_ENV",
    "BOOTSTRAP_ENV",
]

CONFIG_ENV = "MAILPULSE_CONFIG"
BOOTSTRAP_ENV = "MAILPULSE_KAFKA_BOOTSTRAP"


#: rocksdb_memory_mb must hold this many memtables: 2 x (3 tables + 1 spill) x 8 partitions.
MEMTABLES_PER_BUDGET = 64


class WorkerConfig(_Model):
    web_port: int = Field(default=6066, ge=1, le=65535)
    #: Host the query API binds to.
    web_host: str = "0.0.0.0"
    data_dir: Path = Path("./var/worker")
    #: All RocksDB memory of the worker, in MiB: one block cache shared by every table partition and
    #: contact spill, memtables (at most half of it) and index/filter blocks charged to it.
    rocksdb_memory_mb: int = Field(default=128, ge=8)
    #: Size of one RocksDB memtable (write buffer), in MiB; at most rocksdb_memory_mb / 64.
    rocksdb_write_buffer_mb: int = Field(default=2, ge=1)
    #: Host other workers use to reach this one's API (routing); default: web_host,
    #: or 127.0.0.1 when web_host is 0.0.0.0.
    advertised_host: str | None = None
    #: Consumer-group timeouts: a dead worker's partitions move after session_timeout.
    session_timeout: Duration = timedelta(seconds=30)
    heartbeat_interval: Duration = timedelta(seconds=3)
    rebalance_timeout: Duration = timedelta(seconds=60)
    #: Events per stage-1 batch, and the longest wait to fill one.
    #: Most records one fetch hands to a handler (Faust's broker_max_poll_records).
    batch_size: int = Field(default=10_000, ge=1)
    #: How often changed aggregates are published (partials and stats topics).
    publish_interval: Duration = timedelta(seconds=1)
    #: Faust log level of the worker: crit, error, warn, info or debug.
    log_level: Literal["crit", "error", "warn", "info", "debug"] = "warn"
    #: The most recently active campaigns (of those this worker owns) exported to Prometheus.
    metrics_campaigns: int = Field(default=200, ge=0, le=10_000)
    #: Extra mailbox-provider groups: name -> domains (``acme.com``) or ``label.*`` patterns.
    mailbox_providers: dict[str, list[str]] = Field(default_factory=dict)
    #: Most MiB one fetch reads of one partition. Fetched records wait in the consumer's buffers
    #: until the agents take them: up to this much per assigned partition of every topic read.
    fetch_partition_mb: int = Field(default=8, ge=1, le=64)
    #: Fix glibc malloc's mmap and trim thresholds at 128 KiB and its arenas at 2 at start, so
    #: batch-sized buffers go back to the system when freed (mailpulse.streams.malloc): ~10% lower
    #: peak RSS, but slower at a million contacts (docs/streams.md). false: glibc's defaults.
    malloc_tuning: bool = False
    #: Contact aggregates kept in memory per owned events partition (most recently used); the
    #: others wait in a local RocksDB under data_dir/views. 0: every contact in memory.
    contact_cache_size: int = Field(default=5_000, ge=0)
    #: Retention of per-message state: a message is sealed this long after its last fact (its state
    #: deleted, its contribution kept in its campaign's and contact's figures). Must exceed the events
    #: topic's retention (checked at start). 0: never seal.
    message_horizon: Duration = timedelta(days=45)
    #: How long a sealed message's marker (its key, so an event arriving for it is recognised and not
    #: counted again) is kept after sealing; must cover the events topic's retention. 0: forever.
    sealed_marker_ttl: Duration = timedelta(days=45)
    #: How often the owned partitions are scanned for messages to seal and markers to drop.
    seal_interval: Duration = Field(default=timedelta(minutes=10), gt=timedelta(0))

    @field_validator("rocksdb_write_buffer_mb")
    @classmethod
    def _write_buffer_within_budget(cls, mb: int, info: ValidationInfo) -> int:
        budget = info.data.get("rocksdb_memory_mb")
        if budget is not None and mb * MEMTABLES_PER_BUDGET > budget:
            # Each of up to 32 RocksDB instances keeps one memtable until it is written to again:
            # they must fit in the half of the budget that memtables may take.
            raise ValueError(
                f"{mb} MiB is more than rocksdb_memory_mb / {MEMTABLES_PER_BUDGET} ({budget} MiB / {MEMTABLES_PER_BUDGET})"
            )
        return mb

    @field_validator("mailbox_providers")
    @classmethod
    def _mailbox_groups(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        if len(groups) > 20:
            raise ValueError("at most 20 groups (each is a label value of every mailbox metric)")
        for name, domains in groups.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name) or name in ("other", "unknown"):
                raise ValueError(f"group {name!r}: use 1-32 lower-case letters, digits, '_' or '-' (not other/unknown)")
            for d in domains:
                if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*(\.\*)?", d.strip().lower()):
                    raise ValueError(
                        f"group {name!r}: {d!r} is not a domain (gmail.com) or a label.* pattern (outlook.*)"
                    )
        return groups


class ConnectConfig(_Model):
    """``mailpulse connect``: the pollers' process."""

    #: Port of the pollers' Prometheus /metrics endpoint (0 disables it).
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    #: Events per Kafka transaction (one transaction also carries the cursor).
    batch_size: int = Field(default=5000, ge=1)


#: One model per provider module, told apart by its ``provider`` key.
SourceConfig = Annotated[
    Union[tuple(p.config for p in PROVIDERS.values())],  # type: ignore[valid-type]  # noqa: UP007 (built at run time)
    Field(discriminator="provider"),
]


class Config(_Model):
    kafka: KafkaConfig = KafkaConfig()
    worker: WorkerConfig = WorkerConfig()
    connect: ConnectConfig = ConnectConfig()
    sources: list[SourceConfig] = Field(default_factory=list)
    #: Thresholds of the generated alert rules (``mailpulse alerts rules``).
    alerts: AlertSettings = AlertSettings()
    #: The file it was read from, for messages.
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for s in sources:
            if s.name in seen:
                raise ValueError(f"source name {s.name!r} is used twice; names must be unique")
            seen.add(s.name)
        return sources

    def source(self, name: str) -> Any:
        for s in self.sources:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.sources) or "none"
        raise ConfigError(f"{self.path}: no source named {name!r} (configured: {known})")


# ---------------------------------------------------------------------------
# Loading

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: The top-level sections each command uses. ``${VAR}`` references elsewhere stay
#: unresolved and unchecked: ``topics create`` does not ask for a provider's key.
COMMAND_SECTIONS: dict[str, tuple[str, ...]] = {
    "topics create": ("kafka",),
    "worker": ("kafka", "worker"),
    "connect": ("kafka", "connect", "sources"),
    "backfill": ("kafka", "connect", "sources"),
}
#: Commands that have nothing to do without a source.
_NEEDS_SOURCES = ("connect", "backfill")
_SECTIONS = ("kafka", "worker", "connect", "sources")


def _check_refs(node: Any, path: str) -> None:
    """Every ``${`` must open a well-formed ``${NAME}`` or ``${NAME:-default}``."""
    if isinstance(node, dict):
        for k, v in node.items():
            _check_refs(v, _join(path, str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_refs(v, f"{path}[{i}]")
    elif isinstance(node, str):
        at = node.find("${")
        while at != -1:
            m = _ENV_REF.match(node, at)
            if m is None:
                # The value is not echoed: it may be (part of) a secret.
                raise _KeyProblem(path, "malformed environment reference: expected ${NAME} or ${NAME:-default}")
            at = node.find("${", m.end())


def _interpolate(node: Any, path: str, env: Mapping_, lazy: bool = False) -> Any:
    """Resolve ``${VAR}``; with ``lazy`` an unset variable without default stays as written."""
    if isinstance(node, dict):
        return {k: _interpolate(v, _join(path, str(k)), env, lazy) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", env, lazy) for i, v in enumerate(node)]
    if isinstance(node, str):

        def replace(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = env.get(name)
            if value is None or value == "":
                if default is not None:
                    return default
                if lazy:
                    return m.group(0)
                raise _KeyProblem(path, f"environment variable {name} is not set")
            return value

        return _ENV_REF.sub(replace, node)
    return node


def _has_userinfo(url: str) -> bool:
    """``user[:password]@`` before the host, with or without a scheme (checked before any message echoes the URL)."""
    rest = re.sub(r"^\s*[A-Za-z][A-Za-z0-9+.-]*:(//)?", "", url)
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return "@" in authority or "@" in urlsplit(url.strip()).netloc


def _check_urls(node: Any, path: str) -> None:
    """A URL with a user name or password would put a credential in logs and metrics labels."""
    if isinstance(node, dict):
        for k, v in node.items():
            key = _join(path, str(k))
            if isinstance(v, str) and str(k).endswith("url") and _has_userinfo(v):
                raise _KeyProblem(
                    key,
                    "must not hold a user name or password (user:password@host); "
                    "put the credential in the source's secret key, from the environment",
                )
            _check_urls(v, key)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_urls(v, f"{path}[{i}]")


def _secret_problem(value: str) -> str | None:
    if not value.strip():
        return "is empty"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return "is malformed: it holds whitespace or control characters"
    if "${" in value:
        return "is malformed: it holds an unresolved ${...} reference"
    return None


def _check_secrets(node: Any, path: str) -> None:
    """Every ``SecretStr`` the command uses must be a plausible credential (never echoed)."""
    if isinstance(node, SecretStr):
        problem = _secret_problem(node.get_secret_value())
        if problem:
            raise _KeyProblem(path, f"secret {problem}")
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            _check_secrets(getattr(node, name), _join(path, name))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _check_secrets(v, f"{path}[{i}]")
    elif isinstance(node, dict):
        for k, v in node.items():
            _check_secrets(v, _join(path, str(k)))


def _value_at(loc: tuple[Any, ...], data: Any) -> Any:
    node = data
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif isinstance(node, dict):
            if part not in node and node.get("provider") == part:
                continue
            node = node.get(part)
        else:
            return None
    return node


Mapping_ = Any  # os.environ or a plain dict


class _KeyProblem(Exception):
    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _loc(loc: tuple[Any, ...], data: Any) -> str:
    """Pydantic's error location as the user wrote it: ``sources[0].api_key``."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        # The discriminated union puts the provider tag in the path: skip it.
        if isinstance(node, dict) and part not in node and node.get("provider") == part:
            continue
        out = _join(out, str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "union_tag_invalid":
        return f"unknown provider {err.get('input')!r}: expected one of {', '.join(PROVIDERS)}"
    if err["type"] == "union_tag_not_found":
        return "required key 'provider' is missing"
    return msg


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping_ | None = None,
    *,
    command: str | None = None,
) -> Config:
    """Read, interpolate and validate the config; raise ``ConfigError`` with one clear line.

    ``command`` (a key of ``COMMAND_SECTIONS``) limits what must resolve to the
    sections that command uses, and ``connect``/``backfill`` need a source;
    None checks every section and needs no source.
    """
    env = os.environ if env is None else env
    if command is not None and command not in COMMAND_SECTIONS:
        raise ValueError(f"unknown command {command!r}")
    used = set(COMMAND_SECTIONS[command]) if command is not None else set(_SECTIONS)
    raw_path = path if path is not None else env.get(CONFIG_ENV)
    if not raw_path:
        raise ConfigError(f"no config file: pass --config PATH or set {CONFIG_ENV}")
    file = Path(raw_path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{file}: not a UTF-8 text file (byte 0x{raw[exc.start]:02x} at offset {exc.start}): save it as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "invalid YAML"
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping with kafka, worker and sources")
    if "sources" in data and data["sources"] is None:
        del data["sources"]  # "sources:" with nothing under it: no sources
    try:
        _check_refs(data, "")
        data = {k: _interpolate(v, str(k), env, lazy=k in _SECTIONS and k not in used) for k, v in data.items()}
        _check_urls(data, "")
    except _KeyProblem as p:
        raise ConfigError(f"{file}: {p.key}: {p.problem}") from None
    override = env.get(BOOTSTRAP_ENV)
    if override:
        data.setdefault("kafka", {})
        if isinstance(data["kafka"], dict):
            data["kafka"] = {**data["kafka"], "bootstrap_servers": override}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        # An unused section may fail only because a reference there is left unresolved: not this command's business.
        unused = [
            e
            for e in errors
            if e["loc"]
            and e["loc"][0] not in used
            and isinstance(v := _value_at(e["loc"], data), str)
            and _ENV_REF.search(v)
        ]
        if unused and len(unused) == len(errors):
            config = Config.model_validate({k: v for k, v in data.items() if k in used or k not in _SECTIONS})
        else:
            _raise_first(file, exc, [e for e in errors if e not in unused], data)
    if command in _NEEDS_SOURCES and not config.sources:
        raise ConfigError(f"{file}: sources: at least one source is required for {command}")
    try:
        for section in sorted(used):
            _check_secrets(getattr(config, section), section)
    except _KeyProblem as p:
        raise ConfigError(f"{file}: {p.key}: {p.problem}") from None
    return config.model_copy(update={"path": file})


def _raise_first(file: Path, exc: ValidationError, errors: list[Any], data: Any) -> None:
    first = errors[0]
    # Re-read the error with its input only for the provider tag, never echoing values.
    if first["type"] == "union_tag_invalid":
        first = dict(first)
        first["input"] = first.get("ctx", {}).get("tag")
    more = len(errors) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    raise ConfigError(f"{file}: {_loc(first['loc'], data)}: {_message(first)}{suffix}") from None
