"""Values of ``mailpulse.usage.v1`` and ``mailpulse.calendar.v1`` (SmarterSends).

Plain data types whose JSON form matches ``topics/schemas/usage-report.v1.json``
and ``topics/schemas/calendar-event.v1.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailpulse.topics.events import format_timestamp

__all__ = ["UsageReport", "CalendarEvent"]


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


@dataclass(frozen=True, slots=True)
class UsageReport:
    """``mailpulse.usage.v1``, key ``{source}:{report}:{start_date}:{end_date}``."""

    source: str
    provider: str
    #: Which report: "conversations".
    report: str
    #: The window asked for, as dates (YYYY-MM-DD), both inclusive.
    start_date: str
    end_date: str
    observed_at: datetime
    #: Overall figures (name -> number or null).
    metrics: Mapping[str, Any] = field(default_factory=dict)
    #: Per-group rows, as the provider gave them.
    by_group: list[Mapping[str, Any]] = field(default_factory=list)
    #: The provider's own statement of the window (``range``), when given.
    range: Mapping[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.source}:{self.report}:{self.start_date}:{self.end_date}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "provider": self.provider,
            "report": self.report,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "range": None if self.range is None else dict(self.range),
            "metrics": dict(self.metrics),
            "by_group": [dict(r) for r in self.by_group],
            "observed_at": format_timestamp(self.observed_at),
        }


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """``mailpulse.calendar.v1``, key ``{source}:{calendar_event_id}``; a tombstone when deleted."""

    source: str
    provider: str
    calendar_event_id: str
    name: str | None
    start: datetime | None
    observed_at: datetime
    end: datetime | None = None
    description: str | None = None
    repeats: bool = False
    #: Recurrence as given: repeat_type, repeat_interval, max_occurrences, repeat_days, repeat_months.
    recurrence: Mapping[str, Any] | None = None
    all_groups: bool = False
    groups: list[Mapping[str, Any]] = field(default_factory=list)
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.source}:{self.calendar_event_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "provider": self.provider,
            "calendar_event_id": self.calendar_event_id,
            "name": self.name,
            "start": _ts(self.start),
            "end": _ts(self.end),
            "description": self.description,
            "repeats": self.repeats,
            "recurrence": None if self.recurrence is None else dict(self.recurrence),
            "all_groups": self.all_groups,
            "groups": [dict(g) for g in self.groups],
            "updated_at": _ts(self.updated_at),
            "observed_at": format_timestamp(self.observed_at),
        }
