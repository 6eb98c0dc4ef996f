"""SuperSend against the real simulator and the real broker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from mailpulse.topics.contracts import CAMPAIGNS, EVENTS
from tests.connectors.conftest import facts

pytestmark = pytest.mark.integration

_OWN = {
    "sent": "sent",
    "open": "opened",
    "click": "clicked",
    "reply": "replied",
    "bounce": "bounced",
    "unsubscribe": "unsubscribed",
    "scheduled": "queued",
}
_FLAGS = {"opened": "opened", "clicked": "clicked", "replied": "replied", "bounced": "bounced"}


def expected_facts(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Ground truth from the doc: a row's type is a fact, and so is each flag it has set."""
    out = set()
    for r in rows:
        if r["channel"] != "email":
            continue
        message = r["email_id"] or r["id"]
        out.add((message, _OWN[r["type"]]))
        out.update((message, fact) for flag, fact in _FLAGS.items() if r[flag])
        if r["unsubscribes"]:
            out.add((message, "unsubscribed"))
    return out


async def test_full_poll_exact_then_nothing_new_then_reconciled_mutations(running_source):
    async with running_source("supersend", seed=11, size=1500) as src:
        sim, runner = src.sim, src.runner
        truth = expected_facts(sim.snapshot("supersend"))
        first = await runner.run_once("poll")
        events = await src.read(EVENTS)
        got = facts(events)
        assert len(got) == len(set(got)), "a fact was published twice"
        assert set(got) == truth
        assert first["events"].events == len(truth)
        assert all(e.value["attributes"]["reports_delivery"] is False for e in events)
        assert all("opens_counter" in e.value["attributes"] for e in events)
        campaigns = {c["id"]: c["name"] for c in sim.snapshot("supersend", kind="campaigns")}
        published = {r.key.split(":", 1)[1]: r.value["name"] for r in await src.read(CAMPAIGNS)}
        assert published and all(campaigns[k] == v for k, v in published.items())

        assert (await runner.run_once("poll"))["events"].events == 0

        # Flags (opened, clicked, bounced) are set on old rows: only reconciliation re-reads them.
        sim.advance(timedelta(hours=8))
        truth |= expected_facts(sim.snapshot("supersend"))
        await runner.run_once("reconcile")
        got = facts(await src.read(EVENTS))
        assert len(got) == len(set(got))
        assert set(got) == truth


async def test_rows_arriving_during_a_pass_shift_no_offsets_and_are_read_next_time(running_source):
    async with running_source("supersend", seed=12, size=1500) as src:
        sim, runner = src.sim, src.runner
        before = expected_facts(sim.snapshot("supersend"))
        sim.faults.set("supersend", slow_ms=20)

        async def advance_mid_pass() -> None:
            # Newest rows come first: rows created now would push every later page down by their number.
            while sum(1 for r in sim.request_log if r[0] == "supersend") < 3:
                await asyncio.sleep(0.005)
            sim.advance(timedelta(hours=3))

        mover = asyncio.create_task(advance_mid_pass())
        try:
            await runner.run_once("poll")
            await mover
            got = facts(await src.read(EVENTS))
            assert len(got) == len(set(got))
            assert before <= set(got), f"{len(before - set(got))} facts lost to shifted offsets"
            sim.faults.set("supersend", slow_ms=0)
            await runner.run_once("reconcile")
            got = facts(await src.read(EVENTS))
            assert len(got) == len(set(got))
            assert set(got) == before | expected_facts(sim.snapshot("supersend"))
        finally:
            mover.cancel()


async def test_a_malformed_page_is_retried_then_reported_and_the_cursor_stays(running_source):
    from mailpulse.connectors.errors import MalformedPage
    from mailpulse.topics.contracts import CHECKPOINTS

    async with running_source("supersend", seed=13, size=300) as src:
        sim, runner = src.sim, src.runner
        # One more bad answer than the retries allow, on the second page.
        sim.faults.script(
            "supersend",
            [
                "ok",
                "invalid-json",
                "wrong-shape",
                "malformed",
                "invalid-json",
                "wrong-shape",
                "malformed",
                "invalid-json",
            ],
        )
        with pytest.raises(MalformedPage, match="malformed page") as info:
            await runner.run_once("poll")
        assert "acme-supersend/events" in str(info.value) and "sim-supersend-key" not in str(info.value)
        assert runner.runners[0].cursor is None
        assert [r for r in await src.read(CHECKPOINTS)] == []
        # The next pass reads the whole window again and publishes each fact once.
        await runner.run_once("poll")
        got = facts(await src.read(EVENTS))
        assert len(got) == len(set(got)) and set(got) == expected_facts(sim.snapshot("supersend"))
