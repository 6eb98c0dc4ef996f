"""The committed alert rules are the generated ones; thresholds are data; every alert has a runbook section."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from mailpulse.alerts import AlertSettings, render_rules, rules_yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "mailpulse-alerts.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"


def test_committed_rules_are_the_generated_defaults():
    assert RULES.read_text() == rules_yaml(), (
        "deploy/prometheus/mailpulse-alerts.yml is stale: run mailpulse alerts rules > deploy/prometheus/mailpulse-alerts.yml"
    )


def _rules(settings=None):
    return [r for g in render_rules(settings)["groups"] for r in g["rules"]]


def test_every_alert_links_a_runbook_section_that_exists():
    anchors = {
        re.sub(r"[^a-z0-9-]", "", line.lstrip("#").strip().lower())
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in _rules():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/runbooks.md#")
        assert url.split("#", 1)[1] in anchors, f"{rule['alert']}: no section {url} in docs/runbooks.md"


def test_deliverability_alerts_cover_each_rate_scope_window_and_severity():
    keys = {
        (r["alert"], r["labels"]["scope"], r["labels"]["window"], r["labels"]["severity"])
        for r in _rules()
        if "scope" in r["labels"]
    }
    for alert in ("MailpulseComplaintRateHigh", "MailpulseBounceRateHigh"):
        for scope in ("source", "mailbox_provider"):
            for window in ("1h", "24h"):
                for severity in ("warning", "critical"):
                    assert (alert, scope, window, severity) in keys
    assert ("MailpulseBounceRateHigh", "campaign", "1h", "critical") in keys
    assert ("MailpulseDeferralRateHigh", "source", "1h", "warning") in keys
    # Unique per (alert, scope, window, severity): no rule is there twice.
    assert len(keys) == len([r for r in _rules() if "scope" in r["labels"]])


def test_thresholds_and_volumes_come_from_the_settings():
    custom = AlertSettings(
        complaint_rate_critical=0.0042, min_sent_1h=777, runbook_url="https://runbooks.example/mp.md"
    )
    rules = [
        r
        for r in _rules(custom)
        if r["alert"] == "MailpulseComplaintRateHigh"
        and r["labels"] == {"severity": "critical", "scope": "source", "window": "1h"}
    ]
    (rule,) = rules
    assert ") > 0.0042\n" in rule["expr"] and ">= 777" in rule["expr"]
    assert rule["annotations"]["runbook_url"] == "https://runbooks.example/mp.md#mailpulsecomplaintratehigh"


def test_cli_renders_rules_with_the_config_thresholds(tmp_path):
    config = tmp_path / "mailpulse.yaml"
    config.write_text("alerts:\n  bounce_rate_warning: 0.02\n")
    done = subprocess.run(
        [sys.executable, "-m", "mailpulse.cli", "alerts", "rules", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rules = [r for g in yaml.safe_load(done.stdout)["groups"] for r in g["rules"]]
    warn = [r for r in rules if r["alert"] == "MailpulseBounceRateHigh" and r["labels"]["severity"] == "warning"]
    assert warn and all(") > 0.02\n" in r["expr"] for r in warn)


def test_a_bad_threshold_is_one_config_line(tmp_path):
    config = tmp_path / "mailpulse.yaml"
    config.write_text("alerts:\n  bounce_rate_warning: 3\n")
    done = subprocess.run(
        [sys.executable, "-m", "mailpulse.cli", "alerts", "rules", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"mailpulse alerts: {config}: alerts.bounce_rate_warning: Input should be less than or equal to 1"
    ]
