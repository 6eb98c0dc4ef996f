"""Create the contract topics and report drift of existing ones, idempotently."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from mailpulse.errors import MailpulseError
from mailpulse.kafkaclient import KafkaAccessError, KafkaTarget, check_kafka, kafka_client_settings, start_client
from mailpulse.topics.contracts import TOPICS, TopicSpec, topic_name

__all__ = [
    "TopicsError",
    "TopicsNotCreated",
    "Drift",
    "TopicsReport",
    "ensure_topics",
    "describe_drift",
    "start_admin",
    "check_contract_topics",
    "preflight",
]


class TopicsError(MailpulseError):
    """The cluster refused to create a contract topic."""


class TopicsNotCreated(MailpulseError):
    """A contract topic is missing, or not as its contract says (e.g. auto-created by the broker): exit code 2."""

    exit_code = 2


@contextlib.contextmanager
def _quiet(name: str = "aiokafka") -> Iterator[None]:
    """aiokafka logs every refused connection at ERROR; at start one line of ours says it all."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def start_admin(kafka: KafkaTarget, *, timeout_s: float = 30.0) -> AIOKafkaAdminClient:
    """A started admin client, or ``KafkaAccessError`` with one line saying why (and nothing left open).

    ``check_kafka`` connects once first: a broker that is down, a refused password or an
    unknown CA is one line before aiokafka starts logging its retries.
    """
    await check_kafka(kafka, timeout_s=timeout_s)
    admin = AIOKafkaAdminClient(**kafka_client_settings(kafka), request_timeout_ms=int(timeout_s * 1000))
    with _quiet():
        await start_client(admin, kafka)
    return admin


#: What must hold for a command to start: the rest of a drift is ``topics create``'s report.
_START_SETTINGS = ("partitions", "cleanup.policy")


async def check_contract_topics(
    admin: AIOKafkaAdminClient, prefix: str = "", specs: Iterable[TopicSpec] = TOPICS
) -> list[str]:
    """Problems that make starting unsafe: a missing contract topic, or one with other partitions or cleanup policy."""
    specs = list(specs)
    present = set(await admin.list_topics())
    problems = [f"{topic_name(s, prefix)} is missing" for s in specs if topic_name(s, prefix) not in present]
    existing = [s for s in specs if topic_name(s, prefix) in present]
    problems += [str(d) for d in await describe_drift(admin, existing, prefix) if d.setting in _START_SETTINGS]
    return problems


async def preflight(
    kafka: KafkaTarget, prefix: str = "", *, config_path: object = None, timeout_s: float = 15.0
) -> None:
    """Before a worker or poller starts: Kafka answers and every contract topic exists as its contract says.

    Without this, a consumer or producer makes the broker auto-create a
    contract topic (1 partition, delete policy) and the pipeline runs on it.
    """
    admin = await start_admin(kafka, timeout_s=timeout_s)
    try:
        try:
            problems = await check_contract_topics(admin, prefix)
        except (TimeoutError, KafkaError) as exc:
            servers = kafka if isinstance(kafka, str) else kafka.bootstrap_servers
            raise KafkaAccessError(f"Kafka at {servers}: listing the topics failed ({type(exc).__name__})") from None
    finally:
        with _quiet():
            await admin.close()
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        flag = f" --config {config_path}" if config_path else ""
        raise TopicsNotCreated(f"contract topics not ready ({shown}): run `mailpulse topics create{flag}` first")


async def topic_retention_ms(kafka: KafkaTarget, topic: str, *, timeout_s: float = 15.0) -> int | None:
    """The topic's ``retention.ms`` as the broker applies it (-1: forever), None if it does not say."""
    admin = await start_admin(kafka, timeout_s=timeout_s)
    try:
        for response in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]):
            for _err, _msg, _type, _name, entries in response.resources:
                for entry in entries:
                    if entry[0] == "retention.ms" and entry[1] is not None:
                        return int(entry[1])
    finally:
        with _quiet():
            await admin.close()
    return None


