"""The shipped alert rules name only metrics that the code defines, and say what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import mailpulse.connectors.metrics  # noqa: F401  (registers the pollers' metrics)
from mailpulse.config import parse_duration
from mailpulse.streams.metrics import WorkerMetrics
from mailpulse.streams.statemetrics import StateCollector

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "mailpulse-alerts.yml"


def _defined_names() -> set[str]:
    names: set[str] = set()
    families = [f for registry in (REGISTRY, WorkerMetrics().registry) for f in registry.collect()]
    families += list(StateCollector.families())  # the state-derived families, by name
    for family in families:
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def _rules() -> list[dict]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_every_alert_uses_defined_metrics_and_is_actionable(rule):
    used = set(re.findall(r"\bmailpulse_[a-z0-9_]+", rule["expr"]))
    assert used, "an alert on no mailpulse metric"
    assert used <= _defined_names(), f"undefined metrics: {sorted(used - _defined_names())}"
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 40
    if "for" in rule:
        assert parse_duration(rule["for"]).total_seconds() > 0


def test_no_alert_is_defined_twice():
    keys = [(r["alert"], tuple(sorted(r["labels"].items()))) for r in _rules()]
    assert len(keys) == len(set(keys))
