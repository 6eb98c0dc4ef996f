"""SmartCQ normalisation on recorded pages and on the doc's example."""

from __future__ import annotations

from mailpulse.connectors.providers.smartcq import normalise, normalise_contact
from mailpulse.topics.events import EventType
from tests.connectors.providers.suite import OBSERVED, load, make_normalise_tests

DOC_EXAMPLE = {  # smartcq-sends.txt, "Risposta 200"
    "id": "00000000-0000-0000-0000-000000000a01",
    "campaignId": "00000000-0000-0000-0000-000000000c01",
    "contactId": "00000000-0000-0000-0000-000000000001",
    "status": "delivered",
    "sentAt": "2026-05-10T08:00:00.000Z",
    "deliveredAt": "2026-05-10T08:00:03.000Z",
    "openedAt": None,
    "clickedAt": None,
    "error": None,
    "createdAt": "2026-05-10T08:00:00.000Z",
}


def _normalise(raw, observed):
    return normalise(raw, source="acme", observed_at=observed)


TestSendsStandard = make_normalise_tests(
    lambda: load("smartcq", "sends.json")["data"], _normalise, bad_fields={"id", "createdAt", "status"}
)
TestContactsStandard = make_normalise_tests(
    lambda: load("smartcq", "contacts.json")["data"],
    lambda raw, observed: [normalise_contact(raw, source="acme", observed_at=observed)],
    bad_fields={"id", "updatedAt", "emailStatus"},
)
# Contacts publish no events: the id checks of the standard suite do not apply.
del TestContactsStandard.test_event_ids_are_unique_and_stable_across_reads
del TestContactsStandard.test_events_survive_the_topic_codec


def test_doc_example_yields_one_event_per_timestamp_with_ids_from_the_send():
    events = _normalise(DOC_EXAMPLE, OBSERVED)
    assert [(e.type, e.occurred_at.isoformat()) for e in events] == [
        (EventType.SENT, "2026-05-10T08:00:00+00:00"),
        (EventType.DELIVERED, "2026-05-10T08:00:03+00:00"),
    ]
    assert {e.message_id for e in events} == {DOC_EXAMPLE["id"]}
    assert {e.campaign_id for e in events} == {DOC_EXAMPLE["campaignId"]}
    assert {e.contact_id for e in events} == {DOC_EXAMPLE["contactId"]}
    assert events[0].key == f"acme:{DOC_EXAMPLE['id']}"


def test_status_facts_map_delayed_to_deferred_and_keep_the_bounce_text():
    delayed = _normalise(
        {**DOC_EXAMPLE, "status": "delayed", "deliveredAt": None, "error": "451 4.7.1 Greylisting"}, OBSERVED
    )
    assert [e.type for e in delayed] == [EventType.SENT, EventType.DEFERRED]
    assert delayed[1].attributes["error"] == "451 4.7.1 Greylisting"
    bounced = _normalise(
        {**DOC_EXAMPLE, "status": "bounced", "deliveredAt": None, "error": "550 5.1.1 Utente sconosciuto"}, OBSERVED
    )
    assert bounced[-1].type is EventType.BOUNCED
    assert (bounced[-1].bounce.code, bounced[-1].bounce.reason) == ("5.1.1", "550 5.1.1 Utente sconosciuto")


def test_a_later_read_of_the_same_send_repeats_its_old_fact_ids_and_adds_the_new_one():
    first = {e.event_id for e in _normalise(DOC_EXAMPLE, OBSERVED)}
    opened = _normalise({**DOC_EXAMPLE, "status": "opened", "openedAt": "2026-05-10T09:00:00.000Z"}, OBSERVED)
    assert first < {e.event_id for e in opened}
    assert len({e.event_id for e in opened} - first) == 1


def test_contact_is_lower_cased_and_keeps_its_other_fields():
    record = load("smartcq", "contacts.json")["data"][0]
    contact = normalise_contact({**record, "email": "Mario.Rossi@Example.COM"}, source="acme", observed_at=OBSERVED)
    assert contact.email == "mario.rossi@example.com"
    assert contact.key == f"acme:{record['id']}"
    assert contact.attributes["stage"] == record["stage"]


def test_the_hot_path_event_id_is_the_contract_make_event_id():
    from mailpulse.topics.events import make_event_id

    assert _normalise(DOC_EXAMPLE, OBSERVED)[0].event_id == make_event_id("smartcq", "acme", DOC_EXAMPLE["id"], "sent")
