"""SmartCQ sends and contacts (docs: providers/smartcq-sends.txt, providers/smartcq-contacts.txt, in Italian)."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any, AsyncIterator, Mapping

from connectors.base import Page, Plan, Stream
from connectors.errors import NormalisationError
from connectors.pagination import TICK, DescendingCursorPaginator, TieRunOverflow, TimestampCursorPaginator, read_tie_run
from connectors.providers._common import body_dict, event_id, body_list, optional_timestamp, require_mapping, require_str, timestamp
from topics.contracts import CONTACTS
from topics.events import Bounce, EmailEvent, EventType, format_timestamp
from topics.records import ContactRecord

__all__ = ["SmartCQSends", "SmartCQContacts", "normalise", "normalise_contact", "SEND_STATUSES"]

PROVIDER = "smartcq"
SENDS_PAGE_SIZE = 500  # smartcq-sends.txt: limit 1-500
CONTACTS_PAGE_SIZE = 200  # smartcq-contacts.txt: limit 1-200
SEND_STATUSES = ("queued", "sent", "delivered", "opened", "clicked", "bounced", "complained", "suppressed", "failed", "delayed")
EMAIL_STATUSES = ("active", "unsubscribed", "bounced", "complained", "suppressed", "pending_review")
STAGES = ("lead", "prospect", "customer", "ex_customer")

#: Timestamps that are facts of their own.
_TIMED_FACTS = (
    ("sentAt", EventType.SENT, "sent"),
    ("deliveredAt", EventType.DELIVERED, "delivered"),
    ("openedAt", EventType.OPENED, "opened"),
    ("clickedAt", EventType.CLICKED, "clicked"),
)
#: Statuses that are facts without a timestamp of their own ("delayed" is our "deferred").
_STATUS_FACTS: Mapping[str, EventType] = {
    "queued": EventType.QUEUED,
    "bounced": EventType.BOUNCED,
    "complained": EventType.COMPLAINED,
    "suppressed": EventType.SUPPRESSED,
    "failed": EventType.FAILED,
    "delayed": EventType.DEFERRED,
}
#: Statuses whose fact is carried by a timestamp (a fact of their own only if that timestamp is missing).
_TIMED_STATUSES: Mapping[str, tuple[str, EventType]] = {
    "sent": ("sentAt", EventType.SENT),
    "delivered": ("deliveredAt", EventType.DELIVERED),
    "opened": ("openedAt", EventType.OPENED),
    "clicked": ("clickedAt", EventType.CLICKED),
}


_VALUES = {t: t.value for t in EventType}  # enum .value is a descriptor call: look it up once
_ERROR_FACTS = frozenset({EventType.BOUNCED, EventType.FAILED, EventType.DEFERRED})
_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})  # shared, read-only: one fewer dict per event


def normalise(raw: Any, *, source: str, observed_at: datetime) -> list[EmailEvent]:
    """One send -> one event per fact it shows; ``event_id`` = (send id, fact), stable across re-reads."""
    raw = require_mapping(raw)
    send_id = require_str(raw, "id")
    created = timestamp(raw.get("createdAt"), "createdAt")
    status = raw.get("status")
    if status not in _STATUS_FACTS and status not in _TIMED_STATUSES:
        raise NormalisationError("status", f"unknown status {status!r:.40}")
    campaign, contact = raw.get("campaignId"), raw.get("contactId")
    facts: list[tuple[EventType, datetime]] = []
    latest = created
    for name, type_, _ in _TIMED_FACTS:
        value = raw.get(name)
        if value is not None:
            at = timestamp(value, name)
            facts.append((type_, at))
            if at > latest:
                latest = at
    if status in _STATUS_FACTS:
        facts.append((_STATUS_FACTS[status], created if status == "queued" else latest))
    elif raw.get(_TIMED_STATUSES[status][0]) is None:
        facts.append((_TIMED_STATUSES[status][1], latest))
    error = raw.get("error")
    out = []
    for type_, at in facts:
        bounce = None
        attributes: Mapping[str, Any] = _NO_ATTRIBUTES
        if error and type_ in _ERROR_FACTS:
            code = str(error).split(" ", 2)
            bounce = Bounce(code=code[1] if len(code) > 1 and code[1][:1].isdigit() else None, reason=str(error))
            if type_ is not EventType.BOUNCED:
                attributes = {"error": str(error)}
                bounce = None
        out.append(
            EmailEvent(
                event_id=event_id(PROVIDER, source, send_id, _VALUES[type_]),
                provider=PROVIDER,
                source=source,
                type=type_,
                occurred_at=at,
                observed_at=observed_at,
                message_id=send_id,
                campaign_id=campaign,
                contact_id=contact,
                bounce=bounce,
                attributes=attributes,
            )
        )
    return out


def normalise_contact(raw: Any, *, source: str, observed_at: datetime) -> ContactRecord:
    raw = require_mapping(raw)
    contact_id = require_str(raw, "id")
    status = raw.get("emailStatus")
    if status not in EMAIL_STATUSES:
        raise NormalisationError("emailStatus", f"unknown status {status!r:.40}")
    email = raw.get("email")
    return ContactRecord(
        source=source,
        provider=PROVIDER,
        contact_id=contact_id,
        observed_at=observed_at,
        email=email.lower() if isinstance(email, str) else None,
        status=status,
        updated_at=optional_timestamp(raw.get("updatedAt"), "updatedAt"),
        attributes={k: v for k, v in raw.items() if k not in ("id", "email", "emailStatus", "updatedAt")},
    )


def _created(record: Mapping[str, Any]) -> datetime | None:
    try:
        return timestamp(record.get("createdAt"), "createdAt")
    except NormalisationError:
        return None  # a bad record: it goes to the DLQ, and never steers the cursor


def _page(body: Any) -> dict[str, Any]:
    body = body_dict(body, "data", "next")
    body_list(body["data"], "data")
    return body


def _has_more(body: Any) -> bool:
    return body.get("next") is not None


class SmartCQSends(Stream):
    provider = PROVIDER
    name = "sends"
    path = "/api/v1/sends"
    is_mutable = True  # sends are opened and clicked long after createdAt, the cursor's field

    def normalise_record(self, raw: Any, observed_at: datetime) -> list[EmailEvent]:
        return normalise(raw, source=self.source_name, observed_at=observed_at)

    def cursor_time(self, cursor: Any) -> datetime | None:
        return timestamp(cursor["since"], "since") if cursor else None

    async def _fetch(self, params: dict[str, Any]) -> list[Mapping[str, Any]]:
        return (await self.request(self.path, params, parse=_page))["data"]

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        if plan.kind == "poll":
            since = timestamp(cursor["since"], "since") if cursor else plan.now - self.lookback
        elif plan.kind == "backfill":  # resumed from its own cursor when it has one
            since = timestamp(cursor["since"], "since") if cursor else plan.since
        else:  # reconcile: the trailing lookback, or further back if the cursor lags behind it
            since = min(plan.since, timestamp(cursor["since"], "since")) if cursor else plan.since
        assert since is not None
        until = plan.until
        paginator = TimestampCursorPaginator(since, limit=SENDS_PAGE_SIZE, ts_of=_created, has_more=_has_more)
        while not paginator.finished:
            body = await self.request(self.path, {"since": format_timestamp(paginator.current_value), "limit": SENDS_PAGE_SIZE}, parse=_page)
            records = [r for r in body["data"]]
            try:
                paginator.advance(body, records)
            except TieRunOverflow as tie:
                # One instant (a campaign blast) fills a page: read it whole through filters.
                records = await read_tie_run(
                    self._fetch,
                    instant=tie.instant,
                    params={"since": format_timestamp(tie.instant - TICK), "limit": SENDS_PAGE_SIZE},
                    ts_of=_created,
                    limit=SENDS_PAGE_SIZE,
                    splits=(("status", SEND_STATUSES), ("campaignId", None)),
                )
                paginator.skip_past(tie.instant)
            if until is not None:
                last = _created(records[-1]) if records else None
                records = [r for r in records if (_created(r) or since) <= until]
                if last is not None and last > until:
                    yield Page(records, {"since": format_timestamp(until)})
                    return
            yield Page(records, {"since": format_timestamp(paginator.current_value)})


def _contact_created(record: Mapping[str, Any]) -> datetime | None:
    return _created(record)


class SmartCQContacts(Stream):
    provider = PROVIDER
    name = "contacts"
    path = "/api/v1/contacts"
    use_reconcile_only = True  # no "updated since" filter: a full scan, on reconcile ticks only
    supports_backfill = False
    emits_events = False
    meta_topics = (CONTACTS,)

    def normalise_record(self, raw: Any, observed_at: datetime) -> list[ContactRecord]:
        return [normalise_contact(raw, source=self.source_name, observed_at=observed_at)]

    async def _fetch(self, params: dict[str, Any]) -> list[Mapping[str, Any]]:
        return (await self.request(self.path, params, parse=_page))["data"]

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        base = {"limit": CONTACTS_PAGE_SIZE, "includeArchived": "true"}
        paginator = DescendingCursorPaginator(limit=CONTACTS_PAGE_SIZE, ts_of=_contact_created, has_more=_has_more)
        while not paginator.finished:
            token = paginator.current_value
            params = base if token is None else {**base, "cursor": format_timestamp(token)}
            body = await self.request(self.path, params, parse=_page)
            records = list(body["data"])
            try:
                paginator.advance(body, records)
            except TieRunOverflow as tie:  # an import: more contacts at one instant than a page holds
                records = await read_tie_run(
                    self._fetch,
                    instant=tie.instant,
                    params={**base, "cursor": format_timestamp(tie.instant + TICK)},
                    ts_of=_contact_created,
                    limit=CONTACTS_PAGE_SIZE,
                    splits=(("emailStatus", EMAIL_STATUSES), ("stage", STAGES)),
                )
                paginator.skip_past(tie.instant)
            yield Page(records)
        yield Page((), {"scanned_at": format_timestamp(plan.now)})
