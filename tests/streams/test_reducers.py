"""Flag and delta logic of a message's state: any order, any duplication, same result."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.streams.reducers import (
    COUNT_FIELDS,
    FLAG_FIELDS,
    apply_event,
    apply_events,
    contribution,
    decode_state,
    encode_state,
    flag_times,
)
from mailpulse.topics.events import Bounce, BounceKind, EmailEvent, EventType, make_event_id
from tests.streams.groundtruth import message_flags

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def event(
    type_: EventType,
    minute: int = 0,
    n: int = 0,
    *,
    kind: BounceKind | None = None,
    provider: str = "smartcq",
    **attrs: object,
) -> EmailEvent:
    return EmailEvent(
        event_id=make_event_id(provider, "src", "m1", type_.value, n, minute),
        provider=provider,
        source="src",
        type=type_,
        occurred_at=T0 + timedelta(minutes=minute),
        observed_at=T0 + timedelta(minutes=minute, seconds=5),
        message_id="m1",
        campaign_id="c1",
        contact_id="u1",
        email="u1@example.com",
        bounce=None if kind is None else Bounce(kind=kind),
        attributes=dict(attrs),
    )


def flags_of(events: list[EmailEvent]) -> dict[str, int]:
    state = apply_events(None, events)
    assert state is not None
    return dict(zip(COUNT_FIELDS, contribution(state).counts, strict=True))


def test_every_order_of_a_message_history_gives_the_same_state_and_flags() -> None:
    history = [
        event(EventType.SENT, 0),
        event(EventType.DELIVERED, 1),
        event(EventType.OPENED, 10, 1),
        event(EventType.CLICKED, 12),
        event(EventType.OPENED, 30, 2),
        event(EventType.UNSUBSCRIBED, 40),
    ]
    reference = apply_events(None, history)
    orders = 0
    for order in itertools.permutations(history):
        state = None
        for e in order:
            state = apply_event(state, e)
        assert state == reference
        orders += 1
    assert orders == 720
    assert flags_of(history) == {
        **dict.fromkeys(COUNT_FIELDS, 0),
        "sent": 1,
        "delivered": 1,
        "opened": 1,
        "clicked": 1,
        "unsubscribed": 1,
        "opens_total": 2,
        "clicks_total": 1,
    }


def test_a_duplicate_event_returns_the_same_state_object_so_nothing_is_written() -> None:
    e = event(EventType.SENT)
    state = apply_event(None, e)
    assert apply_event(state, e) is state
    assert apply_events(state, [e, e]) is state


def test_a_click_implies_an_open_even_when_the_open_never_arrives() -> None:
    f = flags_of([event(EventType.SENT), event(EventType.CLICKED, 5)])
    assert (f["opened"], f["clicked"], f["opens_total"], f["delivered"]) == (1, 1, 0, 1)


def test_a_bounce_after_a_delivery_unsets_delivered_whatever_the_order() -> None:
    evs = [event(EventType.SENT), event(EventType.DELIVERED, 1), event(EventType.BOUNCED, 2, kind=BounceKind.HARD)]
    for order in itertools.permutations(evs):
        f = flags_of(list(order))
        assert (f["sent"], f["delivered"], f["bounced"], f["hard_bounced"], f["soft_bounced"]) == (1, 0, 1, 1, 0)


def test_a_message_with_a_soft_and_a_hard_bounce_counts_as_hard_only() -> None:
    f = flags_of(
        [event(EventType.BOUNCED, 1, 1, kind=BounceKind.SOFT), event(EventType.BOUNCED, 2, 2, kind=BounceKind.HARD)]
    )
    assert (f["bounced"], f["hard_bounced"], f["soft_bounced"]) == (1, 1, 0)
    g = flags_of([event(EventType.BOUNCED, 1, kind=BounceKind.UNKNOWN)])
    assert (g["bounced"], g["hard_bounced"], g["soft_bounced"], g["sent"]) == (1, 0, 0, 1)


def test_a_provider_without_delivery_reports_counts_sent_and_not_bounced_as_delivered() -> None:
    no_reports = {"reports_delivery": False}
    f = flags_of([event(EventType.SENT, provider="supersend", **no_reports)])
    assert (f["sent"], f["delivered"]) == (1, 1)
    g = flags_of(
        [
            event(EventType.SENT, provider="supersend", **no_reports),
            event(EventType.BOUNCED, 3, provider="supersend", kind=BounceKind.HARD, **no_reports),
        ]
    )
    assert (g["sent"], g["delivered"], g["bounced"]) == (1, 0, 1)


def test_a_provider_opens_counter_counts_as_its_largest_value_not_summed() -> None:
    evs = [event(EventType.OPENED, i, i, opens_counter=c) for i, c in enumerate([1, 3, 2])]
    assert flags_of(evs)["opens_total"] == 3


def test_queued_alone_sets_no_flag_and_failed_and_suppressed_are_not_sent() -> None:
    assert flags_of([event(EventType.QUEUED)]) == dict.fromkeys(COUNT_FIELDS, 0)
    f = flags_of([event(EventType.FAILED, 1, 1), event(EventType.SUPPRESSED, 2, 2)])
    assert (f["sent"], f["failed"], f["suppressed"]) == (0, 1, 1)


def test_flag_times_are_the_first_occurrence_of_the_facts_that_set_the_flag() -> None:
    state = apply_events(None, [event(EventType.CLICKED, 20), event(EventType.SENT, 0), event(EventType.OPENED, 30)])
    assert state is not None
    times = dict(zip(FLAG_FIELDS, flag_times(state), strict=True))
    ms = int(T0.timestamp() * 1000)
    assert times["sent"] == ms
    assert times["opened"] == ms + 20 * 60_000  # the click came first
    assert times["delivered"] == ms + 20 * 60_000


def test_state_survives_its_table_encoding() -> None:
    state = apply_events(
        None,
        [
            event(EventType.SENT),
            event(EventType.BOUNCED, 2, kind=BounceKind.SOFT),
            event(EventType.OPENED, 3, opens_counter=2),
        ],
    )
    assert state is not None
    assert decode_state(encode_state(state)) == state


# ---------------------------------------------------------------------------
# Property: any permutation and any duplication of a message's events

_TYPES = [t for t in EventType]
_event_specs = st.lists(
    st.tuples(
        st.sampled_from(_TYPES),
        st.integers(min_value=0, max_value=3000),
        st.sampled_from([None, BounceKind.HARD, BounceKind.SOFT, BounceKind.UNKNOWN]),
        st.integers(min_value=0, max_value=5),
    ),
    min_size=1,
    max_size=12,
)


def _events(specs: list[tuple[EventType, int, BounceKind | None, int]], reports: bool) -> list[EmailEvent]:
    out = []
    for i, (t, minute, kind, counter) in enumerate(specs):
        attrs: dict[str, object] = {} if reports else {"reports_delivery": False}
        if t is EventType.OPENED and counter:
            attrs["opens_counter"] = counter
        out.append(event(t, minute, i, kind=kind if t is EventType.BOUNCED else None, **attrs))
    return out


@settings(max_examples=300, deadline=None)
@given(
    specs=_event_specs,
    reports=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    dup=st.lists(st.integers(0, 11), max_size=10),
)
def test_any_permutation_and_duplication_gives_the_same_flags_and_counters_as_the_ground_truth(
    specs: list[tuple[EventType, int, BounceKind | None, int]], reports: bool, seed: int, dup: list[int]
) -> None:
    events = _events(specs, reports)
    replayed = events + [events[i % len(events)] for i in dup]
    random.Random(seed).shuffle(replayed)
    state = None
    # Batches of random sizes, as the worker sees them.
    rng = random.Random(seed + 1)
    i = 0
    while i < len(replayed):
        n = rng.randint(1, 4)
        state = apply_events(state, replayed[i : i + n])
        i += n
    assert state is not None
    assert state == apply_events(None, events)
    assert dict(zip(COUNT_FIELDS, contribution(state).counts, strict=True)) == message_flags(events)
