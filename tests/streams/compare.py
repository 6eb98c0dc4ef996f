"""Compare the worker's API answers with the ground truth."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.streams.fixtures import WorkerProcess
from topics.events import format_timestamp


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
            bad.append(f"{key}: first/last {got['first_event_at']},{got['last_event_at']} != {ms(exp['first'])},{ms(exp['last'])}")
        elif kind == "contacts" and got["status"] != exp["status"]:
            bad.append(f"{key}: status {got['status']} != {exp['status']}")
    return bad
