"""Faults, all four providers at once in one `connect` loop: storms, bad records, a revoked key."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from mailpulse.connectors.runner import run_connect
from mailpulse.simulators import Simulator, SimulatorConfig, serve_simulators
from mailpulse.topics.contracts import DLQ, EVENTS
from tests.connectors.conftest import FAST_RETRY, facts, make_config, read_topic
from tests.connectors.providers.test_smartcq_integration import expected_facts as smartcq_facts
from tests.connectors.providers.test_supersend_integration import expected_facts as supersend_facts

pytestmark = pytest.mark.integration

ALL = ("smartcq", "smtpeter", "supersend", "smartersends")


async def test_storms_bad_records_and_a_revoked_key_stop_only_what_they_must(kafka, topic_prefix):
    sim = Simulator(SimulatorConfig(seed=21, size=1000))
    sim.faults.set("smartcq", bad_record_rate=0.01)
    sim.faults.script("supersend", ["429:1", "503", "500", "429", "502", "ok", "504", "503", "500"])
    sim.faults.script("smtpeter", ["invalid-json", "wrong-shape", "malformed"])
    sim.faults.revoke("smartersends")
    fast = {p: {"poll_interval": "0.5s", "reconcile_interval": "1h"} for p in ALL}
    async with serve_simulators(sim) as urls:
        config = make_config(kafka.bootstrap, topic_prefix, urls, ALL, **fast)
        stop = asyncio.Event()
        task = asyncio.create_task(run_connect(config, stop, clock=lambda: sim.now, retry=FAST_RETRY))
        try:
            smartcq_truth = {
                f
                for f in smartcq_facts(
                    [
                        s
                        for s in sim.snapshot("smartcq")
                        if "id" in s and s["status"] != "teletrasportato" and "/" not in s["createdAt"]
                    ]
                )
            }
            supersend_truth = supersend_facts(sim.snapshot("supersend"))
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                got = set(facts(await read_topic(kafka.bootstrap, topic_prefix, EVENTS)))
                if smartcq_truth <= got and supersend_truth <= got:
                    break
                await asyncio.sleep(1)
            events = await read_topic(kafka.bootstrap, topic_prefix, EVENTS)
        finally:
            stop.set()
            code = await asyncio.wait_for(task, 60)

    by_source: dict[str, list] = {}
    for r in events:
        by_source.setdefault(r.value["source"], []).append(r)
    ids = [r.value["event_id"] for r in events]
    assert len(ids) == len(set(ids)), "duplicates on the events topic"
    pairs = facts([r for r in events if r.value["provider"] != "smtpeter"])  # SMTPeter: one message opens many times
    assert len(pairs) == len(set(pairs)), "a fact published twice"
    # The storm was survived: every SuperSend fact arrived.
    assert {f for f in pairs if f in supersend_truth} == supersend_truth
    assert (
        REGISTRY.get_sample_value(
            "mailpulse_connector_retries_total",
            {"provider": "supersend", "source": "acme-supersend", "stream": "events", "reason": "503"},
        )
        >= 1
    )
    # Malformed pages were retried, then read.
    assert (
        REGISTRY.get_sample_value(
            "mailpulse_connector_retries_total",
            {"provider": "smtpeter", "source": "acme-smtpeter", "stream": "events", "reason": "malformed"},
        )
        >= 3
    )
    # Bad records went to the DLQ with their reason and payload; every good one was published.
    assert {f for f in pairs if f in smartcq_truth} == smartcq_truth
    dlq = [r.value for r in await read_topic(kafka.bootstrap, topic_prefix, DLQ) if r.value["source"] == "acme-smartcq"]
    bad = [b for b in sim.bad_records("smartcq") if b["kind"] == "sends"]
    assert bad
    assert sorted(map(str, (d["raw"] for d in dlq if d["stream"] == "sends"))) == sorted(
        map(str, (b["payload"] for b in bad))
    )
    reasons = {d["reason"].split(":")[0] for d in dlq if d["stream"] == "sends"}
    assert reasons <= {"id", "createdAt", "status"} and reasons
    # The revoked key stopped SmarterSends only, loudly; the others kept publishing.
    assert code == 1
    assert (
        REGISTRY.get_sample_value(
            "mailpulse_connector_source_up", {"provider": "smartersends", "source": "acme-smartersends"}
        )
        == 0
    )
    assert (
        REGISTRY.get_sample_value(
            "mailpulse_connector_auth_failures_total", {"provider": "smartersends", "source": "acme-smartersends"}
        )
        >= 1
    )
    assert (
        REGISTRY.get_sample_value("mailpulse_connector_source_up", {"provider": "smtpeter", "source": "acme-smtpeter"})
        == 1
    )
    assert set(by_source) == {"acme-smartcq", "acme-smtpeter", "acme-supersend"}
