"""The shipped alert rules pass Prometheus's own checker and its rule unit tests (alerts_test.yml)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.fixtures.tools import require_tool

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "deploy" / "prometheus" / "mailpulse-alerts.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *args], cwd=HERE, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_alert_rules():
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_alert_unit_tests_pass_under_promtool():
    done = _promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_rejects_a_broken_rule(tmp_path):
    # The check above can fail: a rule with a PromQL syntax error is refused.
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(by (x)\n")
    assert _promtool("check", "rules", str(broken)).returncode != 0


# --- Deliverability alerts, unit-tested with promtool on scenarios written here ---------------------------------


def _series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{metric}{{{inner}}}", "values": values}


def _window(scope_labels: dict[str, str], window: str, counts: dict[str, int], metric: str) -> list[dict[str, str]]:
    # A constant value for 40 minutes of 1-minute samples.
    return [_series(metric, {**scope_labels, "flag": flag, "window": window}, f"{n}x40") for flag, n in counts.items()]


def _expected(alert: str, labels: dict[str, str], value: str) -> dict:
    """The alert as Prometheus renders it: the rule's labels and its annotations with $labels and $value filled in."""
    from mailpulse.alerts import render_rules

    (rule,) = [
        r
        for g in render_rules()["groups"]
        for r in g["rules"]
        if r["alert"] == alert and all(r["labels"].get(k) == labels[k] for k in ("severity", "scope", "window"))
    ]

    def fill(text: str) -> str:
        text = text.replace("{{ $value | humanizePercentage }}", value)
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)

    return {"exp_labels": labels, "exp_annotations": {k: fill(v) for k, v in rule["annotations"].items()}}


def _run_scenarios(tmp_path: Path, tests: list[dict]) -> subprocess.CompletedProcess[str]:
    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "deliverability_test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return subprocess.run(
        [require_tool("promtool"), "test", "rules", "deliverability_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


GMAIL = {"provider": "smtpeter", "source": "acme", "mailbox_provider": "gmail"}
OUTLOOK = {"provider": "smtpeter", "source": "acme", "mailbox_provider": "microsoft"}
MAILBOX = "mailpulse_mailbox_window_messages"


def test_a_complaint_spike_at_gmail_pages_and_the_quiet_provider_stays_quiet(tmp_path):
    # gmail: 5 complaints in 1,000 delivered this hour (0.5%): over both 0.1% and 0.3%. microsoft: 0.05%.
    series = (
        _window(GMAIL, "current_hour", {"sent": 1000, "delivered": 1000, "complained": 5}, MAILBOX)
        + _window(GMAIL, "previous_hour", {"sent": 0, "delivered": 0, "complained": 0}, MAILBOX)
        + _window(OUTLOOK, "current_hour", {"sent": 2000, "delivered": 2000, "complained": 1}, MAILBOX)
    )
    at = {"scope": "mailbox_provider", "window": "1h"}
    tests = [
        {
            "name": "complaint spike at gmail",
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "MailpulseComplaintRateHigh", "exp_alerts": []},  # held for 10m first
                {
                    "eval_time": "15m",
                    "alertname": "MailpulseComplaintRateHigh",
                    "exp_alerts": [
                        _expected("MailpulseComplaintRateHigh", {**GMAIL, **at, "severity": "warning"}, "0.5%"),
                        _expected("MailpulseComplaintRateHigh", {**GMAIL, **at, "severity": "critical"}, "0.5%"),
                    ],
                },
            ],
        }
    ]
    done = _run_scenarios(tmp_path, tests)
    assert done.returncode == 0, done.stdout + done.stderr


def test_one_complaint_in_two_sends_does_not_page(tmp_path):
    series = _window(GMAIL, "current_hour", {"sent": 2, "delivered": 2, "complained": 1, "bounced": 1}, MAILBOX)
    source = {"provider": "smtpeter", "source": "acme"}
    series += _window(
        source,
        "current_hour",
        {"sent": 2, "delivered": 2, "complained": 1, "bounced": 1},
        "mailpulse_source_window_messages",
    )
    tests = [
        {
            "name": "tiny volume",
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "30m", "alertname": name, "exp_alerts": []}
                for name in ("MailpulseComplaintRateHigh", "MailpulseBounceRateHigh", "MailpulseDeferralRateHigh")
            ],
        }
    ]
    done = _run_scenarios(tmp_path, tests)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_bounce_rate_over_24_hours_warns_below_the_critical_line(tmp_path):
    # 4% bounces over the last 24 h (warning 3%, critical 5%), 1% in the last hour.
    source = {"provider": "supersend", "source": "beta"}
    metric = "mailpulse_source_window_messages"
    series = _window(source, "last_24h", {"sent": 5000, "bounced": 200}, metric) + _window(
        source, "current_hour", {"sent": 300, "bounced": 3}, metric
    )
    tests = [
        {
            "name": "24h bounces",
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {
                    "eval_time": "35m",
                    "alertname": "MailpulseBounceRateHigh",
                    "exp_alerts": [
                        _expected(
                            "MailpulseBounceRateHigh",
                            {**source, "scope": "source", "window": "24h", "severity": "warning"},
                            "4%",
                        ),
                    ],
                },
            ],
        }
    ]
    done = _run_scenarios(tmp_path, tests)
    assert done.returncode == 0, done.stdout + done.stderr
