"""SuperSend normalisation on recorded pages and on the doc's example."""

from __future__ import annotations

from mailpulse.connectors.providers.supersend import normalise
from mailpulse.topics.events import (
    ATTR_CLICKS_COUNTER,
    ATTR_OPENS_COUNTER,
    ATTR_REPORTS_DELIVERY,
    EmailEvent,
    EventType,
)
from mailpulse.topics.records import CampaignMetadata
from tests.connectors.providers.suite import OBSERVED, load, make_normalise_tests

DOC_ROW = {  # supersend-events.txt, "List Events" response
    "id": "event-uuid", "type": "sent", "channel": "email", "date": "2025-11-27T10:30:00Z", "sequence_step": 1,
    "opened": True, "clicked": False, "replied": False, "bounced": False, "autoresponse": False,
    "opens": 2, "clicks": 0, "replies": 0, "unsubscribes": 0, "subject": "Following up on our conversation",
    "email_id": "msg-uuid", "thread_id": "thread-uuid",
    "contact": {"id": "contact-uuid", "email": "Contact@Example.com", "first_name": "John", "last_name": "Doe"},
    "campaign": {"id": "campaign-uuid", "name": "Q4 Outreach"},
    "campaign_id": "campaign-uuid", "contact_id": "contact-uuid", "sender_id": "sender-uuid",
    "created_at": "2025-11-27T10:30:00Z", "updated_at": "2025-11-27T12:00:00Z",
}  # fmt: skip


def _normalise(raw, observed):
    return normalise(raw, source="acme", observed_at=observed)


TestStandard = make_normalise_tests(
    lambda: load("supersend", "events.json")["data"], _normalise, bad_fields={"id", "date", "type"}
)


def test_a_sent_row_with_opened_true_yields_sent_and_opened_and_the_campaign_name():
    out = _normalise(DOC_ROW, OBSERVED)
    events = [o for o in out if isinstance(o, EmailEvent)]
    assert [e.type for e in events] == [EventType.SENT, EventType.OPENED]
    assert {e.message_id for e in events} == {"msg-uuid"}
    assert events[1].occurred_at.isoformat() == "2025-11-27T12:00:00+00:00"  # the flag's time: when the row changed
    assert events[0].email == "contact@example.com"
    attrs = events[0].attributes
    assert (attrs[ATTR_REPORTS_DELIVERY], attrs[ATTR_OPENS_COUNTER], attrs[ATTR_CLICKS_COUNTER]) == (False, 2, 0)
    [campaign] = [o for o in out if isinstance(o, CampaignMetadata)]
    assert (campaign.campaign_id, campaign.name) == ("campaign-uuid", "Q4 Outreach")


def test_the_same_fact_from_two_rows_is_one_event_id():
    from_flag = [e for e in _normalise(DOC_ROW, OBSERVED) if isinstance(e, EmailEvent) and e.type is EventType.OPENED]
    open_row = {**DOC_ROW, "id": "other-row", "type": "open", "date": "2025-11-27T11:00:00Z"}
    from_row = [e for e in _normalise(open_row, OBSERVED) if isinstance(e, EmailEvent) and e.type is EventType.OPENED]
    assert from_flag[0].event_id == from_row[0].event_id


def test_message_id_falls_back_to_the_row_id_and_non_email_types_are_dropped():
    events = [
        o for o in _normalise({**DOC_ROW, "email_id": None, "opened": False}, OBSERVED) if isinstance(o, EmailEvent)
    ]
    assert {e.message_id for e in events} == {"event-uuid"}
    assert _normalise({**DOC_ROW, "type": "connection_request", "channel": "linkedin"}, OBSERVED) == []
