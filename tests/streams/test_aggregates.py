"""Partition views (stage 1) and partial merging (stage 2): deltas equal a rebuild; replays change nothing."""

from __future__ import annotations

import random
import tracemalloc
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.streams.aggregates import (
    HOUR_MS,
    Aggregate,
    PartitionView,
    combine,
    decode_aggregate,
    encode_aggregate,
    merge_partial,
)
from mailpulse.streams.reducers import COUNT_FIELDS, FLAG_FIELDS, MessageState, apply_events, contribution
from mailpulse.streams.spill import SpillingDict
from mailpulse.topics.events import Bounce, BounceKind, EmailEvent, EventType, make_event_id
from tests.streams.groundtruth import ground_truth

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def ev(
    msg: int,
    type_: EventType,
    hours_ago: float,
    n: int = 0,
    *,
    campaign: str = "c1",
    contact: str | None = None,
    kind: BounceKind | None = None,
) -> EmailEvent:
    at = NOW - timedelta(hours=hours_ago)
    return EmailEvent(
        event_id=make_event_id("smartcq", "src", msg, type_.value, n),
        provider="smartcq",
        source="src",
        type=type_,
        occurred_at=at,
        observed_at=at,
        message_id=f"m{msg}",
        campaign_id=campaign,
        contact_id=contact or f"u{msg % 3}",
        email=None,
        bounce=None if kind is None else Bounce(kind=kind),
    )


def run_incrementally(
    view: PartitionView, events: list[EmailEvent], batch: int, states: dict[str, MessageState] | None = None
) -> dict[str, MessageState]:
    states = {} if states is None else states
    for i in range(0, len(events), batch):
        by_key: dict[str, list[EmailEvent]] = {}
        for e in events[i : i + batch]:
            by_key.setdefault(e.key, []).append(e)
        for key, evs in by_key.items():
            old = states.get(key)
            new = apply_events(old, evs)
            assert new is not None
            if new is not old:
                view.apply(old, new, NOW_MS)
                states[key] = new
    return states


def snapshot(view: PartitionView) -> tuple[dict, dict]:
    def agg(table) -> dict:
        held = {k: table.get(k) for k in list(table)}  # a dict or a SpillingDict
        return {
            k: (a.messages, list(a.counts), a.first_at, a.last_at, dict(a.hourly or {}), list(a.status_at), a.email)
            for k, a in held.items()
            if a.messages
        }

    return agg(view.campaigns), agg(view.contacts)


