"""The usage and calendar records match their JSON Schemas (what the topics promise downstream)."""

from __future__ import annotations

import jsonschema
import orjson

from mailpulse.connectors.providers.smartersends import normalise_calendar_event, normalise_usage
from mailpulse.connectors.records import CalendarEvent, UsageReport
from mailpulse.topics.contracts import CALENDAR, USAGE, load_schema
from tests.connectors.providers.suite import OBSERVED, load


def _validator(spec):
    schema = load_schema(spec.value_schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_usage_reports_from_recorded_pages_match_the_schema():
    report = normalise_usage(
        load("smartersends", "conversations.json"),
        source="acme",
        start_date="2026-10-05",
        end_date="2026-11-04",
        observed_at=OBSERVED,
    )
    _validator(USAGE).validate(orjson.loads(orjson.dumps(report.to_dict())))
    assert set(load_schema(USAGE.value_schema)["properties"]) == set(report.to_dict())


def test_calendar_entries_from_recorded_pages_match_the_schema():
    validator = _validator(CALENDAR)
    checked = 0
    for raw in load("smartersends", "calendar.json"):
        try:
            entry = normalise_calendar_event(raw, source="acme", observed_at=OBSERVED)
        except Exception:
            continue
        validator.validate(orjson.loads(orjson.dumps(entry.to_dict())))
        checked += 1
    assert checked > 5
    assert set(load_schema(CALENDAR.value_schema)["properties"]) == set(entry.to_dict())


def test_the_schemas_reject_what_the_records_never_produce():
    bad = UsageReport(
        "a", "smartersends", "conversations", "2026-10-05", "2026-11-04", OBSERVED, metrics={"x": 1}
    ).to_dict()
    bad["metrics"]["x"] = "many"
    errors = list(_validator(USAGE).iter_errors(bad))
    assert errors and "many" in errors[0].message
    entry = CalendarEvent("a", "smartersends", "1", "n", OBSERVED, OBSERVED).to_dict()
    entry["surprise"] = True
    assert list(_validator(CALENDAR).iter_errors(entry))
