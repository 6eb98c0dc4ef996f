"""Stage 1's event decoder: the raw record straight to the reducer's ``Fact``.

``mailpulse.topics.events.decode_event`` builds an ``EmailEvent`` with two aware
datetimes and enums, most of which stage 1 throws away. ``decode_record``
parses the same JSON with the same parsers (orjson, ``datetime.fromisoformat``),
makes the checks of ``event_from_dict`` and returns only what
``mailpulse.streams.reducers.merge_facts`` needs, with ``occurred_at`` as epoch ms. It
takes the fast path only for records in the form ``encode_event`` writes (all
13 fields, UTC timestamps); anything else, and every record the fast path is
not sure about, goes through ``decode_event`` itself, so a record is accepted or rejected exactly as there, and a rejected
record's ``SchemaError`` is ``decode_event``'s (its message becomes the
dead-letter reason). ``tests/streams/test_decode.py`` holds the two equal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from mailpulse.streams.reducers import Fact, fact_of
from mailpulse.topics.events import (
    ATTR_CLICKS_COUNTER,
    ATTR_OPENS_COUNTER,
    ATTR_REPORTS_DELIVERY,
    EventType,
    decode_event,
)

__all__ = ["decode_record"]

_TYPES = frozenset(t.value for t in EventType)
_KNOWN = frozenset(
    (
        "event_id",
        "provider",
        "source",
        "message_id",
        "campaign_id",
        "contact_id",
        "email",
        "url",
        "type",
        "occurred_at",
        "observed_at",
        "bounce",
        "attributes",
    )
)
_NFIELDS = len(_KNOWN)
_BOUNCE_KEYS = frozenset(("kind", "code", "reason"))
_BOUNCE_FACTS = {"hard": "bounce:hard", "soft": "bounce:soft", "unknown": None}
_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_MS = timedelta(milliseconds=1)
_fromisoformat = datetime.fromisoformat
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
#: Builds a Fact from a tuple of its fields without NamedTuple's Python-level __new__.
_tuple_new = tuple.__new__


def _fast(raw: bytes | str) -> Fact | None:
    """The fact, if the record is certainly valid and in the usual form; None to ask decode_event.

    The usual form is what ``encode_event`` writes: all 13 fields present and
    both timestamps in UTC (``Z`` or ``+00:00``). Any exception here means
    "not sure", never a verdict.
    """
    try:
        data = _loads(raw)
    except _JSONDecodeError:
        return None
    if type(data) is not dict or len(data) != _NFIELDS:
        return None
    try:
        # _NFIELDS fields, each of them one of _KNOWN: no unknown field (data.keys() == _KNOWN).
        t = data["type"]
        event_id = data["event_id"]
        provider = data["provider"]
        source = data["source"]
        message_id = data["message_id"]
        occurred = _fromisoformat(data["occurred_at"])
        observed = _fromisoformat(data["observed_at"])
        campaign_id = data["campaign_id"]
        contact_id = data["contact_id"]
        email = data["email"]
        url = data["url"]
        bounce = data["bounce"]
        attrs = data["attributes"]
        if t not in _TYPES:  # TypeError for an unhashable value: not sure
            return None
    except (KeyError, TypeError, ValueError):
        return None
    if not (
        type(event_id) is str
        and event_id
        and type(provider) is str
        and provider
        and type(source) is str
        and source
        and type(message_id) is str
        and message_id
        and occurred.tzinfo is _UTC
        and observed.tzinfo is _UTC
        and (campaign_id is None or type(campaign_id) is str)
        and (contact_id is None or type(contact_id) is str)
        and (url is None or type(url) is str)
        and (email is None or (type(email) is str and email == email.lower()))
    ):
        return None
    bounce_fact = None
    if bounce is not None:
        if type(bounce) is not dict or not bounce.keys() <= _BOUNCE_KEYS:
            return None
        kind = bounce.get("kind")
        if type(kind) is not str or kind not in _BOUNCE_FACTS:
            return None
        code, reason = bounce.get("code"), bounce.get("reason")
        if (code is not None and type(code) is not str) or (reason is not None and type(reason) is not str):
            return None
        if t == "bounced":
            bounce_fact = _BOUNCE_FACTS[kind]
    counter = 0
    no_reports = False
    if attrs:
        if type(attrs) is not dict:
            return None
        no_reports = attrs.get(ATTR_REPORTS_DELIVERY) is False
        if t == "opened" or t == "clicked":
            value = attrs.get(ATTR_OPENS_COUNTER if t == "opened" else ATTR_CLICKS_COUNTER)
            if type(value) is int and value > 0:
                counter = value
    elif attrs is not None and type(attrs) is not dict:
        return None  # a falsy non-object ([], 0, "", false)
    return _tuple_new(
        Fact,
        (
            event_id[:16],
            provider,
            source,
            t,
            (occurred - _EPOCH) // _MS,
            campaign_id,
            contact_id,
            email,
            bounce_fact,
            no_reports,
            counter,
            message_id,
            (observed - _EPOCH) // _MS,
        ),
    )


def decode_record(raw: bytes | str) -> Fact:
    """The reducer's fact of an events-topic value; raises what ``decode_event`` raises for a bad one."""
    fact = _fast(raw)
    if fact is None:
        # Not the usual form, or invalid: decode_event decides (and names the field).
        fact = fact_of(decode_event(raw))
    return fact
