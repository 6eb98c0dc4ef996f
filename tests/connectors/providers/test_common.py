"""The providers' shared hot-path helpers equal the contract functions they stand in for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.connectors.errors import NormalisationError
from mailpulse.connectors.providers._common import event_id_prefix, timestamp, utc_timestamp
from mailpulse.topics.events import EventType, make_event_id, parse_timestamp

# From year 1000: strftime does not pad smaller years to four digits.
_datetimes = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))
#: Every shape the providers send: SmartCQ '...T...mmmZ', SuperSend '...Z', SMTPeter and SmarterSends
#: 'YYYY-MM-DD hh:mm:ss' (the fast path), plus naive 'T' forms and offsets.
_formats = st.sampled_from(
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%dT%H:%M:%S.%fZ",
        "%Y-%m-%d %H:%M:%S.%f",
        "%Y-%m-%dT%H:%M:%S+02:00",
    ]
)
#: 19-character texts near the fast path's shape, most of them malformed.
_near_misses = st.text(alphabet="0123456789-:T Z+.,W", min_size=19, max_size=19) | st.builds(
    lambda dt, i, c: (lambda s: s[:i] + c + s[i + 1 :])(dt.strftime("%Y-%m-%d %H:%M:%S")),
    _datetimes,
    st.integers(0, 18),
    st.sampled_from("0123456789-:T Z+.,W"),
)


def _reference(value: str) -> datetime | str:
    """The general path: the contract's own ``parse_timestamp``, or the error timestamp() must raise."""
    try:
        return parse_timestamp(value)
    except ValueError:
        return "unparsable"


def _fast(value: str) -> datetime | str:
    try:
        return timestamp(value, "t")
    except NormalisationError as exc:
        assert str(exc) == f"t: unparsable timestamp {value[:40]!r}"
        return "unparsable"


@settings(max_examples=500, deadline=None)
@given(_datetimes, _formats)
def test_timestamp_fast_path_equals_the_general_parse_on_provider_formats(dt, fmt):
    text = dt.strftime(fmt)
    got, want = _fast(text), _reference(text)
    assert got == want
    assert isinstance(got, datetime) and got.tzinfo is UTC


@settings(max_examples=1000, deadline=None)
@given(_near_misses)
def test_timestamp_fast_path_never_accepts_what_the_general_parse_rejects(text):
    got, want = _fast(text), _reference(text)
    assert got == want
    if isinstance(got, datetime):
        assert got.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["2026-11-01T00+01:00", "2026-11-01T00:00+01", "20261101T000803.12Z", "2026-11-01T00:00:0Z", "2026-11-01"]
)
def test_timestamp_of_odd_19_character_and_short_forms_matches_the_general_parse(text):
    assert _fast(text) == _reference(text)


def _outcome(parse, value):
    """What ``parse(value, "t")`` returns or raises, comparable across two parsers."""
    try:
        return parse(value, "t")
    except NormalisationError as exc:
        return str(exc)


@settings(max_examples=500, deadline=None)
@given(
    _datetimes, _formats | st.sampled_from(["%Y-%m-%dT%H:%M:%S.%f+00:00", "%Y-%m-%dT%H:%M+00:00", "%Y-%m-%dT%H:%M+00"])
)
def test_utc_timestamp_is_timestamp_on_provider_formats(dt, fmt):
    text = dt.strftime(fmt)
    got, want = _outcome(utc_timestamp, text), _outcome(timestamp, text)
    assert got == want and type(got) is type(want)
    assert got.tzinfo is want.tzinfo is UTC


@settings(max_examples=1000, deadline=None)
@given(
    _near_misses
    | st.text(alphabet="0123456789-:T Z+.,W", max_size=30)
    | st.none()
    | st.integers()
    | st.booleans()
    | st.lists(st.integers(), max_size=2)
)
def test_utc_timestamp_is_timestamp_on_near_misses_and_wrong_types(value):
    got, want = _outcome(utc_timestamp, value), _outcome(timestamp, value)
    assert got == want and type(got) is type(want)
    if isinstance(got, datetime):
        assert got.tzinfo is want.tzinfo is UTC


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=60) | st.integers(), st.sampled_from(EventType))
def test_event_id_prefix_then_fact_is_the_contract_make_event_id(source, part, fact):
    # What the normalisers do per fact: copy the record's prefix state, feed the fact, finalise.
    prefix = event_id_prefix("smartcq", source, part)
    h = prefix.copy()
    h.update(fact.value.encode())
    assert h.hexdigest() == make_event_id("smartcq", source, part, fact.value)
