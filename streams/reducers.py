"""Per-message state: an idempotent merge of facts, and the flags derived from it.

A message's state is a function of the *set* of events seen for it (each event
is identified by its deterministic ``event_id``), so applying an event twice, or
applying a message's events in any order, yields the same state, the same
flags and the same counters. Everything here is pure and does no I/O.

Flags (one per message, at most once each; see issue 4)::

    sent          any of sent, delivered, deferred, opened, clicked, bounced,
                  complained, unsubscribed, replied
    bounced       a bounced event; hard_bounced / soft_bounced by its kind
                  (a message with both a hard and a soft bounce counts as hard)
    delivered     (delivered, opened, clicked, complained, unsubscribed or replied)
                  and not bounced; for a provider that reports no deliveries
                  (attribute reports_delivery=false): sent and not bounced
    opened        opened or clicked (a click implies an open)
    clicked, complained, unsubscribed, replied, failed, deferred, suppressed:
                  an event of that type

``opens_total``/``clicks_total`` count distinct open/click events, or the
provider's running counter when it reports one (its largest value seen).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import orjson

from topics.events import (
    ATTR_CLICKS_COUNTER,
    ATTR_OPENS_COUNTER,
    ATTR_REPORTS_DELIVERY,
    EmailEvent,
)

__all__ = [
    "COUNT_FIELDS",
    "FLAG_FIELDS",
    "Contribution",
    "MessageState",
    "apply_event",
    "apply_events",
    "campaign_key",
    "contact_key",
    "contribution",
    "decode_state",
    "encode_state",
    "flag_times",
    "short_id",
]

#: Order of the counters everywhere (API, partials, hourly windows).
FLAG_FIELDS: tuple[str, ...] = (
    "sent",
    "delivered",
    "bounced",
    "hard_bounced",
    "soft_bounced",
    "opened",
    "clicked",
    "complained",
    "unsubscribed",
    "replied",
    "failed",
    "deferred",
    "suppressed",
)
COUNT_FIELDS: tuple[str, ...] = FLAG_FIELDS + ("opens_total", "clicks_total")

_SENT_TYPES = (
    "sent",
    "delivered",
    "deferred",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "unsubscribed",
    "replied",
)
_DELIVERY_TYPES = ("delivered", "opened", "clicked", "complained", "unsubscribed", "replied")
_PLAIN_FLAGS = ("clicked", "complained", "unsubscribed", "replied", "failed", "deferred", "suppressed")
_ACTIVE_TYPES = ("delivered", "opened", "clicked", "replied")
_HARD = "bounce:hard"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_SOFT = "bounce:soft"


def short_id(event_id: str) -> str:
    """The first 64 bits of the event id: enough to tell a message's events apart, half the memory."""
    return event_id[:16]


@dataclass(frozen=True, slots=True)
class MessageState:
    """Everything known about one message, as a merge of its distinct events."""

    provider: str
    source: str
    #: Ids (``short_id``) of the events merged so far: the dedupe set.
    ids: frozenset[str] = frozenset()
    #: Smallest non-null ids seen: a deterministic choice if events disagree.
    campaign_id: str | None = None
    contact_id: str | None = None
    email: str | None = None
    #: False once any event says the provider never reports deliveries.
    reports_delivery: bool = True
    #: Fact ("delivered", "bounce:hard", ...) -> first / last occurrence, epoch ms.
    first: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    opens: int = 0
    clicks: int = 0
    opens_counter: int = 0
    clicks_counter: int = 0


