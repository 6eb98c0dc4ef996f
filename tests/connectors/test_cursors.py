"""Where a pass starts (``pass_start``) and how backfill keeps its checkpoint (``BackfillCursor``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.connectors.base import Plan, StreamRunner
from mailpulse.connectors.cursors import BackfillCursor, LiveCursor, PassKind, pass_start
from mailpulse.connectors.dedupe import EventIndex
from tests.connectors.test_base import NOW, ListStream, MemoryPublisher

_times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))
_overlaps = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=2))
_kinds = st.sampled_from(PassKind)


@given(_kinds, _times, _overlaps, st.booleans())
def test_a_stream_that_never_stored_a_cursor_starts_at_its_window(kind, window, overlap, floor):
    assert pass_start(kind, None, window, overlap=overlap, floor_at_window=floor) == window


@given(_times, _times, _overlaps)
def test_a_poll_resumes_overlap_before_its_cursor_however_far_behind_it_is(stored, window, overlap):
    assert pass_start(PassKind.POLL, stored, window, overlap=overlap) == stored - overlap


@given(_times, _times, _overlaps)
def test_a_floored_poll_never_starts_before_its_window_nor_after_its_cursor(stored, window, overlap):
    start = pass_start(PassKind.POLL, stored, window, overlap=overlap, floor_at_window=True)
    assert start >= window
    assert start == window or start == stored - overlap


@given(_times, _times, _overlaps, st.booleans())
def test_a_reconcile_rereads_the_whole_window_or_from_a_lagging_cursor(stored, window, overlap, floor):
    start = pass_start(PassKind.RECONCILE, stored, window, overlap=overlap, floor_at_window=floor)
    assert start == min(stored, window)


@given(_times, _times, _overlaps, st.booleans())
def test_a_backfill_resumes_exactly_at_its_own_cursor(stored, window, overlap, floor):
    assert pass_start(PassKind.BACKFILL, stored, window, overlap=overlap, floor_at_window=floor) == stored


# The hand-written starts each provider's read() had before the rule was shared, as oracles.
def _old_smartcq(kind, stored, now, lookback, since):
    if kind == "poll":
        return stored if stored else now - lookback
    if kind == "backfill":
        return stored if stored else since
    return min(since, stored) if stored else since


def _old_supersend(kind, stored, now, lookback, since, overlap=timedelta(minutes=10)):
    if kind == "poll":
        return stored - overlap if stored else now - lookback
    if kind == "backfill":
        return stored if stored else since
    return min(since, stored) if stored else since


def _old_smtpeter(kind, stored, now, lookback, since, day):
    first = day(now - lookback)
    if kind == "poll":
        return max(first, stored) if stored else first
    if kind == "backfill":
        return stored if stored else day(since)
    return min(day(since), stored) if stored else day(since)


def _plan(kind: PassKind, now: datetime, lookback: timedelta, since: datetime) -> Plan:
    if kind is PassKind.POLL:
        return Plan.poll(now)
    if kind is PassKind.RECONCILE:
        return Plan.reconcile(now, lookback)
    return Plan(PassKind.BACKFILL, now, since=since)


@given(
    _kinds,
    st.none() | _times,
    _times,
    st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=60)),
    _times,
)
def test_the_shared_rule_starts_every_provider_where_its_own_code_did(kind, stored, now, lookback, since):
    from mailpulse.connectors.providers.smtpeter import _day

    plan = _plan(kind, now, lookback, since)
    since = plan.since  # reconcile: now - lookback
    window = plan.window_start(lookback)
    assert pass_start(kind, stored, window) == _old_smartcq(kind.value, stored, now, lookback, since)
    assert pass_start(kind, stored, window, overlap=timedelta(minutes=10)) == _old_supersend(
        kind.value, stored, now, lookback, since
    )
    day_stored = None if stored is None else _day(stored)
    assert pass_start(kind, day_stored, _day(window), floor_at_window=True) == _old_smtpeter(
        kind.value, day_stored, now, lookback, since, _day
    )


def test_pass_kinds_are_the_strings_of_checkpoints_metrics_and_the_cli():
    assert [k.value for k in PassKind] == ["poll", "reconcile", "backfill"]
    assert Plan("poll", NOW).kind is PassKind.POLL
    assert f"{PassKind.RECONCILE}" == "reconcile"


_SINCE = datetime(2026, 10, 1, tzinfo=UTC)
_UNTIL = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_backfill_checkpoint_of_another_window_is_ignored_and_one_of_this_window_resumed():
    form = BackfillCursor(_SINCE, _UNTIL)
    mine = form.wrap({"since": "2026-10-07T00:00:00.000Z"})
    other = BackfillCursor(_SINCE, None).wrap({"since": "2026-10-09T00:00:00.000Z"}, done=True)
    assert mine == {
        "since": "2026-10-01T00:00:00.000Z",
        "until": "2026-11-01T00:00:00.000Z",
        "cursor": {"since": "2026-10-07T00:00:00.000Z"},
        "done": False,
    }
    assert form.adopt(mine) == mine and form.unwrap(mine) == {"since": "2026-10-07T00:00:00.000Z"}
    assert form.adopt(other) is None and form.unwrap(other) is None and not form.is_done(other)
    assert form.adopt({"since": "2026-10-09"}) is None  # a live cursor is no backfill checkpoint
    assert not form.is_done(mine) and form.is_done(form.wrap(None, done=True))


def test_a_live_cursor_is_stored_as_is_and_never_done():
    form = LiveCursor()
    assert form.adopt({"end": "x"}) == form.unwrap({"end": "x"}) == form.wrap({"end": "x"}, done=True) == {"end": "x"}
    assert not form.is_done({"done": True})


async def test_a_backfill_runner_wraps_every_checkpoint_in_its_window_and_is_done_after_its_pass():
    pub = MemoryPublisher()
    form = BackfillCursor(_SINCE, _UNTIL)
    stale = BackfillCursor(_SINCE, None).wrap({"page": 9}, done=True)  # another window: ignored
    r = StreamRunner(
        ListStream([[{"id": "a"}], [{"id": "b"}]]),
        publisher=pub,
        prefix="p.",
        clock=lambda: NOW,  # type: ignore[arg-type]
        cursor=stale,
        event_index=EventIndex(),
        change_indexes={},
        batch_size=1,
        cursor_form=form,
    )
    assert r.cursor is None and not r.done
    await r.run_pass(Plan(PassKind.BACKFILL, NOW, since=_SINCE, until=_UNTIL))
    stored = [orjson.loads(rec.value)["cursor"] for rec in pub.topic("checkpoints.v1")]
    assert [(c["cursor"], c["done"]) for c in stored] == [
        ({"page": 1}, False),
        ({"page": 2}, False),
        ({"page": 2}, True),
    ]
    assert all((c["since"], c["until"]) == ("2026-10-01T00:00:00.000Z", "2026-11-01T00:00:00.000Z") for c in stored)
    assert r.done