_types = st.sampled_from(
    [
        EventType.SENT,
        EventType.DELIVERED,
        EventType.OPENED,
        EventType.CLICKED,
        EventType.BOUNCED,
        EventType.COMPLAINED,
        EventType.UNSUBSCRIBED,
        EventType.DEFERRED,
    ]
)
_history = st.lists(st.tuples(st.integers(0, 7), _types, st.floats(0, 60), st.integers(0, 2)), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(spec=_history, seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 7))
def test_incremental_deltas_in_any_order_with_replays_equal_a_rebuild_from_message_states(
    spec, seed: int, batch: int
) -> None:
    events = [
        ev(m, t, h, n, campaign=f"c{m % 2}", kind=BounceKind.HARD if t is EventType.BOUNCED else None)
        for m, t, h, n in spec
    ]
    replayed = events + random.Random(seed).choices(events, k=len(events) // 2)
    random.Random(seed).shuffle(replayed)
    live = PartitionView(0, epoch=1)
    states = run_incrementally(live, replayed, batch)
    rebuilt = PartitionView(0, epoch=2)
    rebuilt.rebuild(states.values(), NOW_MS)
    assert snapshot(live) == snapshot(rebuilt)
    # And the sums equal the independent ground truth.
    campaigns, contacts = ground_truth(events)
    for key, exp in campaigns.items():
        assert dict(zip(COUNT_FIELDS, live.campaigns[key].counts, strict=True)) == exp["counts"]
    for key, exp in contacts.items():
        assert dict(zip(COUNT_FIELDS, live.contacts[key].counts, strict=True)) == exp["counts"]


@settings(max_examples=60, deadline=None)
@given(spec=_history, seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 7), capacity=st.integers(1, 2))
def test_a_view_whose_contacts_spill_to_disk_publishes_the_same_partials_as_one_holding_all_in_memory(
    tmp_path_factory, spec, seed: int, batch: int, capacity: int
) -> None:
    events = [ev(m, t, h, n, campaign=f"c{m % 2}", contact=f"u{m % 5}") for m, t, h, n in spec]
    replayed = events + random.Random(seed).choices(events, k=len(events) // 2)
    random.Random(seed).shuffle(replayed)
    spill = SpillingDict(tmp_path_factory.mktemp("spill") / "c", capacity, encode_aggregate, decode_aggregate)
    in_memory, spilling = PartitionView(0, epoch=1), PartitionView(0, epoch=1, contacts=spill)
    try:
        for view in (in_memory, spilling):
            run_incrementally(view, replayed, batch)
        assert snapshot(spilling) == snapshot(in_memory)
        assert spilling.take_dirty() == in_memory.take_dirty()
        assert len(spill.resident_keys()) <= capacity
        # A rebuild (on assignment) into a spill gives the same view as one in memory.
        states = run_incrementally(PartitionView(0, epoch=3), events, 3)
        rebuilt_in_memory, rebuilt_spilling = PartitionView(0, epoch=4), PartitionView(0, epoch=4, contacts=spill)
        rebuilt_in_memory.rebuild(states.values(), NOW_MS)
        rebuilt_spilling.rebuild(states.values(), NOW_MS)
        assert snapshot(rebuilt_spilling) == snapshot(rebuilt_in_memory)
    finally:
        spilling.close()


def test_contact_memory_is_bounded_by_the_cache_size_not_by_the_number_of_contacts(tmp_path) -> None:
    def held_bytes(view_contacts, contacts: int) -> int:
        view = PartitionView(0, epoch=1, contacts=view_contacts)
        states = [apply_events(None, [ev(m, EventType.SENT, 1.0, contact=f"u{m}")]) for m in range(contacts)]
        for state in states:
            contribution(state)  # kept on the state (the worker's state cache is bounded on its own)
        tracemalloc.start()
        try:
            for i, state in enumerate(states):
                view.apply(None, state, NOW_MS)
                if i % 1000 == 999:  # the publish tick takes what changed
                    view.dirty_campaigns.clear()
                    view.dirty_contacts.clear()
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
            view.close()

    def spill(name: str) -> SpillingDict:
        return SpillingDict(tmp_path / name, 500, encode_aggregate, decode_aggregate)

    in_memory = held_bytes(None, 20_000)
    small, large = held_bytes(spill("a"), 5_000), held_bytes(spill("b"), 20_000)
    # Every contact in memory costs hundreds of bytes each; spilled, the held memory does not
    # grow with the contacts (the RocksDB spill's own buffers are outside Python's allocator).
    assert in_memory > 20_000 * 300
    assert large < in_memory / 10
    assert large < small * 1.5 + 200_000


def test_a_contact_keeps_hourly_rows_for_25_hours_while_its_campaign_keeps_48() -> None:
    view = PartitionView(0, epoch=1)
    run_incrementally(
        view,
        [
            ev(1, EventType.SENT, 0.2, contact="u1"),  # this hour: in both
            ev(2, EventType.SENT, 24.5, contact="u1"),  # 24-25 h ago: the mailbox last_24h window's edge
            ev(3, EventType.SENT, 30.0, contact="u1"),  # past the contact's 25 h: campaign rows only
        ],
        batch=10,
    )
    current = NOW_MS - NOW_MS % HOUR_MS
    contact, campaign = view.contacts["src:u1"], view.campaigns["src:c1"]
    assert contact.counts[COUNT_FIELDS.index("sent")] == campaign.counts[COUNT_FIELDS.index("sent")] == 3
    assert sorted((current - h) // HOUR_MS for h in campaign.hourly) == [0, 24, 30]
    assert sorted((current - h) // HOUR_MS for h in contact.hourly) == [0, 24]
    view.expire(NOW_MS + 2 * HOUR_MS)
    assert sorted((current - h) // HOUR_MS for h in contact.hourly) == [0]
    assert sorted((current - h) // HOUR_MS for h in campaign.hourly) == [0, 24, 30]


def test_hourly_windows_count_a_message_in_the_hour_its_flag_became_true_and_expire_after_48h() -> None:
    view = PartitionView(0, epoch=1)
    run_incrementally(
        view,
        [
            ev(1, EventType.SENT, 0.2),  # this hour
            ev(1, EventType.BOUNCED, 0.1, 1, kind=BounceKind.HARD),
            ev(2, EventType.SENT, 3.0),  # three hours ago
            ev(2, EventType.DELIVERED, 2.9, 1),
            ev(3, EventType.SENT, 49.0),  # older than 48 h: counted in totals, not in windows
        ],
        batch=10,
    )
    agg = view.campaigns["src:c1"]
    assert agg.counts[COUNT_FIELDS.index("sent")] == 3
    current = NOW_MS - NOW_MS % HOUR_MS
    hourly = {(current - h) // HOUR_MS: dict(zip(FLAG_FIELDS, row, strict=True)) for h, row in agg.hourly.items()}
    assert sorted(hourly) == [-0, 3] or sorted(hourly) == [0, 3]
    assert (hourly[0]["sent"], hourly[0]["bounced"], hourly[0]["hard_bounced"]) == (1, 1, 1)
    assert (hourly[3]["sent"], hourly[3]["delivered"]) == (1, 1)
    # 46 hours later the 3-hour-old window is past the 48 h horizon and dropped.
    later = NOW_MS + 46 * HOUR_MS
    view.expire(later)
    assert list(agg.hourly) == [current]
    c = combine({"partials": {"0": agg.to_partial(0, (1, 1), kind="campaign")}}, later + 2 * HOUR_MS)
    assert c is not None and c.hourly == {}  # and stage 2 filters by its own clock too
    assert c.counts[COUNT_FIELDS.index("sent")] == 3


def test_a_newer_partial_replaces_an_older_one_and_a_stale_or_replayed_one_changes_nothing() -> None:
    def partial(p: int, v: tuple[int, int], sent: int) -> dict:
        return {
            "partition": p,
            "version": list(v),
            "provider": "smartcq",
            "messages": sent,
            "counts": [sent] + [0] * 14,
            "first_at": 1,
            "last_at": 2,
            "hourly": {},
        }

    value = merge_partial(None, partial(0, (100, 1), 5))
    value = merge_partial(value, partial(3, (200, 7), 2))
    assert value is not None
    assert merge_partial(value, partial(0, (100, 1), 5)) is None  # replay
    assert merge_partial(value, partial(0, (99, 50), 9)) is None  # an old owner, late
    newer = merge_partial(value, partial(0, (101, 1), 6))  # a new owner's rebuild
    assert newer is not None
    c = combine(newer, NOW_MS)
    assert c is not None and (c.counts[0], c.messages) == (8, 8)
    gone = merge_partial(newer, {**partial(3, (200, 8), 0), "messages": 0})
    c = combine(gone, NOW_MS)
    assert c is not None and c.counts[0] == 6
    assert merge_partial(gone, partial(3, (200, 7), 2)) is None  # the tombstone keeps its version


def test_a_message_that_gains_its_contact_id_moves_between_contact_keys() -> None:
    view = PartitionView(0, epoch=1)
    e1 = ev(1, EventType.SENT, 1.0)
    e1 = EmailEvent(
        **{**{f: getattr(e1, f) for f in e1.__dataclass_fields__}, "contact_id": None, "email": "a@example.com"}
    )
    states = run_incrementally(view, [e1], 1)
    assert set(view.contacts) == {"src:a@example.com"}
    view.take_dirty()
    run_incrementally(view, [e1, ev(1, EventType.DELIVERED, 0.5, 1, contact="u9")], 2, states)
    campaigns, contacts = view.take_dirty()
    moved = dict(contacts)
    assert moved["src:a@example.com"]["messages"] == 0  # published once as empty, then forgotten
    assert moved["src:u9"]["counts"][COUNT_FIELDS.index("delivered")] == 1
    assert set(view.contacts) == {"src:u9"}


def test_combined_status_is_the_latest_that_applies() -> None:
    base = {
        "partition": 0,
        "version": [1, 1],
        "provider": "x",
        "messages": 1,
        "counts": [0] * 15,
        "first_at": 1,
        "last_at": 9,
    }
    value = {
        "partials": {
            "0": {**base, "status_at": [5, 7, None, None]},
            "1": {**base, "partition": 1, "status_at": [9, None, None, 3]},
        }
    }
    c = combine(value, NOW_MS)
    assert c is not None and c.status == "active"
    value["partials"]["1"]["status_at"] = [4, None, None, 8]
    c = combine(value, NOW_MS)
    assert c is not None and c.status == "unsubscribed"
    assert combine({"partials": {}}, NOW_MS) is None


def test_partials_keep_their_deployed_compact_keys_on_the_wire_and_read_back_with_full_names() -> None:
    from mailpulse.streams.aggregates import decode_bundle, decode_value, encode_bundle, encode_value

    agg = Aggregate("smartcq")
    agg.add(contribution(apply_events(None, [ev(1, EventType.OPENED, 1.0)])), +1, hourly=False, horizon=0)
    contact = agg.to_partial(3, (7, 9), kind="contact")
    campaign = agg.to_partial(3, (7, 9), kind="campaign")
    wire = orjson.loads(encode_bundle([("src:u1", contact), ("src:c1", campaign)]))
    # The format running deployments hold on the partials topics and in the stage-2 changelogs
    # (contact partials gained "h", and "e" once an address is known: additions older readers ignore).
    assert [sorted(p) for _, p in wire] == [
        ["c", "f", "h", "l", "lc", "lo", "n", "p", "provider", "s", "v"],
        ["c", "f", "h", "l", "n", "p", "provider", "v"],
    ]
    assert (wire[0][1]["p"], wire[0][1]["v"], wire[0][1]["n"]) == (3, [7, 9], 1)
    assert list(decode_bundle(orjson.dumps(wire))) == [("src:u1", contact), ("src:c1", campaign)]
    value = merge_partial(None, contact)
    assert value is not None
    stored = encode_value(value)
    assert sorted(orjson.loads(stored)["partials"]["3"]) == sorted(wire[0][1])
    assert decode_value(stored) == value
    tombstone = merge_partial(value, {**contact, "version": [7, 10], "messages": 0})
    assert tombstone is not None
    assert orjson.loads(encode_value(tombstone))["partials"]["3"] == {"p": 3, "v": [7, 10], "n": 0}


def test_contact_partials_are_taken_at_most_a_limit_at_a_time_and_none_is_lost() -> None:
    view = PartitionView(0, epoch=1)
    for m in range(10):
        view.apply(None, apply_events(None, [ev(m, EventType.SENT, 1.0, contact=f"u{m}")]), NOW_MS)
    taken: list[str] = []
    sizes = []
    while True:
        campaigns, contacts = view.take_dirty(3)
        if not campaigns and not contacts:
            break
        sizes.append(len(contacts))
        taken += [key for key, _ in contacts]
    assert sizes == [3, 3, 3, 1]
    assert sorted(taken) == sorted(f"src:u{m}" for m in range(10))
