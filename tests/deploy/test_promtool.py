"""The shipped alert rules pass Prometheus's own checker and its rule unit tests (alerts_test.yml)."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