@dataclass(frozen=True)
class Drift:
    topic: str
    setting: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.setting} is {self.actual}, the contract says {self.expected}"


@dataclass
class TopicsReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    replication_factor: int = 1

    def lines(self) -> list[str]:
        out = [f"created  {name}" for name in self.created]
        out += [f"ok       {name}" for name in self.existing if not any(d.topic == name for d in self.drift)]
        out += [f"DRIFT    {d}" for d in self.drift]
        return out


async def ensure_topics(
    kafka: KafkaTarget,
    *,
    prefix: str = "",
    replication_factor: int | None = None,
    specs: Iterable[TopicSpec] = TOPICS,
) -> TopicsReport:
    """Create every missing topic of ``specs``; compare existing ones with their contract.

    Drift is reported, never "fixed": partitions cannot shrink and a cleanup
    policy change can delete data, so an operator decides.
    """
    specs = list(specs)
    admin = await start_admin(kafka)
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        rf = replication_factor or min(3, brokers)
        report = TopicsReport(replication_factor=rf)
        present = set(await admin.list_topics())
        missing = [s for s in specs if topic_name(s, prefix) not in present]
        if missing:
            new = [
                NewTopic(
                    name=topic_name(s, prefix),
                    num_partitions=s.partitions,
                    replication_factor=rf,
                    topic_configs=s.configs(),
                )
                for s in missing
            ]
            response = await admin.create_topics(new)
            raced: set[str] = set()
            for name, code, *rest in response.topic_errors:
                if code == TopicAlreadyExistsError.errno:
                    raced.add(name)  # created meanwhile by someone else: checked for drift below
                elif code != 0:
                    message = rest[0] if rest and rest[0] else f"error code {code}"
                    raise TopicsError(f"creating topic {name} failed: {message}")
            missing = [s for s in missing if topic_name(s, prefix) not in raced]
            report.created = [topic_name(s, prefix) for s in missing]
        await _wait_for_metadata(admin, [topic_name(s, prefix) for s in specs])
        existing = [s for s in specs if s not in missing]
        report.existing = [topic_name(s, prefix) for s in existing]
        report.drift = await describe_drift(admin, existing, prefix)
        return report
    finally:
        await admin.close()


async def _wait_for_metadata(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 15.0) -> None:
    """Wait until the broker's metadata shows every topic with its partitions.

    Right after a create, a metadata answer may still say "unknown topic" or
    list no partitions; comparing then would report false drift.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        metas = await admin.describe_topics(names)
        if all(m["error_code"] == 0 and m["partitions"] for m in metas):
            return
        if asyncio.get_running_loop().time() > deadline:
            bad = [m["topic"] for m in metas if m["error_code"] != 0 or not m["partitions"]]
            raise TopicsError(f"topics not visible in the cluster's metadata after {timeout_s:.0f}s: {bad}")
        await asyncio.sleep(0.2)


async def describe_drift(admin: AIOKafkaAdminClient, specs: list[TopicSpec], prefix: str) -> list[Drift]:
    if not specs:
        return []
    names = [topic_name(s, prefix) for s in specs]
    drift: list[Drift] = []
    for meta in await admin.describe_topics(names):
        spec = specs[names.index(meta["topic"])]
        actual = len(meta["partitions"])
        if actual != spec.partitions:
            drift.append(Drift(meta["topic"], "partitions", str(spec.partitions), str(actual)))
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    for response in await admin.describe_configs(resources):
        for _err, _msg, _type, name, entries in response.resources:
            spec = specs[names.index(name)]
            actual_cfg = {e[0]: e[1] for e in entries}
            for key, want in spec.configs().items():
                have = actual_cfg.get(key)
                if have != want:
                    drift.append(Drift(name, key, want, str(have)))
    return sorted(drift, key=lambda d: (d.topic, d.setting))
