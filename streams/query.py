"""Pure query functions behind the HTTP API: answers from stage-2 values, and parameter parsing.

The JSON built here is also the value of the stats topics
(``topics/schemas/campaign-stats.v1.json``, ``contact-stats.v1.json``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mailpulse.streams.aggregates import HOUR_MS, HOURLY_RETENTION_MS, Combined, Stage2Value, combine
from mailpulse.streams.reducers import COUNT_FIELDS, FLAG_FIELDS

__all__ = [
    "QueryError",
    "campaign_answer",
    "contact_answer",
    "hourly_answer",
    "MAILBOX_FLAGS",
    "mailbox_items",
    "mailbox_rates",
    "merge_mailbox_lists",
    "merge_lists",
    "parse_hours",
    "parse_key",
    "parse_limit",
    "parse_order",
    "parse_source",
    "rates",
]

MAX_HOURS = HOURLY_RETENTION_MS // HOUR_MS
DEFAULT_HOURS = 24
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
ORDERS = ("last_event_at", "-last_event_at")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*:.+$")


class QueryError(ValueError):
    """A request parameter is malformed; ``parameter`` names it (HTTP 400)."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter
        self.problem = problem


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def rates(counts: Mapping[str, int]) -> dict[str, float | None]:
    """The API's rates (docs/streams.md, Query API); ``None`` when the denominator is 0."""
    sent, delivered, opened = counts["sent"], counts["delivered"], counts["opened"]
    return {
        "delivery_rate": _ratio(delivered, sent),
        "bounce_rate": _ratio(counts["bounced"], sent),
        "open_rate": _ratio(opened, delivered),
        "click_rate": _ratio(counts["clicked"], delivered),
        "click_to_open_rate": _ratio(counts["clicked"], opened),
        "complaint_rate": _ratio(counts["complained"], delivered),
        "unsubscribe_rate": _ratio(counts["unsubscribed"], delivered),
    }


def _ts(ms: int | None) -> str | None:
    """Epoch ms -> RFC 3339 UTC, the same text as ``mailpulse.topics.events.format_timestamp`` (ms precision), faster."""
    if ms is None:
        return None
    secs, milli = divmod(ms, 1000)
    t = time.gmtime(secs)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{milli:03d}Z"


def _split(key: str) -> tuple[str, str]:
    source, _, rest = key.partition(":")
    return source, rest


def _base(key: str, c: Combined) -> dict[str, Any]:
    counts = dict(zip(COUNT_FIELDS, c.counts, strict=True))
    return {
        "key": key,
        "source": _split(key)[0],
        "provider": c.provider,
        "messages": c.messages,
        "counts": counts,
        "rates": rates(counts),
        "first_event_at": _ts(c.first_at),
        "last_event_at": _ts(c.last_at),
    }


def campaign_answer(key: str, value: Stage2Value | None, now_ms: int) -> dict[str, Any] | None:
    """``GET /v1/campaigns/{key}``; None when the campaign is unknown."""
    c = combine(value, now_ms)
    if c is None:
        return None
    out = _base(key, c)
    out["campaign_id"] = _split(key)[1]
    meta = (value or {}).get("meta")
    out["metadata"] = (
        None
        if meta is None
        else {
            "name": meta.get("name"),
            "subject": meta.get("subject"),
            "send_time": meta.get("send_time"),
        }
    )
    return out


def contact_answer(key: str, value: Stage2Value | None, now_ms: int) -> dict[str, Any] | None:
    """``GET /v1/contacts/{key}``; None when the contact is unknown."""
    c = combine(value, now_ms, hourly=False)
    if c is None:
        return None
    out = _base(key, c)
    out["contact"] = _split(key)[1]
    out["status"] = c.status
    out["first_activity_at"] = out["first_event_at"]
    out["last_activity_at"] = out["last_event_at"]
    out["last_opened_at"] = _ts(c.last_opened_at)
    out["last_clicked_at"] = _ts(c.last_clicked_at)
    return out


def hourly_answer(key: str, value: Stage2Value | None, hours: int, now_ms: int) -> dict[str, Any] | None:
    """``GET /v1/campaigns/{key}/hourly``: the last ``hours`` wall-clock hours, newest first."""
    c = combine(value, now_ms)
    if c is None:
        return None
    current = now_ms - now_ms % HOUR_MS
    windows = []
    for i in range(hours):
        start = current - i * HOUR_MS
        row = c.hourly.get(start) or [0] * len(FLAG_FIELDS)
        counts = dict(zip(FLAG_FIELDS, row, strict=True))
        windows.append({"start": _ts(start), "end": _ts(start + HOUR_MS), "counts": counts, "rates": rates(counts)})
    return {"key": key, "hours": hours, "windows": windows}


