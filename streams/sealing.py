"""Retention of per-message state: messages past the horizon are sealed, their figures kept exactly.

A message whose last fact is older than ``worker.message_horizon`` is *sealed*:

* its contribution is added to the **sealed base** of its campaign and of its
  contact, kept in the same partition of the message table (keys under
  ``SEALED``), so the campaign, contact and mailbox-provider figures do not
  change: the contribution only moves from a live message to a base;
* its state is deleted (a tombstone in the changelog);
* a **marker** keeps its key (value: when it was sealed), so an event that
  arrives for it later is recognised.

A partition view is rebuilt from the bases plus the live messages: recovery
reads one record per sealed campaign or contact, not every message of history.

Everything one seal batch writes (bases, markers, tombstones) goes to the
changelog in one Kafka record batch, which the broker appends whole or not at
all: a worker killed while sealing leaves a changelog where each message is
either live or in its bases, never both, never neither.

**The rule for an event of a sealed message**: it is not applied (a sealed
message's figures are final) and it is counted in
``mailpulse_stream_events_total{result="sealed"}``. A marker is dropped
``worker.sealed_marker_ttl`` after sealing (0 keeps it forever); an event
arriving after that for the same message starts a new message. With the
defaults that is an event more than 90 days after its message's last fact;
the start-up check holds the marker's life above the events topic's
retention, so no *replayed* event can ever get past it.

Everything here is pure; the agents do the I/O (``mailpulse.streams.agents``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mailpulse.streams.aggregates import (
    CONTACT_HOURLY_RETENTION_MS,
    HOURLY_RETENTION_MS,
    Aggregate,
    decode_aggregate,
    encode_aggregate,
)
from mailpulse.streams.reducers import MessageState, contribution

__all__ = [
    "CAMPAIGN_BASE",
    "CONTACT_BASE",
    "MARKER",
    "MESSAGES_START",
    "SEALED",
    "BaseLookup",
    "last_fact_ms",
    "marker_expired",
    "retention_problem",
    "seal_writes",
]

#: Every key of the sealing bookkeeping starts with this (before any message key: those start
#: with a source name, never with a NUL byte).
SEALED = b"\x00sealed\x00"
CAMPAIGN_BASE = SEALED + b"campaign\x00"
CONTACT_BASE = SEALED + b"contact\x00"
MARKER = SEALED + b"message\x00"
#: The first key after the sealing bookkeeping: where a partition's message states begin.
MESSAGES_START = b"\x01"

#: kind ("campaign" / "contact"), aggregate key -> its sealed base, or None.
BaseLookup = Callable[[str, str], Aggregate | None]


def last_fact_ms(state: MessageState) -> int:
    """When the message's latest fact occurred (epoch ms): the horizon counts from it."""
    return max(state.last.values(), default=0)


def marker_expired(value: bytes, now_ms: int, ttl_ms: int) -> bool:
    """Whether a marker (its value: the sealing time in epoch ms) is past its TTL (0: never)."""
    return ttl_ms > 0 and int(value) < now_ms - ttl_ms


def base_key(kind: str, key: str) -> bytes:
    return (CAMPAIGN_BASE if kind == "campaign" else CONTACT_BASE) + key.encode()


def seal_writes(
    messages: Iterable[tuple[bytes, MessageState]], lookup: BaseLookup, now_ms: int
) -> list[tuple[bytes, bytes | None]]:
    """The table writes that seal ``messages``: their bases updated, their markers, their tombstones.

    ``lookup`` gives a base as the table holds it before these writes. Bases come first, then
    markers, then tombstones (the order the changelog gets them, in one record batch).
    """
    bases: dict[tuple[str, str], Aggregate] = {}
    markers: list[tuple[bytes, bytes | None]] = []
    tombstones: list[tuple[bytes, bytes | None]] = []
    stamp = str(now_ms).encode()
    for key, state in messages:
        c = contribution(state)
        for kind, agg_key, retention in (
            ("campaign", c.campaign, HOURLY_RETENTION_MS),
            ("contact", c.contact, CONTACT_HOURLY_RETENTION_MS),
        ):
            if agg_key is None:
                continue
            base = bases.get((kind, agg_key))
            if base is None:
                base = lookup(kind, agg_key) or Aggregate(state.provider)
                bases[kind, agg_key] = base
            # The same sum the live view holds for this message, hourly rows within their retention included.
            base.add(c, +1, hourly=True, horizon=now_ms - retention)
        markers.append((MARKER + key, stamp))
        tombstones.append((key, None))
    out: list[tuple[bytes, bytes | None]] = [
        (base_key(kind, agg_key), encode_aggregate(base)) for (kind, agg_key), base in bases.items()
    ]
    return out + markers + tombstones


def retention_problem(horizon_ms: int, marker_ttl_ms: int, events_retention_ms: int | None) -> str | None:
    """What is wrong with the horizon and marker TTL, against the events topic's ``retention.ms``, or None.

    A message must stay live while any of its events can still be read (the horizon exceeds the
    topic's retention), and its marker must outlive every replay of them (so must the TTL). A topic
    kept forever (-1) allows sealing only with markers kept forever.
    """
    if horizon_ms <= 0 or events_retention_ms is None:
        return None

    def days(ms: int) -> str:
        return f"{ms / 86_400_000:g} days" if ms >= 86_400_000 else f"{ms / 1000:g} s"

    if events_retention_ms < 0:
        if marker_ttl_ms > 0:
            return (
                "sealed_marker_ttl: the events topic keeps events forever (retention.ms -1): set it to 0 (keep markers)"
            )
        return None
    if horizon_ms <= events_retention_ms:
        return (
            f"message_horizon ({days(horizon_ms)}) must be longer than the events topic's retention "
            f"({days(events_retention_ms)}): a replayed event could find its message sealed"
        )
    if 0 < marker_ttl_ms < events_retention_ms:
        return (
            f"sealed_marker_ttl ({days(marker_ttl_ms)}) must cover the events topic's retention "
            f"({days(events_retention_ms)}), or be 0 (keep markers)"
        )
    return None


def decode_base(raw: bytes, now_ms: int, kind: str) -> Aggregate:
    """A sealed base as the view starts from it: hourly rows past their retention dropped."""
    base = decode_aggregate(raw)
    base.expire(now_ms - (HOURLY_RETENTION_MS if kind == "campaign" else CONTACT_HOURLY_RETENTION_MS))
    return base
