"""SuperSend v2 events API (API facts: docs/providers/supersend.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Literal

from pydantic import Field, SecretStr

from mailpulse.connectors.base import Output, Page, Plan, Stream
from mailpulse.connectors.cursors import pass_start
from mailpulse.connectors.errors import NormalisationError
from mailpulse.connectors.pagination import OffsetPaginator
from mailpulse.connectors.provider import BearerAuth, Provider
from mailpulse.connectors.providers._common import (
    body_dict,
    body_list,
    event_id_prefix,
    require_mapping,
    require_str,
    timestamp,
    utc_timestamp,
)
from mailpulse.sources import SourceBase
from mailpulse.topics.contracts import CAMPAIGNS
from mailpulse.topics.events import (
    ATTR_CLICKS_COUNTER,
    ATTR_OPENS_COUNTER,
    ATTR_REPORTS_DELIVERY,
    Bounce,
    EmailEvent,
    EventType,
    format_timestamp,
)
from mailpulse.topics.records import CampaignMetadata

__all__ = ["PROVIDER", "SuperSendSource", "SuperSendEvents", "normalise"]

NAME = "supersend"
PAGE_SIZE = 100  # the API reference: limit max 100
#: A poll re-reads this much before the last window end: rows can land a little after their ``date``.
OVERLAP = timedelta(minutes=10)

#: The row's own type -> the fact it is ("click" filters map to open rows; a click row, if any, is a click).
_ROW_TYPES: Mapping[str, EventType] = {
    "scheduled": EventType.QUEUED,
    "sent": EventType.SENT,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
    "reply": EventType.REPLIED,
    "bounce": EventType.BOUNCED,
    "unsubscribe": EventType.UNSUBSCRIBED,
}
#: Types that are no email fact (LinkedIn/Twitter actions, bookkeeping): read and dropped.
_IGNORED_TYPES = frozenset(
    {"visit", "message", "follow", "unfollow", "like", "connection_request", "move_contact", "http_api_request"}
)
#: Flags that carry facts too, whatever the row's type, with the fact part of their event id pre-encoded.
_FLAGS = tuple((flag, t, t.value.encode()) for flag, t in (
    ("opened", EventType.OPENED),
    ("clicked", EventType.CLICKED),
    ("replied", EventType.REPLIED),
    ("bounced", EventType.BOUNCED),
))  # fmt: skip
#: The row's extras copied into the events' attributes, in this order (``_attributes`` names them again).
_ATTRIBUTES = (
    "channel",
    "sequence_step",
    "subject",
    "thread_id",
    "sender_id",
    "autoresponse",
    "replies",
    "unsubscribes",
)


_FACT_BYTES = {t: t.value.encode() for t in EventType}  # the fact part of the event id, pre-encoded
_BOUNCE = Bounce()  # frozen: one shared value
_BOUNCED = EventType.BOUNCED
_UNSUBSCRIBED = EventType.UNSUBSCRIBED
_NO_OBJECT: Mapping[str, Any] = MappingProxyType({})  # stands in for a missing contact or campaign


def normalise(raw: Any, *, source: str, observed_at: datetime) -> list[Output]:
    """One row -> one event per fact (its type and its flags) + the campaign's name.

    ``event_id`` = (message, fact): the same fact shown by two rows is one event.
    """
    # Hot path: positional EmailEvent arguments (the field order of topics/events.py, pinned by a
    # test) and one hash state per row.
    if not isinstance(raw, dict):
        require_mapping(raw)
    get = raw.get
    row_id = get("id")
    if row_id.__class__ is not str or not row_id:
        row_id = require_str(raw, "id")
    kind = get("type")
    own = _ROW_TYPES.get(kind)  # type: ignore[arg-type]
    if own is None:
        if kind in _IGNORED_TYPES:
            return []
        raise NormalisationError("type", f"unknown event type {kind!r:.40}")
    date_text = get("date")
    date = utc_timestamp(date_text, "date")
    updated = get("updated_at")
    # Mostly the same text as ``date`` (a row never changed): the same time, not parsed twice.
    updated = date if updated is None or updated == "" or updated == date_text else utc_timestamp(updated, "updated_at")
    message_id = get("email_id") or row_id
    contact = get("contact")
    if not isinstance(contact, dict):
        contact = _NO_OBJECT
    campaign = get("campaign")
    if not isinstance(campaign, dict):
        campaign = _NO_OBJECT
    campaign_id = campaign.get("id") or get("campaign_id")
    contact_id = contact.get("id") or get("contact_id")
    email = contact.get("email")
    email = email.lower() if isinstance(email, str) and email else None
    attributes = _attributes(get, row_id)
    prefix = event_id_prefix(NAME, source, message_id)
    message_id = str(message_id)
    # The row's own fact first, then its flags' (a flag repeating the own type adds nothing): the
    # order the events always had. A flag has no time of its own: when the row last changed.
    flagged = date if date > updated else updated  # max(updated, date), which keeps ``updated`` on a tie
    h = prefix.copy()
    h.update(_FACT_BYTES[own])
    out: list[Output] = [
        EmailEvent(
            h.hexdigest(), NAME, source, own, date, observed_at, message_id, campaign_id, contact_id, email,
            _BOUNCE if own is _BOUNCED else None, None, attributes,
        )
    ]  # fmt: skip
    for flag, type_, fact in _FLAGS:
        if get(flag) is True and type_ is not own:
            h = prefix.copy()
            h.update(fact)
            out.append(
                EmailEvent(
                    h.hexdigest(), NAME, source, type_, flagged, observed_at, message_id, campaign_id, contact_id, email,
                    _BOUNCE if type_ is _BOUNCED else None, None, attributes,
                )
            )  # fmt: skip
    if (get("unsubscribes") or 0) > 0 and own is not _UNSUBSCRIBED:
        h = prefix.copy()
        h.update(_FACT_BYTES[_UNSUBSCRIBED])
        out.append(
            EmailEvent(
                h.hexdigest(), NAME, source, _UNSUBSCRIBED, flagged, observed_at, message_id, campaign_id, contact_id, email,
                None, None, attributes,
            )
        )  # fmt: skip
    if campaign_id:
        out.append(_campaign(source, str(campaign_id), campaign.get("name"), observed_at))
    return out


def _attributes(get: Any, row_id: str) -> dict[str, Any]:
    """The row's own extras (none of them null) and the counters the streams read; shared by its events."""
    # One dict display, which CPython builds presized: inserting the keys one by one resized the dict
    # twice and cost a fifth of the row. The nulls (a LinkedIn row has no subject) are dropped after.
    channel, step, subject, thread_id, sender_id, autoresponse, replies, unsubscribes = map(get, _ATTRIBUTES)
    attributes = {
        "channel": channel,
        "sequence_step": step,
        "subject": subject,
        "thread_id": thread_id,
        "sender_id": sender_id,
        "autoresponse": autoresponse,
        "replies": replies,
        "unsubscribes": unsubscribes,
        ATTR_REPORTS_DELIVERY: False,  # SuperSend never reports deliveries: the streams infer them
        ATTR_OPENS_COUNTER: get("opens") or 0,
        ATTR_CLICKS_COUNTER: get("clicks") or 0,
        "supersend_event_id": row_id,
    }
    if (
        channel is None or step is None or subject is None or thread_id is None
        or sender_id is None or autoresponse is None or replies is None or unsubscribes is None
    ):  # fmt: skip
        attributes = {k: v for k, v in attributes.items() if v is not None}  # the last four are never null
    return attributes