def _min_str(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a <= b else b


def _counter(attributes: Any, name: str) -> int:
    value = attributes.get(name) if attributes else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


def apply_events(state: MessageState | None, events: Iterable[EmailEvent]) -> MessageState | None:
    """Merge events into a state; returns the *same object* when nothing new was learnt.

    Callers compare with ``is`` to know whether the state must be written.
    """
    ids: set[str] | None = None
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    cur = state
    changes: dict[str, Any] = {}
    for ev in events:
        sid = short_id(ev.event_id)
        if cur is None:
            cur = MessageState(provider=ev.provider, source=ev.source)
            state_ids: frozenset[str] = frozenset()
        else:
            state_ids = cur.ids
        if sid in state_ids or (ids is not None and sid in ids):
            continue
        if ids is None:
            ids = set(state_ids)
            first = dict(cur.first)
            last = dict(cur.last)
            changes = {
                "campaign_id": cur.campaign_id,
                "contact_id": cur.contact_id,
                "email": cur.email,
                "reports_delivery": cur.reports_delivery,
                "opens": cur.opens,
                "clicks": cur.clicks,
                "opens_counter": cur.opens_counter,
                "clicks_counter": cur.clicks_counter,
            }
        ids.add(sid)
        ts = (ev.occurred_at - _EPOCH) // _MS
        facts = [ev.type.value]
        if ev.type.value == "bounced" and ev.bounce is not None and ev.bounce.kind.value != "unknown":
            facts.append("bounce:" + ev.bounce.kind.value)
        for f in facts:
            old = first.get(f)
            if old is None or ts < old:
                first[f] = ts
            old = last.get(f)
            if old is None or ts > old:
                last[f] = ts
        changes["campaign_id"] = _min_str(changes["campaign_id"], ev.campaign_id)
        changes["contact_id"] = _min_str(changes["contact_id"], ev.contact_id)
        changes["email"] = _min_str(changes["email"], ev.email)
        attrs = ev.attributes
        if attrs and attrs.get(ATTR_REPORTS_DELIVERY) is False:
            changes["reports_delivery"] = False
        if ev.type.value == "opened":
            changes["opens"] += 1
            changes["opens_counter"] = max(changes["opens_counter"], _counter(attrs, ATTR_OPENS_COUNTER))
        elif ev.type.value == "clicked":
            changes["clicks"] += 1
            changes["clicks_counter"] = max(changes["clicks_counter"], _counter(attrs, ATTR_CLICKS_COUNTER))
    if ids is None:
        return state if state is not None else cur
    assert cur is not None
    return replace(cur, ids=frozenset(ids), first=first, last=last, **changes)


def apply_event(state: MessageState | None, event: EmailEvent) -> MessageState:
    """Merge one event (see ``apply_events``)."""
    out = apply_events(state, (event,))
    assert out is not None
    return out


def campaign_key(state: MessageState) -> str | None:
    return None if state.campaign_id is None else f"{state.source}:{state.campaign_id}"


def contact_key(state: MessageState) -> str | None:
    """``{source}:{contact_id}``, or ``{source}:{email}`` where the provider has no contact id."""
    if state.contact_id is not None:
        return f"{state.source}:{state.contact_id}"
    if state.email is not None:
        return f"{state.source}:{state.email}"
    return None


def _first_of(first: dict[str, int], types: Iterable[str]) -> int | None:
    out: int | None = None
    for t in types:
        v = first.get(t)
        if v is not None and (out is None or v < out):
            out = v
    return out


def flag_times(state: MessageState) -> tuple[int | None, ...]:
    """For each of ``FLAG_FIELDS``, when the flag became true (epoch ms), or None if it is false.

    The time is the first occurrence of the facts that make the flag true; the
    hourly windows count a message in the hour its flag became true.
    """
    first = state.first
    sent = _first_of(first, _SENT_TYPES)
    bounced = first.get("bounced")
    hard = first.get(_HARD)
    soft = first.get(_SOFT) if hard is None else None
    if bounced is not None:
        delivered = None
    elif state.reports_delivery:
        delivered = _first_of(first, _DELIVERY_TYPES)
    else:
        delivered = sent
    opened = _first_of(first, ("opened", "clicked"))
    return (sent, delivered, bounced, hard, soft, opened) + tuple(first.get(t) for t in _PLAIN_FLAGS)


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one message adds to its campaign's and its contact's aggregates."""

    counts: tuple[int, ...]  # COUNT_FIELDS order
    times: tuple[int | None, ...]  # FLAG_FIELDS order, see flag_times
    first_at: int | None
    last_at: int | None
    last_opened_at: int | None
    last_clicked_at: int | None
    #: Latest time each contact status applied (active, bounced, complained, unsubscribed).
    status_at: tuple[int | None, int | None, int | None, int | None]


def _last_of(last: dict[str, int], types: Iterable[str]) -> int | None:
    out: int | None = None
    for t in types:
        v = last.get(t)
        if v is not None and (out is None or v > out):
            out = v
    return out


def contribution(state: MessageState) -> Contribution:
    times = flag_times(state)
    flags = tuple(0 if t is None else 1 for t in times)
    counts = flags + (max(state.opens, state.opens_counter), max(state.clicks, state.clicks_counter))
    last = state.last
    return Contribution(
        counts=counts,
        times=times,
        first_at=min(state.first.values()) if state.first else None,
        last_at=max(last.values()) if last else None,
        last_opened_at=_last_of(last, ("opened", "clicked")),
        last_clicked_at=last.get("clicked"),
        status_at=(
            _last_of(last, _ACTIVE_TYPES),
            last.get("bounced"),
            last.get("complained"),
            last.get("unsubscribed"),
        ),
    )


# ---------------------------------------------------------------------------
# Codec: the table value (compact JSON, written once per changed message per batch)


def encode_state(state: MessageState) -> bytes:
    return orjson.dumps(
        [
            state.provider,
            state.source,
            sorted(state.ids),
            state.campaign_id,
            state.contact_id,
            state.email,
            state.reports_delivery,
            state.first,
            state.last,
            state.opens,
            state.clicks,
            state.opens_counter,
            state.clicks_counter,
        ]
    )


def decode_state(raw: bytes) -> MessageState:
    (provider, source, ids, campaign_id, contact_id, email, rd, first, last, o, c, oc, cc) = orjson.loads(raw)
    return MessageState(
        provider=provider,
        source=source,
        ids=frozenset(ids),
        campaign_id=campaign_id,
        contact_id=contact_id,
        email=email,
        reports_delivery=rd,
        first=first,
        last=last,
        opens=o,
        clicks=c,
        opens_counter=oc,
        clicks_counter=cc,
    )
