"""SMTPeter simulator: access token, day windows (end exclusive, month cap, defaults), selectors, duplicates, late events."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from mailpulse.simulators import Simulator
from mailpulse.simulators.smtpeter import resolve_window
from tests.simulators.conftest import Served

TAGS = "/v1/events/tags/newsletter"


def _day(event: dict) -> str:
    return event["data"]["time"][:10]


async def test_a_missing_token_is_401_a_wrong_one_403_and_a_revoked_one_401(served: Served, sim: Simulator) -> None:
    missing = await served.get("smtpeter", TAGS, auth=False)
    wrong = await served.get("smtpeter", TAGS, auth=False, access_token="guess")
    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert "error" in missing.json() and "error" in wrong.json()
    sim.faults.revoke("smtpeter")
    assert (await served.get("smtpeter", TAGS)).status_code == 401
    sim.faults.restore("smtpeter")
    assert (await served.get("smtpeter", TAGS)).status_code == 200


async def test_end_is_exclusive_and_a_one_day_window_holds_exactly_that_day(served: Served, sim: Simulator) -> None:
    truth = sim.snapshot("smtpeter", tags=["newsletter"])
    day = Counter(_day(e) for e in truth).most_common(1)[0][0]
    d = date.fromisoformat(day)
    got = (await served.get("smtpeter", TAGS, start=day, end=str(d + timedelta(days=1)))).json()
    assert got == [e for e in truth if _day(e) == day]
    assert (await served.get("smtpeter", TAGS, start=day, end=day)).json() == []


async def test_events_come_in_time_order_with_the_documented_fields(served: Served) -> None:
    events = (await served.get("smtpeter", "/v1/events/template/42", start="2026-11-01", end="2026-11-05")).json()
    assert events
    times = [e["data"]["time"] for e in events]
    assert times == sorted(times)
    for e in events:
        assert e["event"] in ("attempt", "delivery", "failure", "bounce", "open", "click", "response", "abuse")
        assert {"id", "time", "recipient", "tags", "templateid"} <= set(e["data"])
        assert isinstance(e["data"]["tags"], str)
    clicks = [e for e in events if e["event"] == "click"]
    assert clicks and all(e["data"]["url"] and e["data"]["destination"] for e in clicks)


def test_the_window_rules_of_the_doc() -> None:
    default = (date(2000, 1, 1), date(2000, 2, 1))
    assert resolve_window(None, None, default) == default
    assert resolve_window(date(2026, 10, 15), None, default) == (date(2026, 10, 15), date(2026, 11, 15))
    assert resolve_window(None, date(2026, 11, 4), default) == (date(2026, 10, 4), date(2026, 11, 4))
    # Longer than a month: shortened, the start leading.
    assert resolve_window(date(2026, 10, 15), date(2027, 1, 1), default) == (date(2026, 10, 15), date(2026, 11, 15))
    assert resolve_window(date(2026, 1, 31), None, default) == (date(2026, 1, 31), date(2026, 2, 28))


async def test_the_month_cap_is_applied_by_the_server(served: Served, sim: Simulator) -> None:
    sim.advance(timedelta(days=40))
    capped = (await served.get("smtpeter", TAGS, start="2026-11-02", end="2027-02-01")).json()
    month = (await served.get("smtpeter", TAGS, start="2026-11-02", end="2026-12-02")).json()
    assert capped == month and capped
    assert all("2026-11-02" <= _day(e) < "2026-12-02" for e in capped)
    start_only = (await served.get("smtpeter", TAGS, start="2026-11-02")).json()
    assert start_only == month


async def test_default_windows_last_month_for_selectors_and_from_sending_for_a_message(
    served: Served, sim: Simulator
) -> None:
    truth = sim.snapshot("smtpeter", tags=["newsletter"])
    assert (await served.get("smtpeter", TAGS)).json() == truth  # all within the last month up to today
    message = truth[0]["data"]["id"]
    by_id = (await served.get("smtpeter", f"/v1/events/messageid/{message}")).json()
    assert by_id == [e for e in truth if e["data"]["id"] == message]


async def test_bad_dates_are_a_400(served: Served) -> None:
    for params in ({"start": "2026-11"}, {"end": "yesterday"}, {"start": "2026-11-05", "end": "2026-11-01"}):
        r = await served.get("smtpeter", TAGS, **params)
        assert r.status_code == 400 and "error" in r.json()


async def test_selectors_tags_all_of_them_template_email_and_the_tags_filter(served: Served, sim: Simulator) -> None:
    truth = sim.snapshot("smtpeter")
    window = {"start": "2026-11-01", "end": "2026-11-05"}
    both = (await served.get("smtpeter", "/v1/events/tags/newsletter;weekly", **window)).json()
    assert both and both == [e for e in truth if {"newsletter", "weekly"} <= set(e["data"]["tags"].split(";"))]
    template = (await served.get("smtpeter", "/v1/events/template/42", **window)).json()
    assert template == [e for e in truth if e["data"]["templateid"] == 42]
    filtered = (await served.get("smtpeter", "/v1/events/template/42", tags="promo", **window)).json()
    assert filtered and filtered == [e for e in template if "promo" in e["data"]["tags"].split(";")]
    address = truth[0]["data"]["recipient"]
    by_email = (await served.get("smtpeter", f"/v1/events/email/{address}", **window)).json()
    assert by_email == [e for e in truth if e["data"]["recipient"] == address]
    assert (await served.get("smtpeter", "/v1/events/colour/blue")).status_code == 404


def test_the_dev_selectors_have_events_and_every_event_type_occurs(sim: Simulator) -> None:
    sim.advance(timedelta(days=3))
    assert sim.snapshot("smtpeter", tags=["newsletter"])
    assert sim.snapshot("smtpeter", template=42)
    types = Counter(e["event"] for e in sim.snapshot("smtpeter"))
    assert set(types) == {"attempt", "delivery", "failure", "bounce", "open", "click", "response", "abuse"}


def test_identical_duplicate_events_exist_as_in_real_logs(sim: Simulator) -> None:
    events = sim.snapshot("smtpeter")
    keyed = Counter(repr(sorted(e["data"].items())) + e["event"] for e in events)
    assert any(n > 1 for n in keyed.values())


def test_failures_carry_hard_and_soft_statuses(sim: Simulator) -> None:
    sim.advance(timedelta(days=5))
    statuses = {e["data"]["status"][0] for e in sim.snapshot("smtpeter") if e["event"] == "failure"}
    assert statuses == {"4", "5"}


async def test_late_opens_appear_as_the_clock_advances(served: Served, sim: Simulator) -> None:
    today = str(sim.now.date())
    tomorrow = str(sim.now.date() + timedelta(days=1))
    before = (await served.get("smtpeter", TAGS, start=today, end=tomorrow)).json()
    sim.advance(timedelta(hours=20))
    after = (await served.get("smtpeter", TAGS, start=today, end=tomorrow)).json()
    assert after[: len(before)] == before and len(after) > len(before)
    sent_before = {e["data"]["id"] for e in sim.snapshot("smtpeter", end=today) if e["event"] == "attempt"}
    late_opens = [e for e in after if e["event"] == "open" and e["data"]["id"] in sent_before]
    assert late_opens  # opens of messages sent on earlier days


async def test_percent_encoded_selector_values_are_decoded(served: Served, sim: Simulator) -> None:
    window = {"start": "2026-11-01", "end": "2026-11-05"}
    plain = (await served.get("smtpeter", "/v1/events/tags/newsletter;weekly", **window)).json()
    encoded = (await served.get("smtpeter", "/v1/events/tags/newsletter%3Bweekly", **window)).json()
    assert plain and encoded == plain
    address = sim.snapshot("smtpeter")[0]["data"]["recipient"]
    assert (await served.get("smtpeter", "/v1/events/email/" + address.replace("@", "%40"), **window)).json()
