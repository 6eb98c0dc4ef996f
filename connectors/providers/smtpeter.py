"""SMTPeter events API (API facts: docs/providers/smtpeter.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

import orjson
from pydantic import BeforeValidator, Field, SecretStr, model_validator

from mailpulse.connectors.base import Page, Plan, Stream
from mailpulse.connectors.cursors import PassKind, pass_start
from mailpulse.connectors.errors import NormalisationError
from mailpulse.connectors.pagination import DateWindowPaginator
from mailpulse.connectors.provider import Provider, QueryParamAuth
from mailpulse.connectors.providers._common import body_list, event_id_prefix, require_mapping, require_str, timestamp
from mailpulse.sources import Model, SourceBase
from mailpulse.topics.events import Bounce, BounceKind, EmailEvent, EventType

__all__ = [
    "PROVIDER",
    "SMTPeterSource",
    "SMTPeterSelector",
    "SMTPeterEvents",
    "normalise",
    "selector_path",
    "with_ordinals",
]

NAME = "smtpeter"
#: The API reference: day-granular start/end, end exclusive, at most one month per call; we ask one day at a time.
WINDOW = timedelta(days=1)

_EVENT_TYPES: Mapping[str, EventType] = {
    "attempt": EventType.SENT,
    "delivery": EventType.DELIVERED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
    "bounce": EventType.BOUNCED,
    "failure": EventType.BOUNCED,
    "response": EventType.REPLIED,
    "abuse": EventType.COMPLAINED,
}
#: Fields that become event fields; everything else in ``data`` is kept in ``attributes``.
_MAPPED = frozenset({"id", "time", "recipient", "url", "tags"})
_FAILURE_MAPPED = _MAPPED | {"status", "description"}
_DUMPS = orjson.dumps
_SORT = orjson.OPT_SORT_KEYS
_UNKNOWN_BOUNCE = Bounce(kind=BounceKind.UNKNOWN)  # frozen: one shared value


def normalise(raw: Any, *, source: str, campaign_id: str, observed_at: datetime, ordinal: int = 0) -> EmailEvent:
    """One ``{event, data}`` -> one event. SMTPeter events have no ids: the id is derived from their content.

    ``ordinal`` tells identical records of one response apart (two pixel
    fetches in the same second are two opens): the n-th copy gets its own id,
    and re-reading the day yields the same ids again.
    """
    if not isinstance(raw, dict):
        require_mapping(raw)
    name = raw.get("event")
    type_ = _EVENT_TYPES.get(name)  # type: ignore[arg-type]
    if type_ is None:
        raise NormalisationError("event", f"unknown event type {name!r:.40}")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise NormalisationError("data", "missing" if data is None else f"must be an object, got {type(data).__name__}")
    message_id = data.get("id")
    if message_id.__class__ is not str or not message_id:
        message_id = require_str(data, "id", "data.id")
    occurred = timestamp(data.get("time"), "data.time")  # 'YYYY-MM-DD hh:mm:ss' UTC
    recipient = data.get("recipient")
    bounce = None
    mapped = _MAPPED
    if name == "failure":
        status = str(data.get("status") or "")
        kind = (
            BounceKind.HARD
            if status.startswith("5")
            else BounceKind.SOFT
            if status.startswith("4")
            else BounceKind.UNKNOWN
        )
        bounce = Bounce(kind=kind, code=status or None, reason=data.get("description") or None)
        mapped = _FAILURE_MAPPED
    elif name == "bounce":
        bounce = _UNKNOWN_BOUNCE
    attributes: dict[str, Any] = {k: v for k, v in data.items() if k not in mapped}
    tags = data.get("tags")
    if isinstance(tags, str) and tags:
        attributes["tags"] = tags.split(";")
    attributes["smtpeter_event"] = name
    url = data.get("url") if type_ is EventType.CLICKED else None
    # The event's own content: re-reading a day yields the same ids. The bytes that
    # make_event_id(NAME, source, name, <sorted JSON of data>, ordinal) hashes, streamed.
    h = event_id_prefix(NAME, source, name)
    h.update(_DUMPS(data, option=_SORT))
    h.update(b"\x1f" if ordinal is None else f"\x1f{ordinal}".encode())
    return EmailEvent(
        h.hexdigest(),
        NAME,
        source,
        type_,
        occurred,
        observed_at,
        message_id,
        campaign_id,
        None,
        recipient.lower() if isinstance(recipient, str) and recipient else None,
        bounce,
        url if isinstance(url, str) else None,
        attributes,
    )


def selector_path(selector: Any) -> str:
    if selector.tags:
        return "/v1/events/tags/" + ";".join(quote(t, safe="") for t in selector.tags)
    return "/v1/events/template/" + quote(str(selector.template), safe="")


def with_ordinals(campaign_id: str, records: list[Any]) -> list[tuple[str, int, Any]]:
    """Pair each record with its selector and its copy number among identical records of the response."""
    seen: dict[bytes, int] = {}
    out = []
    for r in records:
        try:
            key = _DUMPS(r, option=_SORT)
        except TypeError:
            key = repr(r).encode()
        n = seen.get(key, 0)
        seen[key] = n + 1
        out.append((campaign_id, n, r))
    return out


def _events(body: Any) -> list[Any]:
    return body_list(body, "the events response")


def _day(dt: datetime) -> datetime:
    return datetime.combine(dt.astimezone(UTC).date(), time(), tzinfo=UTC)


class SMTPeterEvents(Stream):
    provider = NAME
    name = "events"
    is_mutable = True  # a day keeps filling until it is over, and late events land in past days

    def __init__(self, source: Any, client: Any) -> None:
        super().__init__(source, client)
        self.selectors = [(selector_path(s), s.campaign_id) for s in source.selectors]
        self._campaign_of_path: dict[str, str] = {}

    def normalise_record(self, raw: Any, observed_at: datetime) -> list[EmailEvent]:
        campaign_id, ordinal, record = raw  # read() pairs each record with its selector and copy number
        return [
            normalise(
                record, source=self.source_name, campaign_id=campaign_id, observed_at=observed_at, ordinal=ordinal
            )
        ]

    def dlq_payload(self, raw: Any) -> Any:
        return raw[2]

    def cursor_time(self, cursor: Any) -> datetime | None:
        return timestamp(cursor["day"], "day") if cursor else None

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        today = _day(plan.now)
        # One request per day and selector: a poll after a long outage stays inside the lookback
        # (reconcile and backfill reach further back when asked to).
        start = pass_start(
            plan.kind, self.cursor_time(cursor), _day(plan.window_start(self.lookback)), floor_at_window=True
        )
        end = today + WINDOW
        if plan.kind is PassKind.BACKFILL:
            end = min(_day(plan.end) + WINDOW, end)
        windows = DateWindowPaginator(start, end, WINDOW)
        while not windows.finished:
            since, until = windows.current_value
            params = {"start": since.date().isoformat(), "end": until.date().isoformat()}
            for i, (path, campaign_id) in enumerate(self.selectors):
                records = await self.request(path, params, parse=_events)
                last = i == len(self.selectors) - 1
                # A day is complete once every selector has read it and it is over.
                done_day = min(until, today)
                yield Page(with_ordinals(campaign_id, records), {"day": done_day.date().isoformat()} if last else None)
            windows.advance(None, ())


class SMTPeterSelector(Model):
    """One of ``{tags: [a, b]}`` or ``{template: ID}``."""

    tags: list[str] | None = None
    #: YAML reads a numeric template id as an int; it is an opaque id.
    template: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SMTPeterSelector:
        if (self.tags is None) == (self.template is None):
            raise ValueError("give exactly one of 'tags' (a list) or 'template' (an id)")
        if self.tags is not None and (not self.tags or any(not t or ";" in t for t in self.tags)):
            raise ValueError("'tags' must be a non-empty list of tags without ';'")
        return self

    @property
    def campaign_id(self) -> str:
        return f"tags:{';'.join(self.tags)}" if self.tags else f"template:{self.template}"


class SMTPeterSource(SourceBase):
    provider: Literal["smtpeter"]
    access_token: SecretStr
    selectors: list[SMTPeterSelector] = Field(min_length=1)


# SMTPeter: the token is a query parameter, so it is in every URL (the log filter masks it).
PROVIDER = Provider(
    name=NAME,
    config=SMTPeterSource,
    auth=QueryParamAuth(param="access_token", field="access_token"),
    streams=(SMTPeterEvents,),
)
