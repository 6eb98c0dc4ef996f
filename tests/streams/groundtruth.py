"""An independent, deliberately simple implementation of the flag table (docs/streams.md, Flag rules).

It shares no code with ``streams``: it reads the generated events, keeps every
distinct event per message, and computes flags and sums the obvious way. The
tests compare the worker's answers with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from mailpulse.topics.events import EmailEvent

COUNTS = (
    "sent",
    "delivered",
    "bounced",
    "hard_bounced",
    "soft_bounced",
    "opened",
    "clicked",
    "complained",
    "unsubscribed",
    "replied",
    "failed",
    "deferred",
    "suppressed",
    "opens_total",
    "clicks_total",
)


def message_flags(events: list[EmailEvent]) -> dict[str, int]:
    distinct = {e.event_id: e for e in events}.values()
    types = {e.type.value for e in distinct}
    kinds = {e.bounce.kind.value for e in distinct if e.type.value == "bounced" and e.bounce}
    no_delivery_reports = any(e.attributes.get("reports_delivery") is False for e in distinct)
    sent = bool(
        types
        & {"sent", "delivered", "deferred", "opened", "clicked", "bounced", "complained", "unsubscribed", "replied"}
    )
    bounced = "bounced" in types
    if no_delivery_reports:
        delivered = sent and not bounced
    else:
        delivered = (
            bool(types & {"delivered", "opened", "clicked", "complained", "unsubscribed", "replied"}) and not bounced
        )
    opens = [e for e in distinct if e.type.value == "opened"]
    clicks = [e for e in distinct if e.type.value == "clicked"]
    counter = max([e.attributes.get("opens_counter", 0) for e in opens] or [0])
    f = {
        "sent": sent,
        "delivered": delivered,
        "bounced": bounced,
        "hard_bounced": "hard" in kinds,
        "soft_bounced": "soft" in kinds and "hard" not in kinds,
        "opened": "opened" in types or "clicked" in types,
        "opens_total": max(len(opens), counter),
        "clicks_total": len(clicks),
    }
    for t in ("clicked", "complained", "unsubscribed", "replied", "failed", "deferred", "suppressed"):
        f[t] = t in types
    return {k: int(v) for k, v in f.items()}


def ratio(a: int, b: int) -> float | None:
    return None if b == 0 else a / b


def expected_rates(c: dict[str, int]) -> dict[str, float | None]:
    return {
        "delivery_rate": ratio(c["delivered"], c["sent"]),
        "bounce_rate": ratio(c["bounced"], c["sent"]),
        "open_rate": ratio(c["opened"], c["delivered"]),
        "click_rate": ratio(c["clicked"], c["delivered"]),
        "click_to_open_rate": ratio(c["clicked"], c["opened"]),
        "complaint_rate": ratio(c["complained"], c["delivered"]),
        "unsubscribe_rate": ratio(c["unsubscribed"], c["delivered"]),
    }


def ground_truth(events: Iterable[EmailEvent]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Expected campaign and contact answers (counts, rates, first/last event, status), by key."""
    by_message: dict[str, list[EmailEvent]] = defaultdict(list)
    for e in events:
        by_message[e.key].append(e)
    campaigns: dict[str, dict[str, Any]] = {}
    contacts: dict[str, dict[str, Any]] = {}
    for evs in by_message.values():
        flags = message_flags(evs)
        e0 = evs[0]
        campaign_ids = sorted({e.campaign_id for e in evs if e.campaign_id})
        contact_ids = sorted({e.contact_id for e in evs if e.contact_id})
        emails = sorted({e.email for e in evs if e.email})
        times = [e.occurred_at for e in evs]
        keys = []
        if campaign_ids:
            keys.append((campaigns, f"{e0.source}:{campaign_ids[0]}"))
        if contact_ids:
            keys.append((contacts, f"{e0.source}:{contact_ids[0]}"))
        elif emails:
            keys.append((contacts, f"{e0.source}:{emails[0]}"))
        for table, key in keys:
            agg = table.setdefault(key, {"counts": dict.fromkeys(COUNTS, 0), "first": None, "last": None, "events": []})
            for k, v in flags.items():
                agg["counts"][k] += v
            agg["first"] = min(times) if agg["first"] is None else min(agg["first"], min(times))
            agg["last"] = max(times) if agg["last"] is None else max(agg["last"], max(times))
            agg["events"].extend({e.event_id: e for e in evs}.values())
    for table in (campaigns, contacts):
        for agg in table.values():
            agg["rates"] = expected_rates(agg["counts"])
    for agg in contacts.values():
        agg["status"] = contact_status(agg["events"])
    return campaigns, contacts


def contact_status(events: list[EmailEvent]) -> str:
    """The latest of active (a delivery or engagement), bounced, complained, unsubscribed."""
    latest: dict[str, Any] = {}
    groups = {
        "active": {"delivered", "opened", "clicked", "replied"},
        "bounced": {"bounced"},
        "complained": {"complained"},
        "unsubscribed": {"unsubscribed"},
    }
    for status, types in groups.items():
        ts = [e.occurred_at for e in events if e.type.value in types]
        if ts:
            latest[status] = max(ts)
    if not latest:
        return "active"
    order = list(groups)
    return max(latest, key=lambda s: (latest[s], order.index(s)))
