"""Per-message state: an idempotent merge of facts, and the flags derived from it.

A message's state is a function of the *set* of events seen for it (each event
is identified by its deterministic ``event_id``), so applying an event twice, or
applying a message's events in any order, yields the same state, the same
flags and the same counters. Everything here is pure and does no I/O.

Flags (one per message, at most once each; the flag table of docs/streams.md)::

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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from mailpulse.topics.events import (
    ATTR_CLICKS_COUNTER,
    ATTR_OPENS_COUNTER,
    ATTR_REPORTS_DELIVERY,
    EmailEvent,
)

__all__ = [
    "COUNT_FIELDS",
    "FLAG_FIELDS",
    "Contribution",
    "Fact",
    "MessageState",
    "apply_event",
    "apply_events",
    "campaign_key",
    "contact_key",
    "contribution",
    "decode_state",
    "encode_state",
    "fact_of",
    "flag_times",
    "merge_facts",
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

_SENT_TYPES = frozenset(
    ("sent", "delivered", "deferred", "opened", "clicked", "bounced", "complained", "unsubscribed", "replied")
)
_DELIVERY_TYPES = frozenset(("delivered", "opened", "clicked", "complained", "unsubscribed", "replied"))
_OPEN_TYPES = frozenset(("opened", "clicked"))
_PLAIN_FLAGS = ("clicked", "complained", "unsubscribed", "replied", "failed", "deferred", "suppressed")
_ACTIVE_TYPES = frozenset(("delivered", "opened", "clicked", "replied"))
_HARD = "bounce:hard"
_SOFT = "bounce:soft"
_BOUNCE_FACTS = {"hard": _HARD, "soft": _SOFT}
_NO_IDS: frozenset[str] = frozenset()
_HOUR_MS = 3_600_000
_NF = len(FLAG_FIELDS)


def short_id(event_id: str) -> str:
    """The first 64 bits of the event id: enough to tell a message's events apart, half the memory."""
    return event_id[:16]


class Fact(NamedTuple):
    """What the reducer needs of one event (building an ``EmailEvent`` and its datetimes costs more than merging it).

    ``mailpulse.streams.decode.decode_record`` builds it straight from the
    JSON with ``tuple.__new__(Fact, fields)`` (NamedTuple's own ``__new__`` is
    Python code, 3x the cost); ``merge_facts`` unpacks it.
    """

    #: ``short_id(event_id)``: tells a message's events apart.
    short_id: str
    provider: str
    source: str
    #: The ``EventType`` value ("delivered", "opened", ...).
    type: str
    #: ``occurred_at`` in epoch milliseconds (floor).
    occurred_ms: int
    campaign_id: str | None
    contact_id: str | None
    email: str | None
    #: For a bounced event: "bounce:hard" / "bounce:soft" (None for an unknown kind and other events).
    bounce_fact: str | None
    #: The event says its provider never reports deliveries (``attributes.reports_delivery`` false).
    no_delivery_reports: bool
    #: The provider's running opens (for an open) or clicks (for a click) counter, else 0.
    counter: int
    message_id: str
    #: ``observed_at`` (when a poller read it) in epoch milliseconds: the freshness metric's second reference.
    observed_ms: int


def _counter(attributes: Any, name: str) -> int:
    value = attributes.get(name) if attributes else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


def fact_of(ev: EmailEvent) -> Fact:
    """The reducer's view of an event (see ``Fact``)."""
    t = ev.type.value
    attrs = ev.attributes
    bounce = ev.bounce
    if t == "opened":
        counter = _counter(attrs, ATTR_OPENS_COUNTER)
    elif t == "clicked":
        counter = _counter(attrs, ATTR_CLICKS_COUNTER)
    else:
        counter = 0
    return Fact(
        short_id(ev.event_id),
        ev.provider,
        ev.source,
        t,
        _epoch_ms(ev.occurred_at),
        ev.campaign_id,
        ev.contact_id,
        ev.email,
        _BOUNCE_FACTS.get(bounce.kind.value) if t == "bounced" and bounce is not None else None,
        bool(attrs) and attrs.get(ATTR_REPORTS_DELIVERY) is False,
        counter,
        ev.message_id,
        _epoch_ms(ev.observed_at),
    )


