"""SmarterSends normalisation on recorded pages."""

from __future__ import annotations

import pytest

from mailpulse.connectors.errors import NormalisationError
from mailpulse.connectors.providers.smartersends import normalise_calendar_event, normalise_campaign, normalise_usage
from tests.connectors.providers.suite import OBSERVED, load


def test_exported_sent_campaigns_become_metadata_and_unsent_ones_wait_for_their_id():
    rows = load("smartersends", "campaigns-export.json")
    published = skipped = dlq = 0
    for row in rows:
        try:
            out = normalise_campaign(row, source="acme", observed_at=OBSERVED)
        except NormalisationError as exc:
            assert exc.reason.split(":")[0] in {"sent_mailing_id", "send_time", "status"}
            dlq += 1
            continue
        if out:
            published += 1
            [c] = out
            assert c.campaign_id == str(row["sent_mailing_id"]) and c.name == row["name"]
            assert c.key == f"acme:{row['sent_mailing_id']}"
        else:
            skipped += 1
            assert row["sent_mailing_id"] is None
    assert published and (skipped or dlq)


def test_usage_report_keeps_metrics_and_groups_and_rejects_non_numbers():
    body = load("smartersends", "conversations.json")
    report = normalise_usage(body, source="acme", start_date="2026-10-05", end_date="2026-11-04", observed_at=OBSERVED)
    assert report.metrics == body["metrics"] and report.by_group == body["by_group"]
    assert report.key == "acme:conversations:2026-10-05:2026-11-04"
    with pytest.raises(NormalisationError, match="metrics.total_conversations"):
        normalise_usage(
            {**body, "metrics": {**body["metrics"], "total_conversations": "many"}},
            source="a",
            start_date="x",
            end_date="y",
            observed_at=OBSERVED,
        )


def test_calendar_entries_normalise_or_name_the_bad_field():
    good = bad = 0
    for raw in load("smartersends", "calendar.json"):
        try:
            entry = normalise_calendar_event(raw, source="acme", observed_at=OBSERVED)
            good += 1
            assert entry.calendar_event_id == str(raw["id"])
            assert (entry.recurrence is not None) == bool(raw["repeats"])
        except NormalisationError as exc:
            assert exc.reason.split(":")[0] in {"id", "start_date", "repeat_type"}
            bad += 1
    assert good


def test_the_usage_gauge_moves_after_the_commit_not_while_normalising():
    from prometheus_client import REGISTRY

    from mailpulse.connectors.providers.smartersends import SmarterSendsUsage

    class Source:
        name = "gauge-acme"
        lookback = None

    stream = SmarterSendsUsage(Source(), client=None)  # type: ignore[arg-type]
    body = load("smartersends", "conversations.json")
    labels = {"source": "gauge-acme", "metric": "total_conversations"}
    outputs = stream.normalise_record((("2026-10-05", "2026-11-04"), body), OBSERVED)
    assert REGISTRY.get_sample_value("mailpulse_smartersends_conversations", labels) is None
    stream.after_commit(outputs)
    assert (
        REGISTRY.get_sample_value("mailpulse_smartersends_conversations", labels)
        == body["metrics"]["total_conversations"]
    )
