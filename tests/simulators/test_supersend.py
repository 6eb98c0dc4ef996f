"""SuperSend simulator: auth, newest-first offsets that shift as rows arrive, limit cap, filters, mutating rows."""

from __future__ import annotations

from datetime import timedelta

from mailpulse.simulators import Simulator
from tests.simulators.conftest import Served

EVENTS = "/v2/events"


async def _all(served: Served, **params: object) -> list[dict]:
    rows: list[dict] = []
    offset = 0
    while True:
        body = (await served.get("supersend", EVENTS, limit=100, offset=offset, **params)).json()
        rows += body["data"]
        if not body["pagination"]["hasMore"]:
            return rows
        offset += 100


async def test_a_missing_or_wrong_key_is_a_401_in_the_v2_envelope(served: Served) -> None:
    for r in (
        await served.get("supersend", EVENTS, auth=False),
        await served.client.get(served.urls["supersend"] + EVENTS, headers={"Authorization": "Bearer x"}),
    ):
        assert r.status_code == 401
        body = r.json()
        assert (
            body["success"] is False
            and body["error"]["code"] == "UNAUTHORIZED"
            and body["request_id"].startswith("req_")
        )


async def test_rows_are_newest_first_and_the_envelope_follows_the_doc(served: Served, sim: Simulator) -> None:
    body = (await served.get("supersend", EVENTS)).json()
    assert body["success"] is True and body["request_id"].startswith("req_")
    truth = sim.snapshot("supersend")
    assert body["pagination"] == {"total": len(truth), "limit": 50, "offset": 0, "hasMore": True}
    assert body["data"] == truth[:50]
    keys = [(r["date"], r["id"]) for r in truth]
    assert keys == sorted(keys, reverse=True)
    assert {"contact", "campaign", "sender", "email_id", "opens", "clicks", "updated_at"} <= set(truth[0])


async def test_limit_above_100_or_a_bad_offset_is_a_400(served: Served) -> None:
    assert len((await served.get("supersend", EVENTS, limit=100)).json()["data"]) == 100
    for params in ({"limit": 101}, {"limit": 0}, {"offset": -1}, {"limit": "many"}):
        r = await served.get("supersend", EVENTS, **params)
        assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_offset_paging_reads_every_row_once_while_the_clock_stands_still(served: Served, sim: Simulator) -> None:
    rows = await _all(served)
    assert [r["id"] for r in rows] == [r["id"] for r in sim.snapshot("supersend")]
    assert len({r["id"] for r in rows}) == len(rows)


async def test_rows_arriving_during_a_pass_shift_offsets_unless_the_window_end_is_fixed(
    served: Served, sim: Simulator
) -> None:
    first = (await served.get("supersend", EVENTS, limit=50, offset=0)).json()["data"]
    end = sim.now.isoformat()
    sim.advance(timedelta(hours=2))  # new rows arrive at the top of the list
    shifted = (await served.get("supersend", EVENTS, limit=50, offset=50)).json()["data"]
    assert {r["id"] for r in shifted} & {r["id"] for r in first}  # page 2 repeats rows of page 1
    fixed = (await served.get("supersend", EVENTS, limit=50, offset=50, end_date=end)).json()["data"]
    truth_then = [r["id"] for r in sim.snapshot("supersend") if r["date"] <= end.replace("+00:00", "Z")]
    assert [r["id"] for r in fixed] == truth_then[50:100]
    assert not {r["id"] for r in fixed} & {r["id"] for r in first}


async def test_filters_channel_type_click_campaign_team_contact_and_dates(served: Served, sim: Simulator) -> None:
    truth = sim.snapshot("supersend")
    linkedin = await _all(served, channel="linkedin")
    assert linkedin and linkedin == [r for r in truth if r["channel"] == "linkedin"]
    clicks = await _all(served, type="click")
    assert clicks == [r for r in truth if r["type"] == "open"]  # "The click type filter maps to open events."
    assert any(r["clicked"] for r in clicks) and not all(r["clicked"] for r in clicks)
    campaign = truth[0]["campaign_id"]
    assert await _all(served, CampaignId=campaign) == [r for r in truth if r["campaign_id"] == campaign]
    team = sim.snapshot("supersend", kind="teams")[1]["id"]
    team_campaigns = {c["id"] for c in sim.snapshot("supersend", kind="campaigns") if c["team_id"] == team}
    by_team = await _all(served, TeamId=team)
    assert by_team and by_team == [r for r in truth if r["campaign_id"] in team_campaigns]
    contact = truth[3]["contact_id"]
    assert await _all(served, ContactId=contact) == [r for r in truth if r["contact_id"] == contact]
    start, end = "2026-11-02T00:00:00Z", "2026-11-02T12:00:00Z"
    window = await _all(served, start_date=start, end_date=end)
    assert window and window == [r for r in truth if start <= r["date"] <= end]


async def test_bad_type_channel_or_date_is_a_400(served: Served) -> None:
    for params in ({"type": "teleport"}, {"channel": "pigeon"}, {"start_date": "soon"}):
        assert (await served.get("supersend", EVENTS, **params)).status_code == 400


def test_sent_rows_mutate_and_new_rows_keep_arriving(sim: Simulator) -> None:
    before = {r["id"]: r for r in sim.snapshot("supersend")}
    sim.advance(timedelta(days=2))
    after = {r["id"]: r for r in sim.snapshot("supersend")}
    assert set(before) < set(after)
    grown = [i for i in before if after[i]["opens"] > before[i]["opens"]]
    assert grown and all(after[i]["type"] == "sent" and after[i]["opened"] for i in grown)
    assert all(after[i]["updated_at"] > before[i]["updated_at"] for i in grown)
    assert all(after[i]["date"] == before[i]["date"] for i in before)
    bounced = [r for r in after.values() if r["type"] == "sent" and r["bounced"]]
    assert bounced


def test_channels_are_mostly_email_with_some_linkedin(sim: Simulator) -> None:
    rows = sim.snapshot("supersend")
    email = sum(r["channel"] == "email" for r in rows)
    linkedin = sum(r["channel"] == "linkedin" for r in rows)
    assert email + linkedin == len(rows) and email > 5 * linkedin > 0
    assert all(r["email_id"] is None for r in rows if r["channel"] == "linkedin")


async def test_one_event_is_read_by_id(served: Served, sim: Simulator) -> None:
    row = sim.snapshot("supersend")[7]
    body = (await served.get("supersend", f"{EVENTS}/{row['id']}")).json()
    assert body["success"] and body["data"] == row
    assert (await served.get("supersend", f"{EVENTS}/nope")).status_code == 404