def _epoch_ms(dt: datetime) -> int:
    """Exact epoch ms (floor), like ``(dt - epoch) // 1 ms``, for an aware datetime."""
    ms = (
        (dt.toordinal() - 719163) * 86_400_000
        + (dt.hour * 3600 + dt.minute * 60 + dt.second) * 1000
        + dt.microsecond // 1000
    )
    offset = dt.utcoffset()
    if offset:
        ms -= (offset.days * 86_400 + offset.seconds) * 1000 + offset.microseconds // 1000
    return ms


# Not frozen: a frozen dataclass's __init__ sets every field through
# object.__setattr__ (slower, and states are built per changed message). Treat
# states as immutable all the same: the reducer never changes one, it builds a
# new one.
@dataclass(slots=True, eq=True)
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
    #: ``contribution(self)``, computed once (a state never changes).
    contrib: Contribution | None = field(default=None, compare=False, repr=False)


def merge_facts(state: MessageState | None, facts: Sequence[Fact]) -> MessageState | None:
    """Merge facts into a state; returns the *same object* when nothing new was learnt.

    Callers compare with ``is`` to know whether the state must be written.
    """
    if state is None:
        if not facts:
            return None
        base_ids = _NO_IDS
    else:
        base_ids = state.ids
    ids: set[str] | None = None
    for f in facts:
        sid = f.short_id
        if sid in base_ids:
            continue
        if ids is None:
            ids = set(base_ids)
            if state is None:
                provider, source = facts[0].provider, facts[0].source
                campaign_id = contact_id = email = None
                rd = True
                first: dict[str, int] = {}
                last: dict[str, int] = {}
                opens = clicks = oc = cc = 0
            else:
                provider, source = state.provider, state.source
                campaign_id, contact_id, email = state.campaign_id, state.contact_id, state.email
                rd = state.reports_delivery
                first = dict(state.first)
                last = dict(state.last)
                opens, clicks, oc, cc = state.opens, state.clicks, state.opens_counter, state.clicks_counter
        elif sid in ids:
            continue
        ids.add(sid)
        # The fields of Fact, in order (unpacking is cheaper than 9 attribute reads).
        _, _, _, t, ts, cid, tid, em, bf, no_reports, counter, _, _ = f
        o = first.get(t)
        if o is None or ts < o:
            first[t] = ts
        o = last.get(t)
        if o is None or ts > o:
            last[t] = ts
        if bf is not None:
            o = first.get(bf)
            if o is None or ts < o:
                first[bf] = ts
            o = last.get(bf)
            if o is None or ts > o:
                last[bf] = ts
        if cid is not None and (campaign_id is None or cid < campaign_id):
            campaign_id = cid
        if tid is not None and (contact_id is None or tid < contact_id):
            contact_id = tid
        if em is not None and (email is None or em < email):
            email = em
        if no_reports:
            rd = False
        if t == "opened":
            opens += 1
            if counter > oc:
                oc = counter
        elif t == "clicked":
            clicks += 1
            if counter > cc:
                cc = counter
    if ids is None:
        return state
    return MessageState(
        provider, source, frozenset(ids), campaign_id, contact_id, email, rd, first, last, opens, clicks, oc, cc
    )


def apply_events(state: MessageState | None, events: Iterable[EmailEvent]) -> MessageState | None:
    """Merge events into a state; returns the *same object* when nothing new was learnt.

    Callers compare with ``is`` to know whether the state must be written.
    """
    return merge_facts(state, [fact_of(ev) for ev in events])


def apply_event(state: MessageState | None, event: EmailEvent) -> MessageState:
    """Merge one event (see ``apply_events``)."""
    out = apply_events(state, (event,))
    assert out is not None
    return out


def campaign_key(state: MessageState) -> str | None:
    """``{source}:{campaign_id}``: the campaign aggregate the message counts in."""
    return None if state.campaign_id is None else f"{state.source}:{state.campaign_id}"


def contact_key(state: MessageState) -> str | None:
    """``{source}:{contact_id}``, or ``{source}:{email}`` where the provider has no contact id.

    The one definition of a contact's key: ``contribution`` (the aggregates'
    view of a message) takes it from here.
    """
    if state.contact_id is not None:
        return f"{state.source}:{state.contact_id}"
    if state.email is not None:
        return f"{state.source}:{state.email}"
    return None


