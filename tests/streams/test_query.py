"""Pure query functions: answers, rates (null on zero denominators), parameters (400 names the parameter)."""

from __future__ import annotations

from datetime import UTC

import orjson
import pytest

from mailpulse.streams.aggregates import HOUR_MS, decode_value
from mailpulse.streams.query import (
    QueryError,
    campaign_answer,
    contact_answer,
    hourly_answer,
    merge_lists,
    parse_hours,
    parse_key,
    parse_limit,
    parse_order,
    parse_source,
    rates,
)
from mailpulse.streams.reducers import COUNT_FIELDS

NOW_MS = 1_795_000_000_000


def value(**counts: int) -> dict:
    """A stage-2 value as the table holds it (partials in their compact wire form), read as the worker reads it."""
    c = [counts.get(f, 0) for f in COUNT_FIELDS]
    current = NOW_MS - NOW_MS % HOUR_MS
    return decode_value(
        orjson.dumps(
            {
                "partials": {
                    "0": {
                        "p": 0,
                        "v": [1, 1],
                        "provider": "smartcq",
                        "n": 3,
                        "c": c,
                        "f": NOW_MS - 5000,
                        "l": NOW_MS,
                        "h": {str(current): c[:13], str(current - 2 * HOUR_MS): [1] + [0] * 12},
                        "lo": None,
                        "lc": None,
                        "s": [NOW_MS, None, None, None],
                    },
                },
                "meta": {"name": "Spring sale", "subject": "50% off", "send_time": "2026-11-20T10:00:00.000Z"},
            }
        )
    )


def test_rates_are_null_when_their_denominator_is_zero() -> None:
    zero = dict.fromkeys(COUNT_FIELDS, 0)
    assert set(rates(zero).values()) == {None}
    r = rates({**zero, "sent": 4, "bounced": 1})
    assert (r["delivery_rate"], r["bounce_rate"], r["open_rate"], r["click_to_open_rate"]) == (0.0, 0.25, None, None)
    r = rates({**zero, "sent": 10, "delivered": 8, "opened": 4, "clicked": 2, "complained": 1, "unsubscribed": 2})
    assert r == {
        "delivery_rate": 0.8,
        "bounce_rate": 0.0,
        "open_rate": 0.5,
        "click_rate": 0.25,
        "click_to_open_rate": 0.5,
        "complaint_rate": 0.125,
        "unsubscribe_rate": 0.25,
    }


def test_campaign_answer_has_counts_rates_and_joined_metadata() -> None:
    a = campaign_answer("acme:c1", value(sent=3, delivered=2, opened=1), NOW_MS)
    assert a is not None
    assert (a["key"], a["source"], a["campaign_id"], a["provider"]) == ("acme:c1", "acme", "c1", "smartcq")
    assert a["counts"]["sent"] == 3 and a["rates"]["open_rate"] == 0.5
    assert a["metadata"] == {"name": "Spring sale", "subject": "50% off", "send_time": "2026-11-20T10:00:00.000Z"}
    assert campaign_answer("acme:none", None, NOW_MS) is None


def test_contact_answer_has_status_and_last_activity() -> None:
    a = contact_answer("acme:u1", value(sent=1), NOW_MS)
    assert a is not None and a["status"] == "active" and a["contact"] == "u1"
    assert a["last_activity_at"] == a["last_event_at"] is not None


def test_hourly_answer_is_dense_and_newest_first() -> None:
    a = hourly_answer("acme:c1", value(sent=3, bounced=1), 3, NOW_MS)
    assert a is not None
    windows = a["windows"]
    assert len(windows) == 3 and windows[0]["start"] > windows[1]["start"] > windows[2]["start"]
    assert [w["counts"]["sent"] for w in windows] == [3, 0, 1]
    assert windows[0]["rates"]["bounce_rate"] == pytest.approx(1 / 3)
    assert windows[1]["rates"]["bounce_rate"] is None


@pytest.mark.parametrize(
    ("parse", "params", "parameter"),
    [
        (parse_hours, {"hours": "0"}, "hours"),
        (parse_hours, {"hours": "49"}, "hours"),
        (parse_hours, {"hours": "x"}, "hours"),
        (parse_limit, {"limit": "-1"}, "limit"),
        (parse_limit, {"limit": "1e3"}, "limit"),
        (parse_order, {"order": "name"}, "order"),
        (parse_source, {"source": "a b"}, "source"),
    ],
)
def test_a_malformed_parameter_raises_a_query_error_naming_it(parse, params, parameter) -> None:
    with pytest.raises(QueryError) as exc:
        parse(params)
    assert exc.value.parameter == parameter and parameter in str(exc.value)


def test_parameters_default_and_keys_must_have_a_source() -> None:
    assert (parse_hours({}), parse_limit({}), parse_order({}), parse_source({})) == (24, 100, "last_event_at", None)
    assert parse_key("acme-smartcq:c-1") == "acme-smartcq:c-1"
    with pytest.raises(QueryError) as exc:
        parse_key("no-colon")
    assert exc.value.parameter == "key"


def test_lists_of_several_workers_merge_newest_first_and_are_cut_to_the_limit() -> None:
    a = [{"key": "s:a", "last_event_at": "2026-11-23T10:00:00.000Z"}, {"key": "s:c", "last_event_at": None}]
    b = [{"key": "s:b", "last_event_at": "2026-11-23T11:00:00.000Z"}]
    assert [i["key"] for i in merge_lists([a, b], "last_event_at", 2)] == ["s:b", "s:a"]
    assert [i["key"] for i in merge_lists([a, b], "-last_event_at", 3)] == ["s:c", "s:a", "s:b"]


def test_answer_timestamps_are_the_event_schema_format_at_millisecond_precision() -> None:
    import random
    from datetime import datetime

    from mailpulse.streams.query import _ts
    from mailpulse.topics.events import format_timestamp

    rng = random.Random(3)
    for ms in [0, 999, 1_000, 1_795_000_000_123] + [rng.randrange(0, 4_000_000_000_000) for _ in range(500)]:
        dt = datetime.fromtimestamp(ms // 1000, tz=UTC).replace(microsecond=(ms % 1000) * 1000)
        assert _ts(ms) == format_timestamp(dt)
