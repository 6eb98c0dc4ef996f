"""SmarterSends simulator: campaign export (both routes, 405 switch, no-URL variant, expiry, download),
conversations usage, calendar."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from mailpulse.simulators import Simulator
from mailpulse.simulators.smartersends import NO_URL_MESSAGE, normalise_columns, normalise_statuses
from tests.simulators.conftest import Served

POST_PATH = "/api/usage/campaign/export"
GET_PATH = "/api/usage/campaigns/export"
WINDOW = {"start_date": "2026-10-01", "end_date": "2026-12-31"}
COLUMNS = "name,sent_mailing_id,send_time,status"


def _in_window(row: dict, lo: str = "2026-10-01 00:00:00", hi: str = "2026-12-31 23:59:59") -> bool:
    return row["send_time"] is not None and lo <= row["send_time"] <= hi


async def test_a_missing_or_wrong_key_is_a_401_unauthenticated(served: Served) -> None:
    for path in (POST_PATH, "/api/usage/conversations", "/api/events"):
        method = "POST" if path == POST_PATH else "GET"
        r = await served.request(method, "smartersends", path, auth=False, params=WINDOW)
        assert r.status_code == 401 and r.json() == {"message": "Unauthenticated."}


async def test_post_export_as_json_returns_file_metadata_and_a_url_serving_the_rows(
    served: Served, sim: Simulator
) -> None:
    r = await served.request("POST", "smartersends", POST_PATH, params={**WINDOW, "format": "json", "columns": COLUMNS})
    assert r.status_code == 200
    file = r.json()["file"]
    assert file["extension"] == "json" and file["content_type"] == "application/json"
    assert file["s3_path"].startswith("/tmp/exports/") and file["s3_path"].endswith(".json")
    assert file["expires_at"].endswith("Z") and "message" not in r.json()
    rows = (await served.client.get(file["url"])).json()  # a signed URL: no bearer key
    truth = sorted(
        (c for c in sim.snapshot("smartersends", kind="campaigns") if _in_window(c)), key=lambda c: c["send_time"]
    )
    assert rows == [{k: c[k] for k in COLUMNS.split(",")} for c in truth]
    assert any(row["sent_mailing_id"] for row in rows) and any(row["sent_mailing_id"] is None for row in rows)


async def test_post_export_takes_a_json_body_and_defaults_to_csv_with_the_default_columns(served: Served) -> None:
    r = await served.request("POST", "smartersends", POST_PATH, json=WINDOW)
    file = r.json()["file"]
    assert file["extension"] == "csv" and file["content_type"] == "text/csv"
    text = (await served.client.get(file["url"])).text
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["name", "subject", "send_time", "type", "html"]
    assert len(table) > 2


async def test_the_export_route_not_selected_by_the_setting_answers_405(served: Served, sim: Simulator) -> None:
    assert sim.settings.smartersends_export_method == "POST"
    r = await served.request("GET", "smartersends", GET_PATH, params=WINDOW)
    assert r.status_code == 405 and "not supported" in r.json()["message"]
    sim.settings.smartersends_export_method = "GET"
    assert (await served.request("POST", "smartersends", POST_PATH, params=WINDOW)).status_code == 405
    r = await served.request("GET", "smartersends", GET_PATH, params={**WINDOW, "format": "json"})
    assert r.status_code == 200 and r.json()["file"]["url"]
    sim.settings.smartersends_export_method = "both"
    assert (await served.request("POST", "smartersends", POST_PATH, params=WINDOW)).status_code == 200
    assert (await served.request("GET", "smartersends", GET_PATH, params=WINDOW)).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"end_date": "2026-12-31"}, "start_date"),
        ({"start_date": "2026-10-01"}, "end_date"),
        ({"start_date": "the first", "end_date": "2026-12-31"}, "start_date"),
        ({**WINDOW, "format": "xml"}, "format"),
        ({**WINDOW, "date_column": "deleted_at"}, "date_column"),
    ],
)
async def test_missing_or_invalid_export_parameters_are_a_422_naming_the_field(
    served: Served, params: dict, field: str
) -> None:
    r = await served.request("POST", "smartersends", POST_PATH, params=params)
    assert r.status_code == 422
    assert field in r.json()["errors"] and r.json()["message"]


async def test_the_no_url_variant_is_scripted_or_drawn(served: Served, sim: Simulator) -> None:
    sim.faults.script("smartersends", ["no-url"])
    await served.get("smartersends", "/api/events")  # a non-export request leaves the scripted no-url pending
    r = (await served.request("POST", "smartersends", POST_PATH, params=WINDOW)).json()
    assert r["message"] == NO_URL_MESSAGE and "url" not in r["file"] and r["file"]["s3_path"]
    assert "url" in (await served.request("POST", "smartersends", POST_PATH, params=WINDOW)).json()["file"]
    sim.faults.set("smartersends", no_url_rate=1.0)
    assert "url" not in (await served.request("POST", "smartersends", POST_PATH, params=WINDOW)).json()["file"]


async def test_the_download_url_expires_after_60_simulated_minutes_and_checks_its_signature(
    served: Served, sim: Simulator
) -> None:
    url = (await served.request("POST", "smartersends", POST_PATH, params={**WINDOW, "format": "json"})).json()["file"][
        "url"
    ]
    sim.advance(timedelta(minutes=59))
    assert (await served.client.get(url)).status_code == 200
    assert (await served.client.get(url.replace("signature=", "signature=0"))).status_code == 403
    sim.advance(timedelta(minutes=2))
    expired = await served.client.get(url)
    assert expired.status_code == 403 and "expired" in expired.text


async def test_status_type_and_date_column_filters(served: Served, sim: Simulator) -> None:
    sim.advance(timedelta(days=3))
    truth = sim.snapshot("smartersends", kind="campaigns")
    params = {
        **WINDOW,
        "format": "json",
        "columns": "name,status,type",
        "status": "sent, SCHEDULED,invalid_status",
        "type": "email",
    }
    url = (await served.request("POST", "smartersends", POST_PATH, params=params)).json()["file"]["url"]
    rows = (await served.client.get(url)).json()
    expected = [c for c in truth if _in_window(c) and c["status"] in ("Sent", "Scheduled") and c["type"] == "email"]
    assert sorted(r["name"] for r in rows) == sorted(c["name"] for c in expected) and rows
    by_created = {**WINDOW, "format": "json", "date_column": "created_at", "columns": "name"}
    url = (await served.request("POST", "smartersends", POST_PATH, params=by_created)).json()["file"]["url"]
    assert len((await served.client.get(url)).json()) == len(truth)  # every campaign was created in the window


def test_columns_and_statuses_are_normalised_as_documented() -> None:
    assert normalise_columns("Name, SEND TIME,bogus,name,sent mailing id") == ["name", "send_time", "sent_mailing_id"]
    assert normalise_columns("bogus") == ["name", "subject", "send_time", "type", "html"]
    assert normalise_statuses("sent,SCHEDULED,invalid_status, Sent ") == ["Sent", "Scheduled"]


def test_campaigns_move_from_scheduled_to_sent_as_the_clock_passes_their_send_time(sim: Simulator) -> None:
    before = {c["name"]: c for c in sim.snapshot("smartersends", kind="campaigns")}
    sim.advance(timedelta(days=6))
    after = {c["name"]: c for c in sim.snapshot("smartersends", kind="campaigns")}
    sent_now = [n for n in before if before[n]["status"] == "Scheduled" and after[n]["status"] == "Sent"]
    assert sent_now and all(after[n]["sent_mailing_id"] for n in sent_now)
    assert len(after) > len(before)


async def test_conversations_report_as_json_and_its_csv_export(served: Served, sim: Simulator) -> None:
    body = (await served.get("smartersends", "/api/usage/conversations")).json()
    assert body == sim.snapshot("smartersends", kind="conversations")
    metrics = body["metrics"]
    assert set(metrics) == {
        "total_conversations", "active_conversations", "awaiting_reply", "unread_conversations", "at_risk", "stale",
        "reminders", "escalations", "avg_first_response_minutes", "avg_messages_per_conversation",
        "avg_sent_messages_per_conversation", "avg_received_messages_per_conversation",
    }  # fmt: skip
    assert metrics["total_conversations"] == sum(g["total_conversations"] for g in body["by_group"]) > 0
    assert {"group_id", "group_name", "avg_first_response_minutes"} <= set(body["by_group"][0])
    narrow = (
        await served.get("smartersends", "/api/usage/conversations", start_date="2026-11-03", end_date="2026-11-03")
    ).json()
    assert narrow["range"] == {"start": "2026-11-03T00:00:00Z", "end": "2026-11-03T23:59:59Z"}
    assert narrow["metrics"]["total_conversations"] < metrics["total_conversations"]
    file = (await served.get("smartersends", "/api/usage/conversations", format="csv")).json()["file"]
    text = (await served.client.get(file["url"])).text
    assert text.startswith("metric,value\ntotal_conversations,") and "\n\ngroup_id,group_name," in text
    assert (await served.get("smartersends", "/api/usage/conversations", format="pdf")).status_code == 422
    assert (await served.get("smartersends", "/api/usage/conversations", start_date="soon")).status_code == 422


async def test_conversation_metrics_move_with_the_clock(sim: Simulator) -> None:
    first = sim.snapshot("smartersends", kind="conversations", start_date="2026-10-01", end_date="2026-12-31")
    sim.advance(timedelta(days=4))
    later = sim.snapshot("smartersends", kind="conversations", start_date="2026-10-01", end_date="2026-12-31")
    assert later["metrics"] != first["metrics"]
    assert later["metrics"]["total_conversations"] > first["metrics"]["total_conversations"]


async def test_the_calendar_lists_events_that_change_over_time_and_reads_one_by_id(
    served: Served, sim: Simulator
) -> None:
    listed = (await served.get("smartersends", "/api/events")).json()
    assert listed == sim.snapshot("smartersends", kind="calendar") and listed
    assert {
        "id",
        "name",
        "start_date",
        "end_date",
        "repeats",
        "all_groups",
        "created_at",
        "updated_at",
        "groups",
    } <= set(listed[0])
    one = (await served.get("smartersends", f"/api/events/{listed[0]['id']}")).json()
    assert one == listed[0]
    assert (await served.get("smartersends", "/api/events/99999")).status_code == 404
    sim.advance(timedelta(days=7))
    later = {e["id"]: e for e in sim.snapshot("smartersends", kind="calendar")}
    before = {e["id"]: e for e in listed}
    created = set(later) - set(before)
    moved = [i for i in set(later) & set(before) if later[i]["start_date"] != before[i]["start_date"]]
    assert created and (moved or set(before) - set(later))
    assert all(later[i]["updated_at"] > before[i]["updated_at"] for i in moved)
