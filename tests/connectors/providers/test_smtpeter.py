"""SMTPeter normalisation on recorded pages."""

from __future__ import annotations

from mailpulse.connectors.providers.smtpeter import normalise, with_ordinals
from mailpulse.topics.events import BounceKind, EventType
from tests.connectors.providers.suite import OBSERVED, load, make_normalise_tests

CAMPAIGN = "template:42"


def _records():
    return with_ordinals(CAMPAIGN, load("smtpeter", "events-template-42.json"))


def _normalise(raw, observed):
    campaign, ordinal, record = raw
    return [normalise(record, source="acme", campaign_id=campaign, observed_at=observed, ordinal=ordinal)]


TestStandard = make_normalise_tests(
    _records, _normalise, bad_fields={"event", "data.id", "data.time"}, fact_is_message_and_type=False
)

FAILURE = {
    "event": "failure",
    "data": {
        "id": "m-1", "time": "2026-11-02 10:00:00", "recipient": "Someone@Example.org", "attempt": 2, "code": 550,
        "status": "5.1.1", "description": "user unknown", "state": "RCPT", "tags": "newsletter;weekly", "templateid": 42, "x-new": "kept",
    },
}  # fmt: skip


def test_failure_is_a_hard_or_soft_bounce_by_its_status_with_code_and_description():
    hard = normalise(FAILURE, source="acme", campaign_id=CAMPAIGN, observed_at=OBSERVED)
    assert hard.type is EventType.BOUNCED
    assert (hard.bounce.kind, hard.bounce.code, hard.bounce.reason) == (BounceKind.HARD, "5.1.1", "user unknown")
    soft = normalise(
        {"event": "failure", "data": {**FAILURE["data"], "status": "4.2.2"}},
        source="acme",
        campaign_id=CAMPAIGN,
        observed_at=OBSERVED,
    )
    assert soft.bounce.kind is BounceKind.SOFT
    assert hard.email == "someone@example.org"
    assert hard.occurred_at.isoformat() == "2026-11-02T10:00:00+00:00"
    # Unknown fields are kept; tags become a list; the selector is the campaign.
    assert hard.attributes["x-new"] == "kept" and hard.attributes["tags"] == ["newsletter", "weekly"]
    assert hard.attributes["code"] == 550 and hard.campaign_id == CAMPAIGN


def test_identical_records_get_distinct_ids_by_copy_number_and_the_same_ids_on_reread():
    click = {
        "event": "open",
        "data": {"id": "m-2", "time": "2026-11-02 10:00:00", "ip": "192.0.2.1", "tags": "newsletter"},
    }
    page = [click, FAILURE, dict(click)]  # a pixel fetched twice in the same second: two opens
    first = [_normalise(r, OBSERVED)[0].event_id for r in with_ordinals(CAMPAIGN, page)]
    again = [_normalise(r, OBSERVED)[0].event_id for r in with_ordinals(CAMPAIGN, list(reversed(page)))]
    assert len(set(first)) == 3
    assert set(first) == set(again)


def test_every_event_name_maps_to_the_contract():
    expected = {
        "attempt": "sent",
        "delivery": "delivered",
        "open": "opened",
        "click": "clicked",
        "bounce": "bounced",
        "response": "replied",
        "abuse": "complained",
    }
    for name, type_ in expected.items():
        event = normalise(
            {"event": name, "data": {"id": "m", "time": "2026-11-02 10:00:00", "url": "https://x.example/"}},
            source="a",
            campaign_id=CAMPAIGN,
            observed_at=OBSERVED,
        )
        assert event.type.value == type_
        assert (event.url is not None) == (name == "click")
