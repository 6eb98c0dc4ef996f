"""Small shared helpers: millisecond time, the providers' timestamp formats, seeded ids, JSON replies.

Simulated time is an ``int`` of milliseconds since the Unix epoch everywhere
inside the simulators; it is turned into each provider's own string format
only when a record is rendered.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

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
    "UuidFactory",
    "ri",
    "pick",
    "json_response",
    "add_months",
    "lognormal_ms",
    "BadInput",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")
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


@lru_cache(maxsize=8192)
def _day(days: int) -> str:
    return (_EPOCH_DATE + timedelta(days=days)).isoformat()


_EPOCH_DATE = date(1970, 1, 1)


def _split(ms: int) -> tuple[str, int, int, int, int]:
    days, rem = divmod(ms, DAY)
    h, rem = divmod(rem, HOUR)
    m, rem = divmod(rem, MINUTE)
    s, milli = divmod(rem, SECOND)
    return _day(days), h, m, s, milli


# Hand-rolled rather than strftime: rendering 100k records is dominated by timestamp formatting.
def iso_ms(ms: int) -> str:
    """SmartCQ: ``2026-05-10T08:00:00.000Z``."""
    d, h, m, s, milli = _split(ms)
    return f"{d}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}Z"


def iso_s(ms: int) -> str:
    """SuperSend: ``2025-11-27T10:30:00Z``."""
    d, h, m, s, _ = _split(ms)
    return f"{d}T{h:02d}:{m:02d}:{s:02d}Z"


def iso_us(ms: int) -> str:
    """SmarterSends (Laravel): ``2026-02-01T09:00:00.000000Z``."""
    d, h, m, s, milli = _split(ms)
    return f"{d}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}000Z"


def sql_s(ms: int) -> str:
    """SMTPeter and SmarterSends exports: ``YYYY-MM-DD hh:mm:ss`` (UTC)."""
    d, h, m, s, _ = _split(ms)
    return f"{d} {h:02d}:{m:02d}:{s:02d}"


def parse_iso_us(value: str, name: str) -> int:
    """An ISO 8601 timestamp (``Z`` or an offset; naive = UTC) as integer microseconds since the epoch."""
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInput(f"{name}: {value!r} is not an ISO 8601 timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
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
            dt = datetime(d.year, d.month, d.day, tzinfo=UTC)
            if end_of_day:
                dt += timedelta(days=1) - timedelta(milliseconds=1)
        else:
            dt = datetime.fromisoformat(text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
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
    """A version-4 UUID string from the seeded generator (the bits ``uuid.UUID(version=4)`` would set, faster)."""
    n = (rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID_CLEAR = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_UUID_SET = (0x8000 << 48) | (4 << 76)


class UuidFactory:
    """Version-4 UUID strings from their own seeded stream, drawn in blocks (cheaper than one by one)."""

    __slots__ = ("_rng", "_buf", "_pos")

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)
        self._buf = ""
        self._pos = 0

    def __call__(self) -> str:
        if self._pos >= len(self._buf):
            self._buf = self._rng.randbytes(16 * 4096).hex()
            self._pos = 0
        h = self._buf[self._pos : self._pos + 32]
        self._pos += 32
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def ri(rng: random.Random, lo: int, hi: int) -> int:
    """Like ``rng.randint(lo, hi)`` (inclusive), about three times cheaper."""
    return lo + int(rng.random() * (hi - lo + 1))


def pick(rng: random.Random, seq: Sequence[T]) -> T:
    """Like ``rng.choice(seq)``, cheaper."""
    return seq[int(rng.random() * len(seq))]


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
