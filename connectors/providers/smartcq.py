"""SmartCQ sends and contacts (API facts: docs/providers/smartcq.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from pydantic import SecretStr

from mailpulse.connectors.base import Page, Plan, Stream
from mailpulse.connectors.cursors import pass_start
from mailpulse.connectors.errors import NormalisationError
from mailpulse.connectors.pagination import (
    TICK,
    DescendingCursorPaginator,
    TieRunOverflow,
    TimestampCursorPaginator,
    read_tie_run,
)
from mailpulse.connectors.provider import BearerAuth, Provider
from mailpulse.connectors.providers._common import (
    body_dict,
    body_list,
    event_id_prefix,
    optional_timestamp,
    require_mapping,
    require_str,
    timestamp,
    utc_timestamp,
)
from mailpulse.sources import SourceBase
from mailpulse.topics.contracts import CONTACTS
from mailpulse.topics.events import Bounce, EmailEvent, EventType, format_timestamp
from mailpulse.topics.records import ContactRecord

__all__ = [
    "PROVIDER",
    "SmartCQSource",
    "SmartCQSends",
    "SmartCQContacts",
    "normalise",
    "normalise_contact",
    "SEND_STATUSES",
]

NAME = "smartcq"
SENDS_PAGE_SIZE = 500  # the API reference: limit 1-500
CONTACTS_PAGE_SIZE = 200  # the API reference: limit 1-200
SEND_STATUSES = (
    "queued",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "suppressed",
    "failed",
    "delayed",
)
EMAIL_STATUSES = ("active", "unsubscribed", "bounced", "complained", "suppressed", "pending_review")
STAGES = ("lead", "prospect", "customer", "ex_customer")

#: Timestamps that are facts of their own, with the fact part of their event id pre-encoded.
_TIMED_FACTS = tuple((field, t, t.value.encode()) for field, t in (
    ("sentAt", EventType.SENT),
    ("deliveredAt", EventType.DELIVERED),
    ("openedAt", EventType.OPENED),
    ("clickedAt", EventType.CLICKED),
))  # fmt: skip
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


_FACT_BYTES = {t: t.value.encode() for t in EventType}  # the fact part of the event id, pre-encoded
_ERROR_FACTS = frozenset({EventType.BOUNCED, EventType.FAILED, EventType.DEFERRED})
_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})  # shared, read-only: one fewer dict per event


def normalise(raw: Any, *, source: str, observed_at: datetime) -> list[EmailEvent]:
    """One send -> one event per fact it shows; ``event_id`` = (send id, fact), stable across re-reads."""
    # The hot path of the pollers (about 2.5 events per send): positional EmailEvent arguments (the
    # field order of topics/events.py, which a test pins) and one hash state per send.
    if not isinstance(raw, dict):
        require_mapping(raw)
    get = raw.get
    send_id = get("id")
    if send_id.__class__ is not str or not send_id:
        send_id = require_str(raw, "id")
    created = utc_timestamp(get("createdAt"), "createdAt")
    status = get("status")
    if status not in _STATUS_FACTS and status not in _TIMED_STATUSES:
        raise NormalisationError("status", f"unknown status {status!r:.40}")
    campaign, contact = get("campaignId"), get("contactId")
    prefix = event_id_prefix(NAME, source, send_id)
    out = []
    latest = created
    # Timed facts never carry the error (only status facts do): built here, in fact order, as each
    # timestamp is read, with no list of (type, time) pairs in between.
    for field, type_, fact in _TIMED_FACTS:
        value = get(field)
        if value is not None:
            at = utc_timestamp(value, field)
            if at > latest:
                latest = at
            h = prefix.copy()
            h.update(fact)
            out.append(
                EmailEvent(
                    h.hexdigest(),
                    NAME,
                    source,
                    type_,
                    at,
                    observed_at,
                    send_id,
                    campaign,
                    contact,
                    None,
                    None,
                    None,
                    _NO_ATTRIBUTES,
                )
            )
    if status in _STATUS_FACTS:
        type_ = _STATUS_FACTS[status]
        at = created if status == "queued" else latest
    else:
        field, type_ = _TIMED_STATUSES[status]
        if get(field) is not None:
            return out  # its timestamp already made the fact
        at = latest
    h = prefix.copy()
    h.update(_FACT_BYTES[type_])
    bounce, attributes = _error_details(type_, get("error"))
    out.append(
        EmailEvent(
            h.hexdigest(),
            NAME,
            source,
            type_,
            at,
            observed_at,
            send_id,
            campaign,
            contact,
            None,
            bounce,
            None,
            attributes,
        )
    )
    return out


def _error_details(type_: EventType, error: Any) -> tuple[Bounce | None, Mapping[str, Any]]:
    """A bounce's ``Bounce``, or the ``error`` attribute of a failed or deferred send."""
    if not error or type_ not in _ERROR_FACTS:
        return None, _NO_ATTRIBUTES
    if type_ is EventType.BOUNCED:
        code = str(error).split(" ", 2)
        return Bounce(
            code=code[1] if len(code) > 1 and code[1][:1].isdigit() else None, reason=str(error)
        ), _NO_ATTRIBUTES
    return None, {"error": str(error)}


