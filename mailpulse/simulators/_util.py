"""Small shared helpers: millisecond time, the providers' timestamp formats, seeded ids, JSON replies.

Simulated time is an ``int`` of milliseconds since the Unix epoch everywhere
inside the simulators; it is turned into each provider's own string format
only when a record is rendered.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import web

__all__ = [
    "EPOCH",
    "MS",
    "SECOND",
    "MINUTE",
    "HOUR",
    "DAY",
    "to_ms",
    "from_ms",
    "td_ms",
    "iso_ms",
    "iso_s",
    "iso_us",
    "sql_s",
    "parse_iso_us",
    "parse_loose",
    "seeded_uuid",
    "json_response",
    "add_months",
    "lognormal_ms",
    "BadInput",
]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MS = 1
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


class BadInput(ValueError):
    """A query parameter a simulated API rejects; the message names the parameter."""


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: the simulators work in aware UTC datetimes")
    return (dt - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def td_ms(td: timedelta) -> int:
    return td // timedelta(milliseconds=1)


# Records share timestamps (campaign blasts, same-second events): caching the
# formatting keeps rendering 100k records cheap.
@lru_cache(maxsize=131072)
def iso_ms(ms: int) -> str:
    """SmartCQ: ``2026-05-10T08:00:00.000Z``."""
    dt = from_ms(ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@lru_cache(maxsize=131072)
def iso_s(ms: int) -> str:
    """SuperSend: ``2025-11-27T10:30:00Z``."""
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=32768)
def iso_us(ms: int) -> str:
    """SmarterSends (Laravel): ``2026-02-01T09:00:00.000000Z``."""
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{(ms % 1000) * 1000:06d}Z"


@lru_cache(maxsize=131072)
def sql_s(ms: int) -> str:
    """SMTPeter and SmarterSends exports: ``YYYY-MM-DD hh:mm:ss`` (UTC)."""
    return from_ms(ms).strftime("%Y-%m-%d %H:%M:%S")


def parse_iso_us(value: str, name: str) -> int:
    """An ISO 8601 timestamp (``Z`` or an offset; naive = UTC) as integer microseconds since the epoch."""
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInput(f"{name}: {value!r} is not an ISO 8601 timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - EPOCH) // timedelta(microseconds=1)


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_loose(value: str, name: str, *, end_of_day: bool = False) -> int:
    """SmarterSends' "common date-time formats": a date, ``date hh:mm:ss`` or ISO 8601, as ms.

    A bare date used as an inclusive end means the whole day.
    """
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            d = date.fromisoformat(text)
            dt = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
            if end_of_day:
                dt += timedelta(days=1) - timedelta(milliseconds=1)
        else:
            dt = datetime.fromisoformat(text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
    except ValueError:
        raise BadInput(f"The {name} field must be a valid date.") from None
    return to_ms(dt)


def add_months(d: date, months: int) -> date:
    """Calendar months, clamping the day (Jan 31 + 1 month = Feb 28/29)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, min(d.day, day))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def lognormal_ms(rng: random.Random, median_ms: float, sigma: float, cap_ms: int) -> int:
    """A delay with a long tail (opens: most within hours, some days later)."""
    return min(cap_ms, int(median_ms * math.exp(rng.gauss(0.0, sigma))))


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )
