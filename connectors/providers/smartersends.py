"""SmarterSends campaign export, conversations usage and calendar (API facts: docs/providers/smartersends.md)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from prometheus_client import Gauge
from pydantic import SecretStr

from mailpulse.connectors.base import Output, Page, PassKind, Plan, Stream, Tombstone
from mailpulse.connectors.dedupe import ChangeIndex
from mailpulse.connectors.errors import FatalAPIError, NormalisationError, RetriableAPIError
from mailpulse.connectors.provider import BearerAuth, Provider
from mailpulse.connectors.providers._common import (
    body_dict,
    body_list,
    optional_timestamp,
    require_mapping,
    require_str,
    timestamp,
)
from mailpulse.connectors.records import CalendarEvent, UsageReport
from mailpulse.sources import SourceBase
from mailpulse.topics.contracts import CALENDAR, CAMPAIGNS, USAGE
from mailpulse.topics.records import CampaignMetadata

__all__ = [
    "PROVIDER",
    "SmarterSendsSource",
    "SmarterSendsCampaigns",
    "SmarterSendsUsage",
    "SmarterSendsCalendar",
    "normalise_campaign",
    "normalise_usage",
    "normalise_calendar_event",
]

log = logging.getLogger(__name__)

#: The conversations report's overall figures (SmarterSends only, so declared here, not in metrics.py).
USAGE_METRIC = Gauge(
    "mailpulse_smartersends_conversations",
    "SmarterSends conversations usage report, overall metrics",
    ("source", "metric"),
)

NAME = "smartersends"
#: The endpoint section documents POST /campaign/export; the intro shows GET /campaigns/export. 405 on one: try the other.
EXPORT_ENDPOINTS = (("POST", "/api/usage/campaign/export"), ("GET", "/api/usage/campaigns/export"))
EXPORT_COLUMNS = (
    "sent_mailing_id", "name", "subject", "send_time", "type", "status",
    "template_name", "group_name", "user_name", "from_name", "from_address", "reply_to_address",
)  # fmt: skip
#: Scheduled campaigns have a future send_time: the export window reaches this far ahead.
SCHEDULE_HORIZON = timedelta(days=60)
#: The API reference: the conversations report defaults to the last 30 days.
USAGE_WINDOW = timedelta(days=30)
_STAMP = "%Y-%m-%d %H:%M:%S"


CAMPAIGN_STATUSES = frozenset({"draft", "sent", "canceled", "failed", "pending", "scheduled", "reviewed"})
REPEAT_TYPES = frozenset({"daily", "weekly", "monthly", "yearly"})


def normalise_campaign(raw: Any, *, source: str, observed_at: datetime) -> list[CampaignMetadata]:
    """One exported row -> its metadata, or nothing while it has no ``sent_mailing_id`` (not sent yet)."""
    raw = require_mapping(raw)
    if "sent_mailing_id" not in raw:
        raise NormalisationError("sent_mailing_id", "missing (the export was asked for this column)")
    status = raw.get("status")
    if status is not None and str(status).lower() not in CAMPAIGN_STATUSES:
        raise NormalisationError("status", f"unknown status {status!r:.40}")
    send_time = optional_timestamp(raw.get("send_time"), "send_time")  # 'YYYY-MM-DD HH:mm:ss'
    if raw["sent_mailing_id"] is None:
        return []  # drafts and scheduled campaigns get their id when sent; the calendar shows what is scheduled
    campaign_id = require_str(raw, "sent_mailing_id")
    attributes = dict(raw)  # everything else, in the row's order: a copy and four pops beat a comprehension
    for k in _CAMPAIGN_FIELDS:
        attributes.pop(k, None)
    # Positional: the field order of topics.records.CampaignMetadata (pinned by a test).
    return [
        CampaignMetadata(
            source, NAME, campaign_id, observed_at, raw.get("name"), raw.get("subject"), send_time, attributes
        )
    ]


_CAMPAIGN_FIELDS = ("sent_mailing_id", "name", "subject", "send_time")


def normalise_usage(raw: Any, *, source: str, start_date: str, end_date: str, observed_at: datetime) -> UsageReport:
    raw = require_mapping(raw)
    figures = raw.get("metrics")
    if not isinstance(figures, dict):
        raise NormalisationError("metrics", "missing" if figures is None else "must be an object")
    bad = [k for k, v in figures.items() if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    if bad:
        raise NormalisationError(f"metrics.{bad[0]}", f"must be a number or null, got {figures[bad[0]]!r:.40}")
    groups = raw.get("by_group") or []
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise NormalisationError("by_group", "must be a list of objects")
    rng = raw.get("range")
    return UsageReport(
        source=source,
        provider=NAME,
        report="conversations",
        start_date=start_date,
        end_date=end_date,
        observed_at=observed_at,
        metrics=figures,
        by_group=groups,
        range=rng if isinstance(rng, dict) else None,
    )


_RECURRENCE = ("repeat_type", "repeat_interval", "max_occurrences", "repeat_days", "repeat_months")


def normalise_calendar_event(raw: Any, *, source: str, observed_at: datetime) -> CalendarEvent:
    raw = require_mapping(raw)
    event_id = require_str(raw, "id")
    repeats = bool(raw.get("repeats"))
    if repeats and raw.get("repeat_type") not in REPEAT_TYPES:
        raise NormalisationError("repeat_type", f"unknown repeat type {raw.get('repeat_type')!r:.40}")
    groups = raw.get("groups") or []
    return CalendarEvent(
        source=source,
        provider=NAME,
        calendar_event_id=event_id,
        name=raw.get("name"),
        start=timestamp(raw.get("start_date"), "start_date"),
        end=optional_timestamp(raw.get("end_date"), "end_date"),
        observed_at=observed_at,
        description=raw.get("description"),
        repeats=repeats,
        recurrence={k: raw.get(k) for k in _RECURRENCE} if repeats else None,
        all_groups=bool(raw.get("all_groups")),
        groups=[g for g in groups if isinstance(g, dict)],
        updated_at=optional_timestamp(raw.get("updated_at"), "updated_at"),
    )


def _export_file(body: Any) -> dict[str, Any]:
    return body_dict(body, "file")


def _array(body: Any) -> list[Any]:
    return body_list(body, "the response")


class SmarterSendsCampaigns(Stream):
    provider = NAME
    name = "campaigns"
    emits_events = False
    meta_topics = (CAMPAIGNS,)

    def __init__(self, source: Any, client: Any) -> None:
        super().__init__(source, client)
        self._endpoint = 0  # index into EXPORT_ENDPOINTS; moves on a 405

    def normalise_record(self, raw: Any, observed_at: datetime) -> list[CampaignMetadata]:
        return normalise_campaign(raw, source=self.source_name, observed_at=observed_at)

    async def _export(self, start: datetime, end: datetime) -> dict[str, Any]:
        params = {
            "start_date": start.strftime(_STAMP),
            "end_date": end.strftime(_STAMP),
            "format": "json",
            "columns": ",".join(EXPORT_COLUMNS),
        }
        for _ in EXPORT_ENDPOINTS:
            method, path = EXPORT_ENDPOINTS[self._endpoint]
            try:
                return await self.request(path, params, method=method, parse=_export_file)
            except FatalAPIError as exc:
                if exc.status != 405:
                    raise
                other = EXPORT_ENDPOINTS[(self._endpoint + 1) % len(EXPORT_ENDPOINTS)]
                log.warning("%s: %s %s answered 405; using %s %s", self.source_name, method, path, *other)
                self._endpoint = (self._endpoint + 1) % len(EXPORT_ENDPOINTS)
        raise FatalAPIError(
            "both campaign export endpoints answered 405",
            provider=NAME,
            source=self.source_name,
            stream=self.name,
            status=405,
        )

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        if plan.kind is PassKind.BACKFILL:
            assert plan.since is not None
            start, end = plan.since, plan.end
        else:  # metadata changes (status, send_time) until sent: re-export the trailing lookback and the schedule
            start, end = plan.now - self.lookback, plan.now + SCHEDULE_HORIZON
        body = await self._export(start, end)
        file = body["file"]
        url = file.get("url") if isinstance(file, dict) else None
        if not url:
            reason = body.get("message") or "the response has no file.url"
            raise RetriableAPIError(
                f"campaign export produced no download URL ({reason}); will export again at the next poll",
                provider=NAME,
                source=self.source_name,
                stream=self.name,
            )
        # A pre-signed URL: no credentials to another host.
        rows = await self.client.request("GET", url, stream=self.name, parse=_array, authenticated=False)
        yield Page(rows)  # stateless: every poll re-exports its window, so there is no cursor to keep


class SmarterSendsUsage(Stream):
    provider = NAME
    name = "usage"
    emits_events = False
    supports_backfill = False
    meta_topics = (USAGE,)

    def normalise_record(self, raw: Any, observed_at: datetime) -> list[UsageReport]:
        (start, end), report = raw
        return [
            normalise_usage(report, source=self.source_name, start_date=start, end_date=end, observed_at=observed_at)
        ]

    def after_commit(self, outputs: Sequence[Output]) -> None:
        # The gauge shows the report on the topic: set once the transaction holding it committed.
        for usage in outputs:
            if isinstance(usage, UsageReport):
                for name, value in usage.metrics.items():
                    if value is not None:
                        USAGE_METRIC.labels(self.source_name, name).set(value)

    def dlq_payload(self, raw: Any) -> Any:
        return raw[1]

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        start, end = (plan.now - USAGE_WINDOW).date().isoformat(), plan.now.date().isoformat()
        body = await self.request(
            "/api/usage/conversations", {"start_date": start, "end_date": end, "format": "json"}, parse=_usage_body
        )
        yield Page([((start, end), body)])  # stateless, like the export


def _usage_body(body: Any) -> dict[str, Any]:
    return body_dict(body, "metrics")


class SmarterSendsCalendar(Stream):
    provider = NAME
    name = "calendar"
    emits_events = False
    supports_backfill = False
    meta_topics = (CALENDAR,)

    def normalise_record(self, raw: Any, observed_at: datetime) -> list[CalendarEvent]:
        return [normalise_calendar_event(raw, source=self.source_name, observed_at=observed_at)]

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        rows = await self.request("/api/events", parse=_calendar_body)
        yield Page(rows)  # the whole list every time: no cursor

    def finish_pass(self, outputs: list[Output], plan: Plan, known: dict[str, ChangeIndex]) -> Iterable[Output]:
        # The list is complete: an entry we published that is no longer listed was deleted.
        listed = {o.key for o in outputs if isinstance(o, CalendarEvent)}
        mine = f"{self.source_name}:"
        index = known.get(CALENDAR.name)
        if index is None:
            return []
        return [Tombstone(CALENDAR, k) for k in list(index.keys()) if k.startswith(mine) and k not in listed]


def _calendar_body(body: Any) -> list[Any]:
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        return body["data"]
    return body_list(body, "the events list")


class SmarterSendsSource(SourceBase):
    provider: Literal["smartersends"]
    api_key: SecretStr


PROVIDER = Provider(
    name=NAME,
    config=SmarterSendsSource,
    auth=BearerAuth(field="api_key"),
    streams=(SmarterSendsCampaigns, SmarterSendsUsage, SmarterSendsCalendar),
)