def normalise_contact(raw: Any, *, source: str, observed_at: datetime) -> ContactRecord:
    raw = require_mapping(raw)
    contact_id = require_str(raw, "id")
    status = raw.get("emailStatus")
    if status not in EMAIL_STATUSES:
        raise NormalisationError("emailStatus", f"unknown status {status!r:.40}")
    email = raw.get("email")
    attributes = dict(raw)  # everything else, in the record's order: a copy and four pops beat a comprehension
    for k in _CONTACT_FIELDS:
        attributes.pop(k, None)
    # Positional: the field order of topics.records.ContactRecord (pinned by a test); keywords cost
    # more than a third of building this frozen dataclass.
    return ContactRecord(
        source,
        NAME,
        contact_id,
        observed_at,
        email.lower() if isinstance(email, str) else None,
        status,
        optional_timestamp(raw.get("updatedAt"), "updatedAt"),
        attributes,
    )


_CONTACT_FIELDS = ("id", "email", "emailStatus", "updatedAt")


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


_Paginator = TimestampCursorPaginator | DescendingCursorPaginator


class _SmartCQStream(Stream):
    """Both SmartCQ lists: pages by a timestamp cursor, whose ties a full page cannot get past."""

    provider = NAME
    path: ClassVar[str]
    page_size: ClassVar[int]
    #: The cursor value one tick before an instant, in paging order: the query that starts at it.
    tie_step: ClassVar[timedelta]
    #: Filters that split one instant's records into pages (``read_tie_run``), tried in turn.
    tie_splits: ClassVar[tuple[tuple[str, Sequence[str] | None], ...]]

    async def _fetch(self, params: dict[str, Any]) -> list[Mapping[str, Any]]:
        return (await self.request(self.path, params, parse=_page))["data"]

    async def _pages(
        self, paginator: _Paginator, params_at: Callable[[datetime | None], dict[str, Any]]
    ) -> AsyncIterator[list[Mapping[str, Any]]]:
        """Every page in cursor order; a page full of one instant (a blast, an import) is read whole through filters."""
        while not paginator.finished:
            body = await self.request(self.path, params_at(paginator.current_value), parse=_page)
            records = list(body["data"])
            try:
                paginator.advance(body, records)
            except TieRunOverflow as tie:
                records = await read_tie_run(
                    self._fetch,
                    instant=tie.instant,
                    params=params_at(tie.instant + self.tie_step),
                    ts_of=_created,
                    limit=self.page_size,
                    splits=self.tie_splits,
                )
                paginator.skip_past(tie.instant)
            yield records


class SmartCQSends(_SmartCQStream):
    name = "sends"
    path = "/api/v1/sends"
    page_size = SENDS_PAGE_SIZE
    tie_step = -TICK  # ascending: since = one tick before the instant
    tie_splits = (("status", SEND_STATUSES), ("campaignId", None))
    is_mutable = True  # sends are opened and clicked long after createdAt, the cursor's field

    def normalise_record(self, raw: Any, observed_at: datetime) -> list[EmailEvent]:
        return normalise(raw, source=self.source_name, observed_at=observed_at)

    def cursor_time(self, cursor: Any) -> datetime | None:
        return timestamp(cursor["since"], "since") if cursor else None

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        since = pass_start(plan.kind, self.cursor_time(cursor), plan.window_start(self.lookback))
        until = plan.until
        paginator = TimestampCursorPaginator(since, limit=SENDS_PAGE_SIZE, ts_of=_created, has_more=_has_more)

        def params_at(value: datetime | None) -> dict[str, Any]:
            assert value is not None  # an ascending cursor always has a value
            return {"since": format_timestamp(value), "limit": SENDS_PAGE_SIZE}

        async with aclosing(self._pages(paginator, params_at)) as pages:
            async for records in pages:
                if until is not None:
                    last = _created(records[-1]) if records else None
                    records = [r for r in records if (_created(r) or since) <= until]
                    if last is not None and last > until:
                        yield Page(records, {"since": format_timestamp(until)})
                        return
                yield Page(records, {"since": format_timestamp(paginator.current_value)})


class SmartCQContacts(_SmartCQStream):
    name = "contacts"
    path = "/api/v1/contacts"
    page_size = CONTACTS_PAGE_SIZE
    tie_step = TICK  # descending: cursor = one tick after the instant
    tie_splits = (("emailStatus", EMAIL_STATUSES), ("stage", STAGES))
    use_reconcile_only = True  # no "updated since" filter: a full scan, on reconcile ticks only
    supports_backfill = False
    emits_events = False
    meta_topics = (CONTACTS,)

    def normalise_record(self, raw: Any, observed_at: datetime) -> list[ContactRecord]:
        return [normalise_contact(raw, source=self.source_name, observed_at=observed_at)]

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        base = {"limit": CONTACTS_PAGE_SIZE, "includeArchived": "true"}
        paginator = DescendingCursorPaginator(limit=CONTACTS_PAGE_SIZE, ts_of=_created, has_more=_has_more)

        def params_at(token: datetime | None) -> dict[str, Any]:
            return base if token is None else {**base, "cursor": format_timestamp(token)}

        async for records in self._pages(paginator, params_at):
            yield Page(records)
        yield Page((), {"scanned_at": format_timestamp(plan.now)})


class SmartCQSource(SourceBase):
    provider: Literal["smartcq"]
    api_key: SecretStr


PROVIDER = Provider(
    name=NAME, config=SmartCQSource, auth=BearerAuth(field="api_key"), streams=(SmartCQSends, SmartCQContacts)
)
