"""The normalised email event: the value schema of ``mailpulse.events.v1``.

Every provider's records become ``EmailEvent`` values. The JSON form is the
contract downstream consumers rely on; ``topics/schemas/email-event.v1.json``
describes the same shape and ``tests/topics/test_schemas.py`` holds the two in
agreement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

__all__ = [
    "Bounce",
    "BounceKind",
    "EmailEvent",
    "EventType",
    "SchemaError",
    "decode_event",
    "encode_event",
    "event_from_dict",
    "event_to_dict",
    "make_event_id",
    "message_key",
    "parse_timestamp",
    "format_timestamp",
]


class EventType(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    REPLIED = "replied"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class BounceKind(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    UNKNOWN = "unknown"


class SchemaError(ValueError):
    """A value does not match the event schema; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Bounce:
    kind: BounceKind = BounceKind.UNKNOWN
    #: SMTP or enhanced status code as the provider gave it ("550", "5.1.1").
    code: str | None = None
    #: The receiving server's or provider's explanation.
    reason: str | None = None


#: Well-known keys of ``EmailEvent.attributes`` that the streams read.
ATTR_REPORTS_DELIVERY = "reports_delivery"  # False: the provider never reports deliveries (SuperSend)
ATTR_OPENS_COUNTER = "opens_counter"  # provider's running count of opens for the message
ATTR_CLICKS_COUNTER = "clicks_counter"  # provider's running count of clicks for the message


# Not frozen: a frozen dataclass's __init__ sets every field through
# object.__setattr__, which made building events ~40% slower, and pollers build
# millions. Treat events as immutable all the same.
# The field order is relied on: the providers build events positionally (pinned by
# tests/connectors/providers/test_positional_fields.py).
@dataclass(slots=True, eq=True)
class EmailEvent:
    #: Deterministic id of the fact: a re-polled record yields the same id.
    event_id: str
    provider: str
    #: The config name of the source (account) the event was read from.
    source: str
    type: EventType
    occurred_at: datetime
    observed_at: datetime
    message_id: str
    campaign_id: str | None = None
    contact_id: str | None = None
    #: Lower-cased recipient address, when the provider gives one.
    email: str | None = None
    bounce: Bounce | None = None
    #: The link followed, for clicks.
    url: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The Kafka key: ``{source}:{message_id}``, the partition key of the events topic."""
        return message_key(self.source, self.message_id)


def message_key(source: str, message_id: str) -> str:
    return f"{source}:{message_id}"


def make_event_id(provider: str, source: str, *identity: object) -> str:
    """A stable 32-hex-digit id from the provider's identity of a fact.

    ``identity`` is whatever names the fact at the provider (a record id and
    an event type, or the event's own content when the provider has no ids).
    """
    text = "\x1f".join([provider, source, *("" if p is None else str(p) for p in identity)])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 timestamp into an aware UTC datetime.

    A timestamp without an offset is taken as UTC: every provider documents UTC.
    """
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_timestamp(dt: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix; milliseconds, or microseconds when present."""
    dt = dt.astimezone(UTC)
    us = dt.microsecond
    frac = f"{us // 1000:03d}" if us % 1000 == 0 else f"{us:06d}"
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{frac}Z"


# ---------------------------------------------------------------------------
# Codec


def event_to_dict(event: EmailEvent) -> dict[str, Any]:
    bounce = event.bounce
    return {
        "event_id": event.event_id,
        "provider": event.provider,
        "source": event.source,
        "type": event.type.value,
        "occurred_at": format_timestamp(event.occurred_at),
        "observed_at": format_timestamp(event.observed_at),
        "message_id": event.message_id,
        "campaign_id": event.campaign_id,
        "contact_id": event.contact_id,
        "email": event.email,
        "bounce": None if bounce is None else {"kind": bounce.kind.value, "code": bounce.code, "reason": bounce.reason},
        "url": event.url,
        "attributes": dict(event.attributes),
    }


def encode_event(event: EmailEvent) -> bytes:
    return orjson.dumps(event_to_dict(event))


_EVENT_TYPES = {t.value: t for t in EventType}
_BOUNCE_KINDS = {k.value: k for k in BounceKind}
_REQUIRED_STR = ("event_id", "provider", "source", "message_id")
_OPTIONAL_STR = ("campaign_id", "contact_id", "email", "url")
_KNOWN = frozenset(_REQUIRED_STR + _OPTIONAL_STR + ("type", "occurred_at", "observed_at", "bounce", "attributes"))


def _required_str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise SchemaError(name, "required non-empty string" + _got(value))
    return value


def _optional_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise SchemaError(name, "must be a string or null" + _got(value))
    return value


def _timestamp(data: Mapping[str, Any], name: str) -> datetime:
    value = data.get(name)
    if not isinstance(value, str):
        raise SchemaError(name, "required RFC 3339 timestamp" + _got(value))
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise SchemaError(name, f"not an RFC 3339 timestamp: {value[:40]!r}") from None
    if dt.tzinfo is None:
        raise SchemaError(name, f"timestamp needs a UTC offset or Z: {value[:40]!r}")
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before datetime.min in UTC
        raise SchemaError(name, f"timestamp out of range in UTC: {value[:40]!r}") from None


def _email(data: Mapping[str, Any]) -> str | None:
    value = _optional_str(data, "email")
    if value is not None and value != value.lower():
        raise SchemaError("email", "must be lower-cased")
    return value


def _got(value: object) -> str:
    return " (missing)" if value is None else f" (got {type(value).__name__})"


def _bounce(value: object) -> Bounce | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SchemaError("bounce", "must be an object or null" + _got(value))
    kind = _BOUNCE_KINDS.get(value.get("kind"))  # type: ignore[arg-type]
    if kind is None:
        raise SchemaError("bounce.kind", f"must be one of {sorted(_BOUNCE_KINDS)}")
    unknown = set(value) - {"kind", "code", "reason"}
    if unknown:
        raise SchemaError("bounce", f"unknown fields {sorted(unknown)}")
    return Bounce(
        kind=kind,
        code=_optional_str(value, "code") if "code" in value else None,
        reason=_optional_str(value, "reason") if "reason" in value else None,
    )


def event_from_dict(data: Mapping[str, Any]) -> EmailEvent:
    """Build an event from its JSON form, naming the first field that is wrong."""
    if not isinstance(data, dict):
        raise SchemaError("$", "event must be a JSON object")
    unknown = data.keys() - _KNOWN
    if unknown:
        raise SchemaError(sorted(unknown)[0], "unknown field")
    type_ = _EVENT_TYPES.get(data.get("type"))  # type: ignore[arg-type]
    if type_ is None:
        raise SchemaError("type", f"must be one of {sorted(_EVENT_TYPES)}" + _got(data.get("type")))
    attributes = data.get("attributes", {})
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise SchemaError("attributes", "must be an object" + _got(attributes))
    return EmailEvent(
        event_id=_required_str(data, "event_id"),
        provider=_required_str(data, "provider"),
        source=_required_str(data, "source"),
        type=type_,
        occurred_at=_timestamp(data, "occurred_at"),
        observed_at=_timestamp(data, "observed_at"),
        message_id=_required_str(data, "message_id"),
        campaign_id=_optional_str(data, "campaign_id"),
        contact_id=_optional_str(data, "contact_id"),
        email=_email(data),
        bounce=_bounce(data.get("bounce")),
        url=_optional_str(data, "url"),
        attributes=attributes,
    )


def decode_event(raw: bytes | str) -> EmailEvent:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SchemaError("$", f"not valid JSON: {exc}") from None
    return event_from_dict(data)
