"""SmartCQ simulator: auth, the strict ``since`` cursor, ordering, limits, filters, blasts, mutation, contacts."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest

from mailpulse.simulators import Simulator
from tests.simulators.conftest import Served

SENDS = "/api/v1/sends"
CONTACTS = "/api/v1/contacts"


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_sends_without_or_with_a_wrong_key_are_refused_with_a_json_error(served: Served) -> None:
    missing = await served.get("smartcq", SENDS, auth=False)
    wrong = await served.client.get(served.urls["smartcq"] + SENDS, headers={"Authorization": "Bearer nope"})
    for r in (missing, wrong):
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
    assert (await served.get("smartcq", CONTACTS, auth=False)).status_code == 401


async def test_since_is_strictly_greater_and_pages_ascend_with_ties_ordered_by_id(
    served: Served, sim: Simulator
) -> None:
    truth = sim.snapshot("smartcq")
    pivot = truth[len(truth) // 3]["createdAt"]
    r = await served.get("smartcq", SENDS, since=pivot, limit=500)
    page = r.json()["data"]
    expected = [s for s in truth if _ts(s["createdAt"]) > _ts(pivot)][:500]
    assert [s["id"] for s in page] == [s["id"] for s in expected]
    assert all(_ts(s["createdAt"]) > _ts(pivot) for s in page)
    keys = [(_ts(s["createdAt"]), s["id"]) for s in page]
    assert keys == sorted(keys)


async def test_limit_defaults_to_100_and_outside_1_to_500_is_a_400(served: Served) -> None:
    assert len((await served.get("smartcq", SENDS)).json()["data"]) == 100
    assert len((await served.get("smartcq", SENDS, limit=500)).json()["data"]) == 500
    for bad in ("0", "501", "abc", "-3"):
        r = await served.get("smartcq", SENDS, limit=bad)
        assert r.status_code == 400, bad
        assert "limit" in r.json()["error"]["message"]


async def test_bad_since_status_or_campaign_id_is_a_400_naming_the_parameter(served: Served) -> None:
    for params, name in (
        ({"since": "yesterday"}, "since"),
        ({"status": "read"}, "status"),
        ({"campaignId": "c01"}, "campaignId"),
    ):
        r = await served.get("smartcq", SENDS, **params)
        assert r.status_code == 400
        assert name in r.json()["error"]["message"]


async def test_next_is_the_last_created_at_and_null_on_the_last_page(served: Served, sim: Simulator) -> None:
    truth = sim.snapshot("smartcq")
    first = (await served.get("smartcq", SENDS, limit=10)).json()
    assert first["next"] == first["data"][-1]["createdAt"]
    last_instant = truth[-1]["createdAt"]
    before_last = [s for s in truth if s["createdAt"] != last_instant][-1]["createdAt"]
    tail = (await served.get("smartcq", SENDS, since=before_last, limit=500)).json()
    assert tail["next"] is None
    assert [s["id"] for s in tail["data"]] == [s["id"] for s in truth if s["createdAt"] == last_instant]


async def test_campaign_blasts_share_one_instant_and_one_instant_holds_more_than_500_sends(sim: Simulator) -> None:
    truth = sim.snapshot("smartcq")
    per_instant = Counter(s["createdAt"] for s in truth)
    giant, count = per_instant.most_common(1)[0]
    assert count > 500
    campaigns = Counter(s["campaignId"] for s in truth if s["createdAt"] == giant)
    # The instant can be split by campaign: each part fits in one page.
    assert len(campaigns) >= 2 and max(campaigns.values()) <= 500
    assert sum(1 for n in per_instant.values() if n >= 20) >= 5


async def test_a_naive_since_next_loop_loses_the_rest_of_a_run_that_straddles_a_page(
    served: Served, sim: Simulator
) -> None:
    truth = sim.snapshot("smartcq")
    seen: list[str] = []
    since = None
    straddled = 0
    while True:
        params = {"limit": 100} | ({"since": since} if since else {})
        body = (await served.get("smartcq", SENDS, **params)).json()
        seen += [s["id"] for s in body["data"]]
        if body["next"] is None:
            break
        # A run straddles the boundary when the next send in the truth has the same createdAt.
        straddled += sum(1 for s in truth if s["createdAt"] == body["next"]) > sum(
            1 for s in body["data"] if s["createdAt"] == body["next"]
        )
        since = body["next"]
    assert straddled > 0
    assert len(seen) == len(set(seen)) < len(truth)  # what a poller must not do: it skips the rest of each run


async def test_the_giant_instant_is_fully_readable_through_campaign_filters(served: Served, sim: Simulator) -> None:
    truth = sim.snapshot("smartcq")
    giant, _ = Counter(s["createdAt"] for s in truth).most_common(1)[0]
    members = [s for s in truth if s["createdAt"] == giant]
    just_before = (_ts(giant) - timedelta(milliseconds=1)).isoformat()
    unfiltered = (await served.get("smartcq", SENDS, since=just_before, limit=500)).json()
    assert len(unfiltered["data"]) == 500 and unfiltered["next"] == giant
    got: list[str] = []
    for campaign in sorted({s["campaignId"] for s in members}):
        body = (await served.get("smartcq", SENDS, since=just_before, limit=500, campaignId=campaign)).json()
        got += [s["id"] for s in body["data"] if s["createdAt"] == giant]
    assert sorted(got) == sorted(s["id"] for s in members)


async def test_status_and_campaign_filters_return_exactly_the_matching_sends(served: Served, sim: Simulator) -> None:
    truth = sim.snapshot("smartcq")
    bounced = (await served.get("smartcq", SENDS, status="bounced", limit=500)).json()["data"]
    assert [s["id"] for s in bounced] == [s["id"] for s in truth if s["status"] == "bounced"]
    assert bounced and all(s["error"] for s in bounced)
    campaign = Counter(s["campaignId"] for s in truth).most_common(3)[-1][0]
    body = (await served.get("smartcq", SENDS, campaignId=campaign, limit=500)).json()
    assert [s["id"] for s in body["data"]] == [s["id"] for s in truth if s["campaignId"] == campaign]


async def test_sends_mutate_as_the_clock_advances_without_changing_created_at(served: Served, sim: Simulator) -> None:
    before = {s["id"]: s for s in sim.snapshot("smartcq")}
    sim.advance(timedelta(days=2))
    after = {s["id"]: s for s in sim.snapshot("smartcq")}
    assert set(before) < set(after)  # new sends arrived, none vanished
    changed = [i for i in before if before[i] != after[i]]
    assert changed
    for i in changed:
        assert after[i]["createdAt"] == before[i]["createdAt"]
    opened = [i for i in changed if before[i]["openedAt"] is None and after[i]["openedAt"] is not None]
    assert opened and all(after[i]["status"] in ("opened", "clicked", "complained") for i in opened)
    # The API serves the new state too.
    one = after[opened[0]]
    body = (
        await served.get(
            "smartcq",
            SENDS,
            since=(_ts(one["createdAt"]) - timedelta(milliseconds=1)).isoformat(),
            campaignId=one["campaignId"],
            limit=500,
        )
    ).json()
    assert one in body["data"]


def test_all_send_statuses_of_the_doc_occur(sim: Simulator) -> None:
    statuses = {s["status"] for s in sim.snapshot("smartcq")}
    sim.advance(timedelta(days=3))
    statuses |= {s["status"] for s in sim.snapshot("smartcq")}
    assert statuses >= {
        "queued",
        "delivered",
        "opened",
        "clicked",
        "bounced",
        "suppressed",
        "failed",
        "delayed",
        "complained",
    }


async def test_contacts_are_newest_first_and_the_cursor_is_strictly_older(served: Served, sim: Simulator) -> None:
    truth = sim.snapshot("smartcq", kind="contacts")
    first = (await served.get("smartcq", CONTACTS)).json()
    assert len(first["data"]) == 50
    assert [c["id"] for c in first["data"]] == [c["id"] for c in truth[:50]]
    assert first["next"] == first["data"][-1]["createdAt"]
    second = (await served.get("smartcq", CONTACTS, cursor=first["next"], limit=200)).json()
    assert all(_ts(c["createdAt"]) < _ts(first["next"]) for c in second["data"])
    keys = [(_ts(c["createdAt"]), c["id"]) for c in first["data"] + second["data"]]
    assert keys == sorted(keys, reverse=True)


async def test_contact_limit_bounds_filters_and_archived(served: Served, sim: Simulator) -> None:
    for bad in ("0", "201"):
        assert (await served.get("smartcq", CONTACTS, limit=bad)).status_code == 400
    assert (await served.get("smartcq", CONTACTS, stage="boss")).status_code == 400
    sim.advance(timedelta(days=7))  # archivals and status changes have happened
    every = sim.snapshot("smartcq", kind="contacts", include_archived=True)
    default = sim.snapshot("smartcq", kind="contacts")
    assert len(default) < len(every) and all(c["archivedAt"] is None for c in default)
    pending = (await served.get("smartcq", CONTACTS, emailStatus="bounced", limit=200)).json()["data"]
    assert pending and [c["id"] for c in pending] == [c["id"] for c in default if c["emailStatus"] == "bounced"][:200]
    archived = (await served.get("smartcq", CONTACTS, includeArchived="true", limit=200)).json()["data"]
    assert [c["id"] for c in archived] == [c["id"] for c in every[:200]]


async def test_a_contact_is_read_by_id_and_an_unknown_id_is_a_404(served: Served, sim: Simulator) -> None:
    contact = sim.snapshot("smartcq", kind="contacts")[5]
    r = await served.get("smartcq", f"{CONTACTS}/{contact['id']}")
    assert r.status_code == 200 and r.json() == contact
    missing = await served.get("smartcq", f"{CONTACTS}/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_contacts_follow_hard_bounces_and_change_updated_at(sim: Simulator) -> None:
    before = {c["id"]: c for c in sim.snapshot("smartcq", kind="contacts", include_archived=True)}
    sim.advance(timedelta(days=5))
    after = {c["id"]: c for c in sim.snapshot("smartcq", kind="contacts", include_archived=True)}
    changed = [i for i in before if before[i] != after[i]]
    assert changed and all(after[i]["updatedAt"] > before[i]["updatedAt"] for i in changed)
    bounced_contacts = {
        s["contactId"] for s in sim.snapshot("smartcq") if s["status"] == "bounced" and s["error"].startswith("5")
    }
    assert bounced_contacts and any(after[c]["emailStatus"] == "bounced" for c in bounced_contacts if c in after)


@pytest.mark.parametrize("size", [50, 600])
def test_small_datasets_still_generate_blasts_and_contacts(size: int) -> None:
    from mailpulse.simulators import SimulatorConfig

    sim = Simulator(SimulatorConfig(seed=3, size=size))
    sends = sim.snapshot("smartcq")
    assert 0 < len(sends) <= size
    assert sim.snapshot("smartcq", kind="contacts")


def test_every_contact_email_status_and_stage_of_the_doc_occurs(sim: Simulator) -> None:
    from mailpulse.simulators.smartcq import EMAIL_STATUSES, STAGES

    seen_status: set[str] = set()
    seen_stage: set[str] = set()
    for _ in range(3):
        contacts = sim.snapshot("smartcq", kind="contacts", include_archived=True)
        seen_status |= {c["emailStatus"] for c in contacts}
        seen_stage |= {c["stage"] for c in contacts}
        sim.advance(timedelta(days=3))
    assert seen_status == set(EMAIL_STATUSES) and seen_stage == set(STAGES)
