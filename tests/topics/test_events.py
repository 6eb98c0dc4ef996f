"""The event codec: round trip, stable ids, rejection naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given

from mailpulse.topics.events import (
    Bounce,
    BounceKind,
    EmailEvent,
    EventType,
    SchemaError,
    decode_event,
    encode_event,
    event_to_dict,
    make_event_id,
    parse_timestamp,
)
from tests.topics.strategies import events

T0 = datetime(2026, 5, 10, 8, 0, 3, tzinfo=UTC)


def _event(**overrides) -> EmailEvent:
    base = dict(
        event_id=make_event_id("smartcq", "acme", "send-1", "bounced"),
        provider="smartcq",
        source="acme",
        type=EventType.BOUNCED,
        occurred_at=T0,
        observed_at=T0,
        message_id="send-1",
        campaign_id="c-1",
        contact_id="k-1",
        email="mario@example.com",
        bounce=Bounce(BounceKind.HARD, "5.1.1", "user unknown"),
    )
    return EmailEvent(**{**base, **overrides})


@given(events)
def test_any_event_round_trips_through_json(event):
    assert decode_event(encode_event(event)) == event


def test_key_is_source_and_message_id():
    assert _event().key == "acme:send-1"


def test_event_id_is_deterministic_and_separates_its_parts():
    assert make_event_id("p", "s", "m", "opened") == make_event_id("p", "s", "m", "opened")
    assert make_event_id("p", "s", "m", "opened") != make_event_id("p", "s", "m", "clicked")
    # "ab"+"c" and "a"+"bc" must not collide
    assert make_event_id("p", "s", "ab", "c") != make_event_id("p", "s", "a", "bc")
    assert len(make_event_id("p", "s")) == 32


def test_timestamps_are_rfc3339_utc_with_z():
    data = event_to_dict(_event())
    assert data["occurred_at"] == "2026-05-10T08:00:03.000Z"


def test_parse_timestamp_reads_z_offsets_and_naive_as_utc():
    assert parse_timestamp("2026-05-10T08:00:03.000Z") == T0
    assert parse_timestamp("2026-05-10T10:00:03+02:00") == T0
    assert parse_timestamp("2026-05-10 08:00:03") == T0


def _mutated(**changes) -> bytes:
    data = event_to_dict(_event())
    for key, value in changes.items():
        if value is KeyError:
            del data[key]
        else:
            data[key] = value
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_id": KeyError}, "event_id"),
        ({"event_id": ""}, "event_id"),
        ({"source": 3}, "source"),
        ({"type": "exploded"}, "type"),
        ({"type": KeyError}, "type"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at"),  # before datetime.min in UTC
        ({"observed_at": "2026-05-10T08:00:03"}, "observed_at"),
        ({"message_id": None}, "message_id"),
        ({"campaign_id": 12}, "campaign_id"),
        ({"email": "Mario@Example.com"}, "email"),
        ({"bounce": {"kind": "medium"}}, "bounce.kind"),
        ({"bounce": "hard"}, "bounce"),
        ({"attributes": []}, "attributes"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_decoding_rejects_a_malformed_value_naming_the_field(changes, field):
    with pytest.raises(SchemaError) as info:
        decode_event(_mutated(**changes))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_decoding_rejects_non_json_and_non_objects():
    with pytest.raises(SchemaError, match=r"^\$: not valid JSON"):
        decode_event(b"{not json")
    with pytest.raises(SchemaError, match=r"^\$: event must be a JSON object"):
        decode_event(b"[1, 2]")
