"""Shared fixtures live in tests/fixtures/, registered here (as Quix Streams does)."""

from __future__ import annotations

import pytest
from hypothesis import settings

# No per-example deadline: CI shares two cores with a broker and worker
# processes, and a slow example is not a failed property (a deadline flake was
# seen in tests/topics under load). Every property still runs its examples.
settings.register_profile("mailpulse", deadline=None)
settings.load_profile("mailpulse")

pytest_plugins = ["tests.fixtures.kafka"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Any test using the broker is an integration test, marked or not.
    for item in items:
        if "kafka" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    counts: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome != "error":
                continue
            if "integration" in getattr(report, "keywords", {}):
                counts[outcome] = counts.get(outcome, 0) + 1
    total = sum(counts.values())
    detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"
    terminalreporter.write_line(f"integration tests against the real Kafka broker: {total} ({detail})")
