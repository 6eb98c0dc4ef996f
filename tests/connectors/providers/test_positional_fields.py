"""The providers build events and records positionally (it halves the cost): the field orders they rely on."""

from __future__ import annotations

from dataclasses import fields

import orjson

from mailpulse.connectors.errors import NormalisationError
from mailpulse.connectors.providers.smtpeter import normalise as smtpeter_normalise
from mailpulse.connectors.providers.supersend import _ATTRIBUTES
from mailpulse.connectors.providers.supersend import normalise as supersend_normalise
from mailpulse.topics.events import EmailEvent, make_event_id
from mailpulse.topics.records import CampaignMetadata, ContactRecord
from tests.connectors.providers.suite import OBSERVED, load


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def test_email_event_fields_are_in_the_order_the_providers_pass_them():
    assert _names(EmailEvent) == [
        "event_id", "provider", "source", "type", "occurred_at", "observed_at", "message_id",
        "campaign_id", "contact_id", "email", "bounce", "url", "attributes",
    ]  # fmt: skip


def test_contact_and_campaign_record_fields_are_in_the_order_the_providers_pass_them():
    assert _names(ContactRecord) == [
        "source",
        "provider",
        "contact_id",
        "observed_at",
        "email",
        "status",
        "updated_at",
        "attributes",
    ]
    assert _names(CampaignMetadata) == [
        "source",
        "provider",
        "campaign_id",
        "observed_at",
        "name",
        "subject",
        "send_time",
        "attributes",
    ]


def test_smtpeter_streamed_event_id_is_the_contract_make_event_id_of_the_sorted_data():
    checked = 0
    for ordinal in (0, 1, 7, None):
        for raw in load("smtpeter", "events-template-42.json"):
            try:
                event = smtpeter_normalise(
                    raw, source="acme", campaign_id="template:42", observed_at=OBSERVED, ordinal=ordinal
                )
            except NormalisationError:
                continue  # the recording's deliberately broken records
            checked += 1
            data = orjson.dumps(raw["data"], option=orjson.OPT_SORT_KEYS).decode()
            assert event.event_id == make_event_id("smtpeter", "acme", raw["event"], data, ordinal)
    assert checked > 20


def test_supersend_attributes_keep_the_row_extras_in_order_and_drop_only_their_nulls():
    # _attributes names the extras again in a dict display: it must match _ATTRIBUTES, nulls or not.
    extras = {k: 0 if k == "unsubscribes" else f"v-{k}" for k in _ATTRIBUTES}
    row = {"id": "r1", "type": "sent", "date": "2026-11-01T00:00:00Z", **extras, "opens": 3}
    for null in (None, *_ATTRIBUTES):
        raw = {**row, null: None} if null else row
        [event, *_] = supersend_normalise(raw, source="acme", observed_at=OBSERVED)
        want = {k: v for k, v in extras.items() if k != null}
        want.update(reports_delivery=False, opens_counter=3, clicks_counter=0, supersend_event_id="r1")
        assert list(event.attributes.items()) == list(want.items())
