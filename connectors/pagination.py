"""The four paging styles, as small shared classes that never touch the network.

Modelled on singer_sdk/pagination.py: ``BasePaginator`` owns ``current_value``
and ``finished``; ``advance(body, records)`` asks ``get_next`` for the next
token and refuses a token that repeats (the SDK's loop guard).

- ``TimestampCursorPaginator``: ascending, ``since`` strictly greater (SmartCQ sends).
- ``DescendingCursorPaginator``: descending, ``cursor`` strictly smaller (SmartCQ contacts).
- ``OffsetPaginator``: limit/offset over a closed window (SuperSend).
- ``DateWindowPaginator``: consecutive ``(since, until)`` windows (SMTPeter days).

A strict cursor loses rows when a page ends inside a run of equal timestamps,
so both cursor paginators overlap by one tick (re-read the boundary instant;
callers de-duplicate by record id) and raise ``TieRunOverflow`` when a full
page holds one single instant, which no cursor value can page past:
``read_tie_run`` then splits that instant by filters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from mailpulse.connectors.errors import PaginationError

__all__ = [
    "BasePaginator",
    "TimestampCursorPaginator",
    "DescendingCursorPaginator",
    "OffsetPaginator",
    "DateWindowPaginator",
    "TieRunOverflow",
    "read_tie_run",
    "TICK",
]

T = TypeVar("T")
#: The providers' timestamp resolution (milliseconds): the overlap of a strict cursor.
TICK = timedelta(milliseconds=1)
TimestampOf = Callable[[Mapping[str, Any]], "datetime | None"]


def _bounds(records: Sequence[Mapping[str, Any]], ts_of: TimestampOf) -> tuple[datetime, datetime]:
    """First and last readable timestamps of a page (a bad record never steers the cursor)."""
    stamps = [t for t in map(ts_of, records) if t is not None]
    if not stamps:
        raise PaginationError("no record of the page has a readable timestamp: cannot move the cursor")
    return stamps[0], stamps[-1]


class TieRunOverflow(Exception):
    """A full page holds one single instant: paging by timestamp alone cannot get past it."""

    def __init__(self, instant: datetime) -> None:
        super().__init__(f"more records share {instant.isoformat()} than one page holds")
        self.instant = instant


class BasePaginator(Generic[T]):
    def __init__(self, start_value: T) -> None:
        self._value = start_value
        self._finished = False

    @property
    def current_value(self) -> T:
        return self._value

    @property
    def finished(self) -> bool:
        return self._finished

    def advance(self, body: Any, records: Sequence[Mapping[str, Any]]) -> None:
        new = self.get_next(body, records)
        if new is None:
            self._finished = True
            return
        if new == self._value:
            raise PaginationError(f"the paginator would repeat token {new!r}: stopping instead of looping")
        self._value = new

    def get_next(self, body: Any, records: Sequence[Mapping[str, Any]]) -> T | None:
        raise NotImplementedError


class TimestampCursorPaginator(BasePaginator[datetime]):
    """``since`` = a timestamp; the provider returns rows with ``ts > since`` in ascending order.

    ``current_value`` is always safe to store: every row with ``ts`` before it
    plus one tick has been returned.
    """

    def __init__(self, since: datetime, *, limit: int, ts_of: TimestampOf, has_more: Callable[[Any], bool]) -> None:
        super().__init__(since)
        self.limit = limit
        self.ts_of = ts_of
        self.has_more = has_more

    def get_next(self, body: Any, records: Sequence[Mapping[str, Any]]) -> datetime | None:
        if not records:
            return None
        first, last = _bounds(records, self.ts_of)
        full = len(records) >= self.limit
        if full and first == last:
            raise TieRunOverflow(last)
        # Overlap: re-read the last instant, whose run may go on in the next page.
        candidate = max(self._value, last - TICK)
        if not full or not self.has_more(body):
            self._value = candidate
            return None
        return candidate

    def skip_past(self, instant: datetime) -> None:
        """After ``read_tie_run`` read ``instant`` whole: resume strictly after it."""
        if instant <= self._value:
            raise PaginationError(f"cannot move the cursor back to {instant.isoformat()}")
        self._value = instant


class DescendingCursorPaginator(BasePaginator["datetime | None"]):
    """``cursor`` = a timestamp; the provider returns rows with ``ts < cursor``, newest first; None: first page."""

    def __init__(self, *, limit: int, ts_of: TimestampOf, has_more: Callable[[Any], bool]) -> None:
        super().__init__(None)
        self.limit = limit
        self.ts_of = ts_of
        self.has_more = has_more

    def get_next(self, body: Any, records: Sequence[Mapping[str, Any]]) -> datetime | None:
        if not records or len(records) < self.limit or not self.has_more(body):
            return None
        first, last = _bounds(records, self.ts_of)
        if first == last:
            raise TieRunOverflow(last)
        return last + TICK  # overlap: re-read the last instant

    def skip_past(self, instant: datetime) -> None:
        self._value = instant


class OffsetPaginator(BasePaginator[int]):
    """limit/offset; stable only over a closed window (end fixed when the pass starts)."""

    def __init__(self, start: int = 0, page_size: int = 100, *, has_more: Callable[[Any], bool] | None = None) -> None:
        super().__init__(start)
        self.page_size = page_size
        self.has_more = has_more

    def get_next(self, body: Any, records: Sequence[Mapping[str, Any]]) -> int | None:
        if len(records) < self.page_size or (self.has_more is not None and not self.has_more(body)):
            return None
        return self._value + len(records)


class DateWindowPaginator(BasePaginator["tuple[datetime, datetime]"]):
    """Consecutive windows ``[since, until)`` of ``step`` from ``start`` up to ``end``."""

    def __init__(self, start: datetime, end: datetime, step: timedelta) -> None:
        if step <= timedelta(0):
            raise ValueError("step must be positive")
        super().__init__((start, min(start + step, end)))
        self.end = end
        self.step = step
        if start >= end:
            self._finished = True

    def get_next(self, body: Any = None, records: Sequence[Mapping[str, Any]] = ()) -> tuple[datetime, datetime] | None:
        since = self._value[1]
        if since >= self.end:
            return None
        return since, min(since + self.step, self.end)


FetchCallback = Callable[[dict[str, Any]], Awaitable[list[Mapping[str, Any]]]]


async def read_tie_run(
    fetch: FetchCallback,
    *,
    instant: datetime,
    params: dict[str, Any],
    ts_of: TimestampOf,
    limit: int,
    splits: Sequence[tuple[str, Sequence[str] | None]],
) -> list[Mapping[str, Any]]:
    """Every row at ``instant``, read by splitting the query with filters.

    ``params`` select the instant (e.g. ``since`` one tick before it). Each
    ``(name, values)`` of ``splits`` is tried in turn while a page is still full
    of that one instant; ``values=None`` uses the values seen in the rows
    (e.g. the campaign ids of the blast). If every split is exhausted and a page
    is still full, ``PaginationError`` is raised: never skip silently.
    """

    async def collect(query: dict[str, Any], depth: int) -> list[Mapping[str, Any]]:
        rows = await fetch(query)
        # A row whose timestamp cannot be read is kept (it goes to the DLQ) but proves nothing about the run.
        stamps = [ts_of(r) for r in rows]
        at = [r for r, t in zip(rows, stamps, strict=True) if t is None or t == instant]
        if len(rows) < limit or any(t is not None and t != instant for t in stamps):
            return at
        if depth >= len(splits):
            shown = {k: v for k, v in query.items() if k in dict(splits)}
            raise PaginationError(
                f"more than {limit} records share {instant.isoformat()} even filtered by {shown}: "
                "they cannot be paged with this API; stopping rather than skipping them"
            )
        name, values = splits[depth]
        choices = list(values) if values is not None else sorted({str(r.get(name)) for r in at if r.get(name)})
        out: list[Mapping[str, Any]] = []
        for value in choices:
            out.extend(await collect({**query, name: value}, depth + 1))
        return out

    return await collect(dict(params), 0)
