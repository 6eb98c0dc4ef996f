"""Stage 1's lean decoder accepts, rejects and reads exactly what ``decode_event`` does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.eventgen import generate_events
from mailpulse.streams import decode
from mailpulse.streams.decode import decode_record
from mailpulse.streams.reducers import fact_of
from mailpulse.topics import events as topic_events
from mailpulse.topics.events import decode_event, encode_event

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
VALID = [orjson.loads(encode_event(e)) for e in generate_events(300, seed=11, now=NOW).events]


def outcome(fn: Callable[[Any], Any], raw: bytes) -> tuple[Any, ...]:
    try:
        return ("ok", fn(raw))
    except Exception as exc:  # noqa: BLE001 - the exception itself is what is compared
        return ("error", type(exc), str(exc))


def assert_same(raw: bytes) -> None:
    expected = outcome(lambda r: fact_of(decode_event(r)), raw)
    assert outcome(decode_record, raw) == expected
    fast = decode._fast(raw)
    if fast is not None:  # the fast path answers only for records decode_event accepts
        assert expected == ("ok", fast)


def test_the_fast_path_reads_every_generated_event_as_decode_event_does() -> None:
    assert decode._KNOWN == topic_events._KNOWN
    for data in VALID:
        raw = orjson.dumps(data)
        assert decode._fast(raw) is not None
        assert_same(raw)


_TIMESTAMPS = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), None]),
    ).map(lambda d: d.isoformat()),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S") + st_frac(d) + "Z"
    ),
    st.sampled_from(
        [
            "2026-11-23T12:00:00Z",
            "2026-11-23T12:00:00.5Z",
            "2026-11-23T12:00:00.1234567Z",
            "2026-11-23 12:00:00Z",
            "2026-11-23t12:00:00z",
            "2026-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T23:59:60Z",
            "2026-11-23T12:00:00+00:00",
            "2026-11-23T12:00:00-00:00",
            "2026-11-23T12:00:00+01:30",
            "2026-11-23T12:00:00",
            "2026-11-23",
            "1969-12-31T23:59:59.999999Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "２026-11-23T12:00:00Z",
            "",
        ]
    ),
)


def st_frac(d: datetime) -> str:
    return (
        ""
        if d.microsecond % 3 == 0
        else (f".{d.microsecond:06d}" if d.microsecond % 2 else f".{d.microsecond // 1000:03d}")
    )


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.text(max_size=8)
    | st.sampled_from(["", "A@B.C", "hard", "opened", "bounced"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
_FIELDS = sorted(topic_events._KNOWN)


def _value_for(field: str) -> st.SearchStrategy[Any]:
    if field in ("occurred_at", "observed_at"):
        return _TIMESTAMPS | _JSON
    if field == "type":
        return st.sampled_from([t.value for t in topic_events.EventType]) | _JSON
    if field == "bounce":
        return (
            st.fixed_dictionaries(
                {"kind": st.sampled_from(["hard", "soft", "unknown", "HARD", None])},
                optional={
                    "code": st.none() | st.text(max_size=3) | st.integers(-(2**40), 2**40),
                    "reason": st.none() | st.text(max_size=3),
                    "x": _JSON,
                },
            )
            | _JSON
        )
    if field == "attributes":
        return (
            st.dictionaries(
                st.sampled_from(["reports_delivery", "opens_counter", "clicks_counter", "other"]),
                st.none()
                | st.booleans()
                | st.integers(-3, 10)
                | st.floats(0, 5, allow_nan=False)
                | st.text(max_size=2),
                max_size=3,
            )
            | _JSON
        )
    return _JSON


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = dict(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["set", "set", "set", "drop", "add"]))
        field = draw(st.sampled_from(_FIELDS))
        if what == "set":
            data[field] = draw(_value_for(field))
        elif what == "drop":
            data.pop(field, None)
        else:
            data[draw(st.text(min_size=1, max_size=6))] = draw(_JSON)
    return orjson.dumps(data)


@settings(max_examples=1500, deadline=None)
@given(raw=_mutated())
def test_mutated_events_are_accepted_or_rejected_with_decode_events_reason(raw: bytes) -> None:
    assert_same(raw)


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.binary(max_size=40), _JSON.map(orjson.dumps), st.text(max_size=20).map(str.encode)))
def test_anything_that_is_not_an_event_object_is_rejected_like_decode_event_does(raw: bytes) -> None:
    assert_same(raw)


def test_a_dead_letter_reason_names_the_field() -> None:
    data = dict(VALID[0], email="Upper@Example.com")
    out = outcome(decode_record, orjson.dumps(data))
    assert out[0] == "error" and out[2] == "email: must be lower-cased"


def test_both_paths_give_a_named_fact_of_the_record() -> None:
    from mailpulse.streams.reducers import Fact

    data = dict(VALID[0])
    slow = dict(data, occurred_at=data["occurred_at"].replace("Z", "+02:00"))  # not UTC: decode_event's path
    for raw in (orjson.dumps(data), orjson.dumps(slow)):
        fact = decode_record(raw)
        assert type(fact) is Fact
        assert (fact.source, fact.message_id, fact.type) == (data["source"], data["message_id"], data["type"])
        assert fact.short_id == data["event_id"][:16]
    assert decode._fast(orjson.dumps(data)) is not None and decode._fast(orjson.dumps(slow)) is None
