"""Hypothesis strategies for contract values."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from mailpulse.topics.events import Bounce, BounceKind, EmailEvent, EventType

_text = st.text(min_size=1, max_size=20)
_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
_bounces = st.none() | st.builds(
    Bounce, kind=st.sampled_from(BounceKind), code=st.none() | _text, reason=st.none() | _text
)
_json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
_attributes = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: k not in ("reports_delivery", "opens_counter", "clicks_counter")),
    _json_scalars,
    max_size=4,
)

events = st.builds(
    EmailEvent,
    event_id=_text,
    provider=st.sampled_from(["smartcq", "smtpeter", "supersend", "smartersends"]),
    source=_text,
    type=st.sampled_from(EventType),
    occurred_at=_times,
    observed_at=_times,
    message_id=_text,
    campaign_id=st.none() | _text,
    contact_id=st.none() | _text,
    email=st.none() | _text.map(str.lower),
    bounce=_bounces,
    url=st.none() | _text,
    attributes=_attributes,
)
