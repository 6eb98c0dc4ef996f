"""SmartCQ against the real simulator and the real broker."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from mailpulse.simulators import Simulator
from mailpulse.topics.contracts import CHECKPOINTS, CONTACTS, EVENTS
from tests.connectors.conftest import facts

pytestmark = pytest.mark.integration

_TIMED = {"sentAt": "sent", "deliveredAt": "delivered", "openedAt": "opened", "clickedAt": "clicked"}
_STATUS = {
    "queued": "queued",
    "bounced": "bounced",
    "complained": "complained",
    "suppressed": "suppressed",
    "failed": "failed",
    "delayed": "deferred",
}


def expected_facts(sends: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Ground truth, written from the API doc: one fact per timestamp set, plus the status when it is a fact."""
    out = set()
    for s in sends:
        for field, fact in _TIMED.items():
            if s[field] is not None:
                out.add((s["id"], fact))
        if s["status"] in _STATUS:
            out.add((s["id"], _STATUS[s["status"]]))
    return out


async def test_full_poll_publishes_every_fact_once_then_nothing_then_mutations(running_source):
    async with running_source("smartcq", seed=7, size=2000) as src:
        sim, runner = src.sim, src.runner
        sends = sim.snapshot("smartcq")
        first = await runner.run_once("poll")
        truth = expected_facts(sends)
        events = await src.read(EVENTS)
        got = facts(events)
        assert len(got) == len(set(got)), "a fact was published twice"
        assert set(got) == truth
        assert first["sends"].events == len(truth)
        # Every event is keyed {source}:{message_id}.
        assert all(r.key == f"acme-smartcq:{r.value['message_id']}" for r in events)

        # The giant instant (> 500 sends at one createdAt) was read whole, through filters.
        by_instant = Counter(s["createdAt"] for s in sends)
        instant, size = by_instant.most_common(1)[0]
        assert size > 500
        ids_at = {s["id"] for s in sends if s["createdAt"] == instant}
        assert ids_at <= {m for m, _ in got}
        assert any("status" in q and "campaignId" not in q for (_, _, _, q, _) in _log(sim))

        # A second poll publishes nothing new.
        second = await runner.run_once("poll")
        assert second["sends"].events == 0
        assert len(await src.read(EVENTS)) == len(events)

        # Records mutate (opened, clicked, bounced) without a new createdAt: reconciliation brings the new facts.
        sim.advance(timedelta(hours=6))
        truth |= expected_facts(sim.snapshot("smartcq"))
        await runner.run_once("reconcile")
        got = facts(await src.read(EVENTS))
        assert len(got) == len(set(got))
        assert set(got) == truth

        # A restarted poller rebuilds its index from the topic and republishes nothing.
        again = await src.restart()
        result = await again.run_once("reconcile")
        assert result["sends"].events == 0
        assert result["sends"].duplicates > 0
        checkpoints = await src.read(CHECKPOINTS)
        assert {r.key for r in checkpoints} == {"acme-smartcq/sends", "acme-smartcq/contacts"}


def _log(sim: Simulator) -> list[Any]:
    return [r for r in sim.request_log if r[0] == "smartcq" and r[2] == "/api/v1/sends"]


async def test_contacts_are_published_once_and_again_only_when_they_change(running_source):
    async with running_source("smartcq", seed=3, size=2000, streams=("contacts",)) as src:
        sim, runner = src.sim, src.runner
        contacts = sim.snapshot("smartcq", kind="contacts", include_archived=True)
        await runner.run_once("reconcile")
        records = await src.read(CONTACTS)
        assert sorted(r.key for r in records) == sorted(f"acme-smartcq:{c['id']}" for c in contacts)
        again = await runner.run_once("reconcile")
        assert again["contacts"].meta == 0
        before = {c["id"]: c for c in contacts}
        sim.advance(timedelta(days=2))
        after = sim.snapshot("smartcq", kind="contacts", include_archived=True)
        changed = {c["id"] for c in after if before.get(c["id"]) != c}
        assert changed, "the simulator should change some contacts in two days"
        third = await runner.run_once("reconcile")
        records2 = await src.read(CONTACTS)
        # Exactly the changed (or new) contacts were republished.
        counts = Counter(r.key for r in records2)
        republished = {k.split(":", 1)[1] for k, n in counts.items() if n > 1} | {
            c["id"] for c in after if c["id"] not in before
        }
        assert republished == changed
        assert third["contacts"].meta == len(changed)