@lru_cache(maxsize=4096)
def _campaign(source: str, campaign_id: str, name: str | None, observed_at: datetime) -> CampaignMetadata:
    # Every row of a page repeats its campaign: one frozen value per (campaign, name, page).
    return CampaignMetadata(source, NAME, campaign_id, observed_at, name=name)


def _page(body: Any) -> dict[str, Any]:
    body = body_dict(body, "data")
    body_list(body["data"], "data")
    return body


def _has_more(body: Any) -> bool:
    pagination = body.get("pagination")
    return bool(pagination.get("hasMore", True)) if isinstance(pagination, dict) else True


class SuperSendEvents(Stream):
    provider = NAME
    name = "events"
    is_mutable = True  # rows gain opened/clicked flags and counters after their ``date``
    meta_topics = (CAMPAIGNS,)

    def normalise_record(self, raw: Any, observed_at: datetime) -> list[Output]:
        return normalise(raw, source=self.source_name, observed_at=observed_at)

    def cursor_time(self, cursor: Any) -> datetime | None:
        return timestamp(cursor["end"], "end") if cursor else None

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        start = pass_start(plan.kind, self.cursor_time(cursor), plan.window_start(self.lookback), overlap=OVERLAP)
        # The window's end is fixed now: rows arriving during the pass cannot shift the offsets.
        end = plan.end
        base: dict[str, Any] = {
            "start_date": format_timestamp(start),
            "end_date": format_timestamp(end),
            "limit": PAGE_SIZE,
        }
        if self.source.team_id:
            base["TeamId"] = self.source.team_id
        for channel in self.source.channels:
            pages = OffsetPaginator(0, PAGE_SIZE, has_more=_has_more)
            while not pages.finished:
                body = await self.request(
                    "/v2/events", {**base, "channel": channel, "offset": pages.current_value}, parse=_page
                )
                records = body["data"]
                pages.advance(body, records)
                yield Page(records)
        yield Page((), {"end": format_timestamp(end)})


class SuperSendSource(SourceBase):
    provider: Literal["supersend"]
    api_key: SecretStr
    team_id: str | None = None
    channels: list[str] = Field(default_factory=lambda: ["email"], min_length=1)


PROVIDER = Provider(name=NAME, config=SuperSendSource, auth=BearerAuth(field="api_key"), streams=(SuperSendEvents,))
