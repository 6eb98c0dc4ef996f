"""Paginators driven by bare pages, never the network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from mailpulse.connectors.errors import PaginationError
from mailpulse.connectors.pagination import (
    TICK,
    BasePaginator,
    DateWindowPaginator,
    DescendingCursorPaginator,
    OffsetPaginator,
    TieRunOverflow,
    TimestampCursorPaginator,
    read_tie_run,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def ts(r):
    return r["t"]


class FakeSends:
    """The SmartCQ contract in memory: rows with t > since, ascending (ties by id), at most limit; status/campaign filters."""

    def __init__(self, rows):
        self.rows = sorted(rows, key=lambda r: (r["t"], r["id"]))
        self.calls = []

    def page(self, since, limit, **filters):
        self.calls.append((since, dict(filters)))
        out = [r for r in self.rows if r["t"] > since and all(r[k] == v for k, v in filters.items())]
        return {"data": out[:limit], "next": out[limit - 1]["t"] if len(out) > limit else None}

    async def fetch(self, params):
        since = params["since"]
        filters = {k: v for k, v in params.items() if k not in ("since", "limit")}
        return self.page(since, params["limit"], **filters)["data"]


def drain(api, since, limit):
    """The read loop of the SmartCQ stream, in miniature (ties split with ``read_tie_run``)."""
    import asyncio

    p = TimestampCursorPaginator(since, limit=limit, ts_of=ts, has_more=lambda b: b["next"] is not None)
    seen, tokens = [], []
    while not p.finished:
        tokens.append(p.current_value)
        body = api.page(p.current_value, limit)
        rows = body["data"]
        try:
            p.advance(body, rows)
        except TieRunOverflow as tie:
            rows = asyncio.run(
                read_tie_run(
                    api.fetch,
                    instant=tie.instant,
                    params={"since": tie.instant - TICK, "limit": limit},
                    ts_of=ts,
                    limit=limit,
                    splits=(("status", ("a", "b")), ("campaign", None)),
                )
            )
            p.skip_past(tie.instant)
        seen.extend(rows)
    return seen, tokens, p.current_value


def rows_with_runs(*runs):
    """Runs of (instant offset in seconds, count, campaign)."""
    out, n = [], 0
    for sec, count, campaign in runs:
        for i in range(count):
            out.append(
                {"id": f"s{n:05d}", "t": T0 + timedelta(seconds=sec), "status": "ab"[i % 2], "campaign": campaign}
            )
            n += 1
    return out


def test_a_page_ending_inside_a_run_of_equal_timestamps_loses_nothing():
    rows = rows_with_runs((1, 3, "c1"), (2, 7, "c2"), (3, 4, "c3"), (4, 1, "c4"))
    api = FakeSends(rows)
    seen, tokens, cursor = drain(api, T0, limit=5)
    assert {r["id"] for r in seen} == {r["id"] for r in rows}
    assert len(tokens) == len(set(tokens)), "a token repeated"
    assert cursor == T0 + timedelta(seconds=4) - TICK  # the last instant is re-read next time


def test_a_run_longer_than_a_page_is_split_by_status_then_campaign():
    rows = rows_with_runs((1, 2, "c0"), (5, 6, "c1"), (5, 5, "c2"), (6, 2, "c3"))
    api = FakeSends(rows)
    seen, tokens, _ = drain(api, T0, limit=4)
    assert {r["id"] for r in seen} == {r["id"] for r in rows}
    assert any("campaign" in f for _, f in api.calls) and any("status" in f for _, f in api.calls)


def test_a_run_that_no_filter_can_split_stops_loudly_instead_of_skipping():
    rows = [{"id": f"s{i}", "t": T0, "status": "a", "campaign": "c"} for i in range(10)]
    api = FakeSends(rows)
    with pytest.raises(PaginationError, match="cannot be paged"):
        drain(api, T0 - TICK, limit=4)


def test_the_loop_guard_refuses_a_repeated_token():
    class Stuck(BasePaginator[str]):
        def get_next(self, body, records):
            return body["next"]  # a provider that hands back the same cursor

    p = Stuck("abc")
    with pytest.raises(PaginationError, match="repeat token 'abc'"):
        p.advance({"next": "abc"}, [{}])


def test_offset_paginator_ends_on_a_short_page_or_has_more_false():
    p = OffsetPaginator(0, 3, has_more=lambda b: b["hasMore"])
    p.advance({"hasMore": True}, [1, 2, 3])
    assert p.current_value == 3 and not p.finished
    p.advance({"hasMore": False}, [1, 2, 3])
    assert p.finished


def test_descending_cursor_overlaps_the_last_instant_and_detects_an_unpageable_run():
    p = DescendingCursorPaginator(limit=3, ts_of=ts, has_more=lambda b: True)
    page = [{"t": T0 + timedelta(seconds=s)} for s in (9, 8, 8)]
    p.advance({}, page)
    assert p.current_value == T0 + timedelta(seconds=8) + TICK
    with pytest.raises(TieRunOverflow):
        p.advance({}, [{"t": T0}] * 3)


def test_date_windows_cover_the_range_once_in_day_steps():
    p = DateWindowPaginator(T0, T0 + timedelta(days=3, hours=5), timedelta(days=1))
    windows = []
    while not p.finished:
        windows.append(p.current_value)
        p.advance(None, ())
    assert [w[0].day for w in windows] == [1, 2, 3, 4]
    assert windows[-1][1] == T0 + timedelta(days=3, hours=5)
    assert all(a[1] == b[0] for a, b in pairwise(windows))


def test_a_page_whose_timestamps_are_all_unreadable_cannot_move_the_cursor():
    p = TimestampCursorPaginator(T0, limit=2, ts_of=lambda r: None, has_more=lambda b: True)
    with pytest.raises(PaginationError, match="readable timestamp"):
        p.advance({}, [{}, {}])
