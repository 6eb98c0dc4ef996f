"""A real ``mailpulse worker`` against the real broker: answers equal an independent ground truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.eventgen import generate_events
from tests.streams.compare import mismatches
from tests.streams.fixtures import WorkerProcess, publish, wait_until
from tests.streams.groundtruth import ground_truth
from topics.contracts import EVENTS, topic_name

pytestmark = pytest.mark.integration


async def test_one_worker_answers_every_campaign_and_contact_exactly_under_duplicates_and_reordering(
    kafka, topic_prefix: str, tmp_path: Path
) -> None:
    gen = generate_events(600, seed=11, campaigns_per_source=4)
    assert gen.duplicates > 50
    campaigns, contacts = ground_truth(gen.events)
    await publish(kafka.bootstrap, topic_name(EVENTS, topic_prefix), gen.events)
    w = WorkerProcess(tmp_path, kafka.bootstrap, topic_prefix, "w1").start()
    try:
        await wait_until(lambda: w.get("/readyz").status_code == 200, 90, "worker ready", [w])
        await wait_until(lambda: not mismatches(w, campaigns, "campaigns"), 60, "exact campaign answers", [w])
        assert mismatches(w, campaigns, "campaigns") == []
        assert mismatches(w, contacts, "contacts") == []
    finally:
        w.stop()
