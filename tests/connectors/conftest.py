"""Helpers of the connector tests: configs pointed at simulators, topic readers, ground truth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import pytest

from mailpulse.config import Config
from mailpulse.connectors.http import RetryPolicy
from mailpulse.connectors.runner import SourceRunner
from mailpulse.connectors.state import scan_topic
from mailpulse.simulators import Simulator, SimulatorConfig, serve_simulators
from mailpulse.topics.contracts import TopicSpec, topic_name

#: Tests never wait long on a retry.
FAST_RETRY = RetryPolicy(max_retries=6, base_delay=0.01, max_delay=0.05, max_retry_after=1.0)

SOURCE_KEYS: dict[str, dict[str, Any]] = {
    "smartcq": {"api_key": "sim-smartcq-key"},
    "smtpeter": {"access_token": "sim-smtpeter-token", "selectors": [{"tags": ["newsletter"]}, {"template": 42}]},
    "supersend": {"api_key": "sim-supersend-key"},
    "smartersends": {"api_key": "sim-smartersends-key"},
}


def make_config(
    bootstrap: str, prefix: str, urls: dict[str, str], providers: tuple[str, ...], **source_overrides: Any
) -> Config:
    sources = []
    for provider in providers:
        entry = {"name": f"acme-{provider}", "provider": provider, "base_url": urls[provider], **SOURCE_KEYS[provider]}
        entry.update(source_overrides.get(provider, {}))
        sources.append(entry)
    return Config.model_validate(
        {
            "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix},
            "connect": {"metrics_port": 0, "batch_size": 2000},
            "sources": sources,
        }
    )


def runner_for(config: Config, provider: str, sim: Any, **kw: Any) -> SourceRunner:
    return SourceRunner(
        config, config.source(f"acme-{provider}"), clock=lambda: sim.now, retry=kw.pop("retry", FAST_RETRY), **kw
    )


@dataclass(frozen=True)
class Record:
    key: str
    value: dict[str, Any] | None


async def read_topic(
    bootstrap: str, prefix: str, spec: TopicSpec, *, isolation: str = "read_committed"
) -> list[Record]:
    """Every record of the topic written so far (read committed by default), in partition order."""
    out: list[Record] = []

    def on_record(key: bytes | None, value: bytes | None) -> None:
        out.append(Record((key or b"").decode(), None if value is None else orjson.loads(value)))

    await scan_topic(bootstrap, topic_name(spec, prefix), on_record, isolation_level=isolation)
    return out


def facts(records: list[Record]) -> list[tuple[str, str]]:
    """(message_id, type) of every event record."""
    return [(r.value["message_id"], r.value["type"]) for r in records if r.value is not None]


@dataclass
class RunningSource:
    """One source's poller, started against its simulator and the session's broker."""

    sim: Simulator
    config: Config
    runner: SourceRunner
    bootstrap: str
    prefix: str
    provider: str
    streams: tuple[str, ...] | None

    async def read(self, spec: TopicSpec) -> list[Record]:
        return await read_topic(self.bootstrap, self.prefix, spec)

    async def restart(self) -> SourceRunner:
        """Close the poller and start a new one, as a restarted process would (state read back from Kafka)."""
        await self.runner.close()
        self.runner = runner_for(self.config, self.provider, self.sim, streams=self.streams)
        await self.runner.start()
        return self.runner


RunningSourceFactory = Callable[..., Any]


@pytest.fixture
def running_source(kafka: Any, topic_prefix: str) -> RunningSourceFactory:
    """``async with running_source(provider, seed, size) as src:`` a started ``SourceRunner`` (``src.runner``)
    polling a simulator of ``provider`` (``src.sim``); closed on the way out.

    ``streams`` limits the source to those streams; ``settings`` sets simulator settings before it serves.
    """

    @asynccontextmanager
    async def start(
        provider: str,
        seed: int,
        size: int,
        *,
        streams: tuple[str, ...] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> AsyncIterator[RunningSource]:
        sim = Simulator(SimulatorConfig(seed=seed, size=size))
        for key, value in (settings or {}).items():
            setattr(sim.settings, key, value)
        async with serve_simulators(sim, providers=(provider,)) as urls:
            config = make_config(kafka.bootstrap, topic_prefix, urls, (provider,))
            src = RunningSource(
                sim,
                config,
                runner_for(config, provider, sim, streams=streams),
                kafka.bootstrap,
                topic_prefix,
                provider,
                streams,
            )
            await src.runner.start()
            try:
                yield src
            finally:
                await src.runner.close()

    return start


@pytest.fixture
def fast_days() -> Iterator[timedelta]:
    yield timedelta(days=7)
