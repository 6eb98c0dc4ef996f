"""SMTPeter against the real simulator and the real broker."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import orjson
import pytest

from mailpulse.simulators import Simulator
from mailpulse.topics.contracts import EVENTS
from mailpulse.topics.events import format_timestamp, parse_timestamp

pytestmark = pytest.mark.integration

_TYPES = {
    "attempt": "sent",
    "delivery": "delivered",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
    "failure": "bounced",
    "response": "replied",
    "abuse": "complained",
}


def expected(sim: Simulator, since: str) -> Counter[tuple[str, str, str, str]]:
    """(message, type, time, campaign) of every event the two selectors return since ``since``.

    An event both selectors return is one fact (its content is the same), published with the first selector's campaign.
    """
    chosen: Counter[bytes] = Counter()
    campaign_of: dict[bytes, str] = {}
    for selector, campaign in (({"tags": ["newsletter"]}, "tags:newsletter"), ({"template": 42}, "template:42")):
        copies = Counter(
            orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in sim.snapshot("smtpeter", start=since, **selector)
        )
        for content, n in copies.items():
            campaign_of.setdefault(content, campaign)
            chosen[content] = max(chosen[content], n)
    out: Counter[tuple[str, str, str, str]] = Counter()
    for content, n in chosen.items():
        e = orjson.loads(content)
        when = format_timestamp(parse_timestamp(e["data"]["time"]))
        out[(e["data"]["id"], _TYPES[e["event"]], when, campaign_of[content])] += n
    return out


def published(records: list[Any]) -> Counter[tuple[str, str, str, str]]:
    return Counter(
        (r.value["message_id"], r.value["type"], r.value["occurred_at"], r.value["campaign_id"]) for r in records
    )


async def test_day_windows_publish_every_event_once_and_rereads_publish_nothing(running_source):
    async with running_source("smtpeter", seed=5, size=1500) as src:
        sim, runner = src.sim, src.runner
        since = (sim.now - timedelta(days=7)).date().isoformat()
        truth = expected(sim, since)
        assert sum(truth.values()) > 1000
        await runner.run_once("poll")
        events = await src.read(EVENTS)
        assert published(events) == truth
        assert len({e.value["event_id"] for e in events}) == len(events)
        # Identical events (a pixel fetched twice in one second) are two facts, not one.
        assert any(n > 1 for n in truth.values())
        failures = [e.value for e in events if e.value["attributes"].get("smtpeter_event") == "failure"]
        assert failures and all(f["bounce"]["kind"] in ("hard", "soft") for f in failures)
        # The access token never reaches the request log unmasked (the simulator masks it; we check our side too).
        assert all(q.get("access_token") in (None, "***") for (_, _, _, q, _) in [r[:5] for r in sim.request_log])

        # Re-reading today's (and every) day publishes nothing new.
        assert (await runner.run_once("poll"))["events"].events == 0
        assert (await runner.run_once("reconcile"))["events"].events == 0

        # The clock moves on: new events for today and the next days arrive, each once.
        sim.advance(timedelta(hours=30))
        await runner.run_once("poll")
        events = await src.read(EVENTS)
        assert published(events) == expected(sim, since)