def flag_times(state: MessageState) -> tuple[int | None, ...]:
    """For each of ``FLAG_FIELDS``, when the flag became true (epoch ms), or None if it is false.

    The time is the first occurrence of the facts that make the flag true; the
    hourly windows count a message in the hour its flag became true.
    """
    first = state.first
    sent = delivery = opened = None
    # A state holds a handful of facts: one pass over them beats a lookup per flag.
    for fact, t in first.items():
        if fact in _SENT_TYPES:
            if sent is None or t < sent:
                sent = t
            if fact in _DELIVERY_TYPES and (delivery is None or t < delivery):
                delivery = t
            if fact in _OPEN_TYPES and (opened is None or t < opened):
                opened = t
    bounced = first.get("bounced")
    hard = first.get(_HARD)
    soft = first.get(_SOFT) if hard is None else None
    if bounced is not None:
        delivered = None
    elif state.reports_delivery:
        delivered = delivery
    else:
        delivered = sent
    g = first.get
    return (
        sent,
        delivered,
        bounced,
        hard,
        soft,
        opened,
        g("clicked"),
        g("complained"),
        g("unsubscribed"),
        g("replied"),
        g("failed"),
        g("deferred"),
        g("suppressed"),
    )


class Contribution(NamedTuple):
    """What one message adds to its campaign's and its contact's aggregates."""

    counts: tuple[int, ...]  # COUNT_FIELDS order
    times: tuple[int | None, ...]  # FLAG_FIELDS order, see flag_times
    first_at: int | None
    last_at: int | None
    last_opened_at: int | None
    last_clicked_at: int | None
    #: Latest time each contact status applied (active, bounced, complained, unsubscribed).
    status_at: tuple[int | None, int | None, int | None, int | None]
    #: The aggregates it goes to (``campaign_key``, ``contact_key``).
    campaign: str | None = None
    contact: str | None = None
    #: ``(index, count)`` of the non-zero counts, and ``(index, hour)`` of the
    #: flags that are true: derived from ``counts`` and ``times``, so equal
    #: whenever they are.
    nonzero: tuple[tuple[int, int], ...] = ()
    hours: tuple[tuple[int, int], ...] = ()
    #: The recipient's address, where an event carried one (the mailbox-provider figures).
    email: str | None = None


_FLAG_RANGE = range(_NF)


def contribution(state: MessageState) -> Contribution:
    """What ``state`` adds to its aggregates; computed once per state and kept on it."""
    c = state.contrib
    if c is not None:
        return c
    times = flag_times(state)
    counts = [0] * (_NF + 2)
    nonzero = []
    hours = []
    for i in _FLAG_RANGE:
        t = times[i]
        if t is not None:
            counts[i] = 1
            nonzero.append((i, 1))
            hours.append((i, t - t % _HOUR_MS))
    o, oc = state.opens, state.opens_counter
    if o < oc:
        o = oc
    k, kc = state.clicks, state.clicks_counter
    if k < kc:
        k = kc
    if o:
        counts[_NF] = o
        nonzero.append((_NF, o))
    if k:
        counts[_NF + 1] = k
        nonzero.append((_NF + 1, k))
    last = state.last
    first_at = last_at = last_opened_at = active_at = None
    for t in state.first.values():
        if first_at is None or t < first_at:
            first_at = t
    for fact, t in last.items():
        if last_at is None or t > last_at:
            last_at = t
        if fact in _ACTIVE_TYPES:
            if active_at is None or t > active_at:
                active_at = t
            if fact in _OPEN_TYPES and (last_opened_at is None or t > last_opened_at):
                last_opened_at = t
    c = state.contrib = Contribution(
        tuple(counts),
        times,
        first_at,
        last_at,
        last_opened_at,
        last.get("clicked"),
        (active_at, last.get("bounced"), last.get("complained"), last.get("unsubscribed")),
        campaign_key(state),
        contact_key(state),
        tuple(nonzero),
        tuple(hours),
        state.email,
    )
    return c


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
    return MessageState(provider, source, frozenset(ids), campaign_id, contact_id, email, rd, first, last, o, c, oc, cc)