#: The flags of the mailbox-provider answers (and metrics): what deliverability teams watch.
MAILBOX_FLAGS = (
    "sent",
    "delivered",
    "bounced",
    "hard_bounced",
    "soft_bounced",
    "deferred",
    "complained",
    "opened",
    "clicked",
)
_MAILBOX_IDX = tuple(FLAG_FIELDS.index(f) for f in MAILBOX_FLAGS)


def mailbox_rates(counts: Mapping[str, int]) -> dict[str, float | None]:
    sent, delivered = counts["sent"], counts["delivered"]
    return {
        "delivery_rate": _ratio(delivered, sent),
        "bounce_rate": _ratio(counts["bounced"], sent),
        "deferral_rate": _ratio(counts["deferred"], sent),
        "complaint_rate": _ratio(counts["complained"], delivered),
        "open_rate": _ratio(counts["opened"], delivered),
        "click_rate": _ratio(counts["clicked"], delivered),
    }


def _figures(counts: Mapping[str, int]) -> dict[str, Any]:
    return {"counts": dict(counts), "rates": mailbox_rates(counts)}


def mailbox_items(
    totals: Mapping[tuple[str, ...], Any],
    windows: Mapping[tuple[str, ...], Mapping[str, Sequence[int]]],
    source: str | None,
) -> list[dict[str, Any]]:
    """One item per (provider, source, mailbox provider): all-time and the current and previous hourly windows.

    ``totals`` maps a group to its all-time counts (COUNT_FIELDS order), ``windows`` to its
    FLAG_FIELDS rows by window name.
    """
    items = []
    for group in sorted(totals):
        provider, src, mailbox = group
        if source is not None and src != source:
            continue
        counts = totals[group]
        item: dict[str, Any] = {
            "source": src,
            "provider": provider,
            "mailbox_provider": mailbox,
            **_figures({FLAG_FIELDS[i]: counts[i] for i in _MAILBOX_IDX}),
        }
        for name in ("current_hour", "previous_hour"):
            row = windows[group][name]
            item[name] = _figures({FLAG_FIELDS[i]: row[i] for i in _MAILBOX_IDX})
        items.append(item)
    return items


def merge_mailbox_lists(lists: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Sum the workers' shares of each (provider, source, mailbox provider), then compute the rates."""
    acc: dict[tuple[str, str, str], dict[str, dict[str, int]]] = {}
    for part in lists:
        for item in part:
            group = (item["source"], item["mailbox_provider"], item["provider"])
            sums = acc.setdefault(
                group, {w: dict.fromkeys(MAILBOX_FLAGS, 0) for w in ("all", "current_hour", "previous_hour")}
            )
            for window, counts in (
                ("all", item["counts"]),
                ("current_hour", item["current_hour"]["counts"]),
                ("previous_hour", item["previous_hour"]["counts"]),
            ):
                for flag in MAILBOX_FLAGS:
                    sums[window][flag] += counts[flag]
    return [
        {
            "source": source,
            "provider": provider,
            "mailbox_provider": mailbox,
            **_figures(sums["all"]),
            "current_hour": _figures(sums["current_hour"]),
            "previous_hour": _figures(sums["previous_hour"]),
        }
        for (source, mailbox, provider), sums in sorted(acc.items())
    ]


def merge_lists(lists: Sequence[Sequence[Mapping[str, Any]]], order: str, limit: int) -> list[Mapping[str, Any]]:
    """Merge the lists of several workers: newest ``last_event_at`` first (or oldest with ``-``)."""
    items = [item for part in lists for item in part]
    reverse = order == "last_event_at"
    # Timestamps are fixed-width RFC 3339 strings, so they sort as text; the key breaks ties.
    items.sort(key=lambda a: (a.get("last_event_at") or "", a["key"]), reverse=reverse)
    return items[:limit]


def parse_key(value: str, parameter: str = "key") -> str:
    if not _KEY.match(value) or len(value) > 512:
        raise QueryError(parameter, "expected {source}:{id}, e.g. acme-smartcq:c-42")
    return value


def _int(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        raise QueryError(name, f"must be an integer between {lo} and {hi}") from None
    if not lo <= n <= hi:
        raise QueryError(name, f"must be an integer between {lo} and {hi}")
    return n


def parse_hours(params: Mapping[str, str]) -> int:
    return _int(params, "hours", DEFAULT_HOURS, 1, MAX_HOURS)


def parse_limit(params: Mapping[str, str]) -> int:
    return _int(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


def parse_order(params: Mapping[str, str]) -> str:
    order = params.get("order") or "last_event_at"
    if order not in ORDERS:
        raise QueryError("order", f"must be one of {', '.join(ORDERS)}")
    return order


def parse_source(params: Mapping[str, str]) -> str | None:
    source = params.get("source")
    if source is None or source == "":
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", source) or len(source) > 64:
        raise QueryError("source", "must be a source name (letters, digits, '.', '_', '-')")
    return source
