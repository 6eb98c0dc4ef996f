"""Compare the worker's API answers with the ground truth."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailpulse.topics.events import format_timestamp
from tests.streams.fixtures import WorkerProcess


def ms(dt: datetime) -> str:
    # The worker keeps timestamps at millisecond precision.
    return format_timestamp(dt.replace(microsecond=dt.microsecond // 1000 * 1000))


def mismatches(worker: WorkerProcess, truth: dict[str, dict[str, Any]], kind: str) -> list[str]:
    """Every key whose answer differs from the truth (empty: all exact)."""
    bad = []
    for key, exp in truth.items():
        r = worker.get(f"/v1/{kind}/{key}")
        if r.status_code != 200:
            bad.append(f"{key}: HTTP {r.status_code} {r.text[:200]}")
            continue
        got = r.json()
        if got["counts"] != exp["counts"]:
            diff = {k: (got["counts"].get(k), v) for k, v in exp["counts"].items() if got["counts"].get(k) != v}
            bad.append(f"{key}: counts (got, expected) {diff}")
        elif got["rates"] != exp["rates"]:
            bad.append(f"{key}: rates {got['rates']} != {exp['rates']}")
        elif (got["first_event_at"], got["last_event_at"]) != (ms(exp["first"]), ms(exp["last"])):
            bad.append(
                f"{key}: first/last {got['first_event_at']},{got['last_event_at']} != {ms(exp['first'])},{ms(exp['last'])}"
            )
        elif kind == "contacts" and got["status"] != exp["status"]:
            bad.append(f"{key}: status {got['status']} != {exp['status']}")
    return bad


SENT_TYPES = {"sent", "delivered", "deferred", "opened", "clicked", "bounced", "complained", "unsubscribed", "replied"}


def expected_hourly_sent(events: list) -> dict[str, dict[str, int]]:
    """Campaign -> hour start -> messages first sent in that hour (independent of the worker's code)."""
    first_sent: dict[str, tuple[str, datetime]] = {}
    for e in events:
        if e.type.value in SENT_TYPES and e.campaign_id:
            prev = first_sent.get(e.key)
            if prev is None or e.occurred_at < prev[1]:
                first_sent[e.key] = (f"{e.source}:{e.campaign_id}", e.occurred_at)
    out: dict[str, dict[str, int]] = {}
    for key, at in first_sent.values():
        hour = at.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        out.setdefault(key, {}).setdefault(hour, 0)
        out[key][hour] += 1
    return out


def hourly_mismatches(worker: WorkerProcess, expected: dict[str, dict[str, int]]) -> list[str]:
    bad = []
    for key, hours in expected.items():
        windows = worker.get(f"/v1/campaigns/{key}/hourly", hours=48).json()["windows"]
        got = {w["start"]: w["counts"]["sent"] for w in windows if w["counts"]["sent"]}
        if got != hours:
            bad.append(f"{key}: hourly sent {got} != {hours}")
    return bad
