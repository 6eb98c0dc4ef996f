"""Sealing: a view rebuilt from sealed bases plus the live messages equals the view of every message."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.streams.aggregates import Aggregate, PartitionView
from mailpulse.streams.reducers import COUNT_FIELDS, MessageState
from mailpulse.streams.sealing import (
    CAMPAIGN_BASE,
    CONTACT_BASE,
    MARKER,
    MESSAGES_START,
    SEALED,
    decode_base,
    last_fact_ms,
    marker_expired,
    retention_problem,
    seal_writes,
)
from mailpulse.topics.events import BounceKind, EventType
from tests.streams.groundtruth import ground_truth
from tests.streams.test_aggregates import NOW_MS, _history, ev, run_incrementally, snapshot


def _seal_into(table: dict[bytes, bytes], states: dict[str, MessageState], keys: list[str], now_ms: int) -> None:
    """Seal ``keys`` the way the worker does: look bases up in the table, then apply the writes in order."""

    def lookup(kind: str, key: str) -> Aggregate | None:
        raw = table.get((CAMPAIGN_BASE if kind == "campaign" else CONTACT_BASE) + key.encode())
        return None if raw is None else decode_base(raw, now_ms, kind)

    writes = seal_writes([(k.encode(), states[k]) for k in keys], lookup, now_ms)
    for key, value in writes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


def _rebuild_from(table: dict[bytes, bytes], live: dict[str, MessageState], now_ms: int) -> PartitionView:
    """The worker's rebuild: bases (their key ranges), then the live message states."""
    bases = []
    for prefix, kind in ((CAMPAIGN_BASE, "campaign"), (CONTACT_BASE, "contact")):
        for key in sorted(k for k in table if k.startswith(prefix)):
            bases.append((kind, key[len(prefix) :].decode(), decode_base(table[key], now_ms, kind)))
    view = PartitionView(0, epoch=9)
    view.rebuild([live[k] for k in sorted(live)], now_ms, bases)
    return view


@settings(max_examples=150, deadline=None)
@given(spec=_history, seed=st.integers(0, 2**32 - 1), rounds=st.integers(1, 4))
def test_a_view_rebuilt_from_sealed_bases_and_live_messages_equals_the_view_of_every_message(
    spec, seed: int, rounds: int
) -> None:
    events = [
        ev(
            m,
            t,
            h,
            n,
            campaign=f"c{m % 2}",
            contact=f"u{m % 3}",
            kind=BounceKind.SOFT if t is EventType.BOUNCED else None,
        )
        for m, t, h, n in spec
    ]
    everything = PartitionView(0, epoch=1)
    states = run_incrementally(everything, events, 3)
    rng = random.Random(seed)
    live = dict(states)
    table: dict[bytes, bytes] = {}
    # Seal in several passes (a base accumulates over passes), in any order of messages.
    for _ in range(rounds):
        chosen = [k for k in sorted(live) if rng.random() < 0.5]
        rng.shuffle(chosen)
        _seal_into(table, live, chosen, NOW_MS)
        for k in chosen:
            del live[k]

    rebuilt = _rebuild_from(table, live, NOW_MS)

    assert snapshot(rebuilt) == snapshot(everything)
    campaigns, contacts = ground_truth(events)
    for key, exp in campaigns.items():
        assert dict(zip(COUNT_FIELDS, rebuilt.campaigns[key].counts, strict=True)) == exp["counts"]
    for key, exp in contacts.items():
        assert dict(zip(COUNT_FIELDS, rebuilt.contacts[key].counts, strict=True)) == exp["counts"]
    # Every sealed message left a marker and no state; every live one kept its state.
    sealed = set(states) - set(live)
    assert {k[len(MARKER) :].decode() for k in table if k.startswith(MARKER)} == sealed
    assert not any(k.decode() in states for k in table)


def test_a_sealed_message_leaves_bases_first_then_its_marker_then_its_tombstone() -> None:
    # The order the changelog receives them (one record batch): a prefix of it never exists, but
    # the order still keeps a base ahead of the tombstone that relies on it.
    states = run_incrementally(PartitionView(0, epoch=1), [ev(1, EventType.SENT, 2), ev(1, EventType.OPENED, 1)], 1)
    ((key, state),) = states.items()
    writes = seal_writes([(key.encode(), state)], lambda kind, k: None, NOW_MS)
    kinds = [
        ("base" if k.startswith((CAMPAIGN_BASE, CONTACT_BASE)) else "marker" if k.startswith(MARKER) else "tomb")
        for k, _ in writes
    ]
    assert kinds == ["base", "base", "marker", "tomb"]
    assert writes[-1] == (key.encode(), None)
    assert writes[2] == (MARKER + key.encode(), str(NOW_MS).encode())


def test_the_horizon_counts_from_the_messages_last_fact() -> None:
    events = [ev(1, EventType.SENT, 50), ev(1, EventType.DELIVERED, 49), ev(1, EventType.OPENED, 3)]
    (state,) = run_incrementally(PartitionView(0, epoch=1), events, 1).values()
    assert last_fact_ms(state) == NOW_MS - 3 * 3_600_000


def test_a_marker_expires_after_its_ttl_and_never_with_a_ttl_of_zero() -> None:
    sealed_at = str(NOW_MS - 10_000).encode()
    assert marker_expired(sealed_at, NOW_MS, ttl_ms=5_000)
    assert not marker_expired(sealed_at, NOW_MS, ttl_ms=20_000)
    assert not marker_expired(sealed_at, NOW_MS, ttl_ms=0)


def test_the_sealing_keys_sort_before_every_message_key() -> None:
    # The rebuild reads bases by their prefix and messages from MESSAGES_START on: no message key
    # (``{source}:{message_id}``, a source name first) may fall in the bookkeeping's range.
    state_key = b"a:m1"
    assert SEALED < MESSAGES_START <= state_key
    assert max(CAMPAIGN_BASE, CONTACT_BASE, MARKER) + b"\xff" < MESSAGES_START


DAY_MS = 86_400_000


def test_the_horizon_must_outlast_the_events_topics_retention_and_markers_must_cover_it() -> None:
    month = 30 * DAY_MS
    assert retention_problem(45 * DAY_MS, 45 * DAY_MS, month) is None
    assert retention_problem(45 * DAY_MS, 0, month) is None  # markers kept forever
    assert "message_horizon (30 days) must be longer" in retention_problem(month, 0, month)
    assert "sealed_marker_ttl (7 days) must cover" in retention_problem(45 * DAY_MS, 7 * DAY_MS, month)
    # A topic kept forever: sealing only with markers kept forever.
    assert "set it to 0" in retention_problem(45 * DAY_MS, 45 * DAY_MS, -1)
    assert retention_problem(45 * DAY_MS, 0, -1) is None
    assert retention_problem(0, 45 * DAY_MS, month) is None  # sealing off: nothing to check
