"""The committed dashboard is what deploy/grafana/dashboard.py generates, and it imports as is."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "grafana" / "mailpulse.json"


def _generator():
    spec = importlib.util.spec_from_file_location("mailpulse_dashboard", ROOT / "deploy" / "grafana" / "dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_dashboard_is_what_the_code_generates():
    assert COMMITTED.read_text() == _generator().dashboard_json(), (
        "deploy/grafana/mailpulse.json is stale: run python deploy/grafana/dashboard.py > deploy/grafana/mailpulse.json"
    )


def _panels() -> list[dict]:
    return json.loads(COMMITTED.read_text())["panels"]


def test_dashboard_has_the_three_rows_and_unique_panel_ids():
    rows = [p["title"] for p in _panels() if p["type"] == "row"]
    assert rows == ["Deliverability", "Engagement", "Pipeline"]
    ids = [p["id"] for p in _panels()]
    assert len(ids) == len(set(ids))


def test_no_datasource_uid_is_hard_coded():
    text = COMMITTED.read_text()
    uids = set(re.findall(r'"uid": "([^"]*)"', text)) - {"mailpulse"}  # the dashboard's own uid
    assert uids == {"${datasource}"}


def test_variables_are_datasource_source_provider_campaign():
    names = [v["name"] for v in json.loads(COMMITTED.read_text())["templating"]["list"]]
    assert names[:4] == ["datasource", "provider", "source", "campaign"]


@pytest.mark.parametrize(
    "panel", [p for p in json.loads(COMMITTED.read_text())["panels"] if p["type"] != "row"], ids=lambda p: p["title"]
)
def test_every_panel_queries_prometheus_and_says_what_it_shows(panel):
    assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
    assert len(panel.get("description", "")) > 20
