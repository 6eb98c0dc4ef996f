"""SmarterSends against the real simulator and the real broker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from mailpulse.topics.contracts import CALENDAR, CAMPAIGNS, USAGE

pytestmark = pytest.mark.integration


def latest(records):  # compacted topics: the last value per key counts
    out = {}
    for r in records:
        out[r.key] = r.value
    return {k: v for k, v in out.items() if v is not None}


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_campaigns_usage_and_calendar_are_published_and_follow_changes(running_source, method):
    # The other method answers 405: the poller must switch.
    async with running_source(
        "smartersends", seed=9, size=1500, settings={"smartersends_export_method": method}
    ) as src:
        sim, runner = src.sim, src.runner
        await runner.run_once("poll")
        window_start = sim.now - timedelta(days=7)
        sent = [
            c
            for c in sim.snapshot("smartersends", kind="campaigns")
            if c["sent_mailing_id"] and c["send_time"] and c["send_time"] >= window_start.strftime("%Y-%m-%d %H:%M:%S")
        ]
        campaigns = latest(await src.read(CAMPAIGNS))
        assert sent and set(campaigns) == {f"acme-smartersends:{c['sent_mailing_id']}" for c in sent}
        for c in sent:
            got = campaigns[f"acme-smartersends:{c['sent_mailing_id']}"]
            assert (got["name"], got["subject"], got["attributes"]["status"]) == (c["name"], c["subject"], c["status"])

        calendar = sim.snapshot("smartersends", kind="calendar")
        entries = latest(await src.read(CALENDAR))
        assert set(entries) == {f"acme-smartersends:{e['id']}" for e in calendar}

        report = sim.snapshot("smartersends", kind="conversations")
        usage = list(latest(await src.read(USAGE)).values())
        assert len(usage) == 1 and usage[0]["metrics"] == report["metrics"]
        total = REGISTRY.get_sample_value(
            "mailpulse_smartersends_conversations", {"source": "acme-smartersends", "metric": "total_conversations"}
        )
        assert total == report["metrics"]["total_conversations"]

        # Nothing changed: nothing republished.
        again = await runner.run_once("poll")
        assert sum(r.meta for r in again.values()) == 0

        # A week later: campaigns sent, calendar entries edited and deleted; only those are republished.
        sim.advance(timedelta(days=3))
        await runner.run_once("poll")
        calendar2 = sim.snapshot("smartersends", kind="calendar")
        entries2 = latest(await src.read(CALENDAR))
        assert set(entries2) == {f"acme-smartersends:{e['id']}" for e in calendar2}
        by_id = {f"acme-smartersends:{e['id']}": e for e in calendar2}
        assert all(v["name"] == by_id[k]["name"] for k, v in entries2.items())


async def test_an_export_reply_without_a_url_is_a_clear_error_and_the_next_poll_recovers(running_source):
    from mailpulse.connectors.errors import RetriableAPIError

    async with running_source("smartersends", seed=10, size=800, streams=("campaigns",)) as src:
        sim, runner = src.sim, src.runner
        sim.faults.script("smartersends", ["no-url"])
        with pytest.raises(RetriableAPIError, match="no download URL") as info:
            await runner.run_once("poll")
        assert "no temporary URL" in str(info.value)  # the provider's own message is kept
        assert latest(await src.read(CAMPAIGNS)) == {}
        await runner.run_once("poll")
        assert latest(await src.read(CAMPAIGNS))
