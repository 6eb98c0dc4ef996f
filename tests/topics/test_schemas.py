"""The shipped JSON Schemas and the code agree, so downstream consumers can trust them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import jsonschema
import orjson
import pytest
from hypothesis import given, settings

from mailpulse.topics.contracts import TOPICS, load_schema
from mailpulse.topics.events import BounceKind, EmailEvent, EventType, SchemaError, decode_event, encode_event
from mailpulse.topics.records import CampaignMetadata, Checkpoint, ContactRecord, DeadLetter, encode_record
from tests.topics.strategies import events

EVENT_SCHEMA = load_schema("email-event.v1.json")
T0 = datetime(2026, 5, 10, 8, 0, tzinfo=UTC)


def _validator(schema: dict) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("spec", TOPICS, ids=lambda s: s.name)
def test_every_topic_ships_a_valid_value_schema(spec):
    schema = load_schema(spec.value_schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert spec.name in schema["description"]


def test_event_schema_lists_exactly_the_dataclass_fields():
    fields = {f.name for f in dataclasses.fields(EmailEvent)}
    assert set(EVENT_SCHEMA["properties"]) == fields
    required = {
        f.name
        for f in dataclasses.fields(EmailEvent)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert set(EVENT_SCHEMA["required"]) == required


def test_event_schema_enums_match_the_code():
    assert EVENT_SCHEMA["properties"]["type"]["enum"] == [t.value for t in EventType]
    bounce = EVENT_SCHEMA["properties"]["bounce"]["oneOf"][1]
    assert bounce["properties"]["kind"]["enum"] == [k.value for k in BounceKind]


@settings(max_examples=200)
@given(events)
def test_every_encoded_event_validates_against_the_schema(event):
    _validator(EVENT_SCHEMA).validate(orjson.loads(encode_event(event)))


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "exploded"},
        {"occurred_at": None},
        {"email": "Upper@Case.com"},
        {"bounce": {"kind": "medium"}},
        {"extra": True},
        {"message_id": ""},
    ],
)
def test_what_the_schema_rejects_the_decoder_rejects(bad):
    from mailpulse.topics.events import event_to_dict
    from tests.topics.test_events import _event

    data = {**event_to_dict(_event()), **bad}
    assert not _validator(EVENT_SCHEMA).is_valid(data)
    with pytest.raises(SchemaError):
        decode_event(orjson.dumps(data))


@pytest.mark.parametrize(
    ("record", "schema"),
    [
        (CampaignMetadata("acme", "smartcq", "c1", T0, name="Spring", subject="Hi", send_time=T0), "campaign.v1.json"),
        (ContactRecord("acme", "smartcq", "k1", T0, email="a@b.it", status="active", updated_at=T0), "contact.v1.json"),
        (Checkpoint("acme", "smartcq", "sends", {"since": "2026-05-10T08:00:00.000Z"}, T0), "checkpoint.v1.json"),
        (DeadLetter("acme", "smartcq", "sends", "createdAt: unparsable", {"id": "x"}, T0), "dead-letter.v1.json"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_metadata_records_validate_against_their_schema(record, schema):
    value = orjson.loads(encode_record(record))
    _validator(load_schema(schema)).validate(value)
    assert set(value) <= set(load_schema(schema)["properties"])
