"""bench/eventgen.py: the streamed generator (EventStream) against the in-memory one (generate_events)."""

from __future__ import annotations

import hashlib
import re
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime

import pytest

from bench.eventgen import SOURCES, EventStream, generate_events, split_contacts
from mailpulse.topics.events import EmailEvent

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def digest(events: list[EmailEvent]) -> str:
    h = hashlib.sha256()
    for e in events:
        line = (
            f"{e.event_id}|{e.type.value}|{e.occurred_at.isoformat()}|{e.campaign_id}|{e.contact_id}|"
            f"{e.email}|{sorted(e.attributes.items())}|{e.bounce}\n"
        )
        h.update(line.encode())
    return h.hexdigest()


def flat(stream: EventStream) -> list[EmailEvent]:
    return [e for chunk in stream for e in chunk]


def contacts_of(events: list[EmailEvent]) -> set[str]:
    return {f"{e.source}:{e.contact_id or e.email}" for e in events}


def test_generate_events_gives_the_output_it_gave_before_the_streamed_form():
    # Pinned from the generator as it was before EventStream (same seed, same clock).
    gen = generate_events(300, seed=11, campaigns_per_source=4, now=NOW)
    assert (len(gen.events), gen.duplicates) == (1242, 116)
    assert digest(gen.events) == "5be50e28a808bc716f2fd15ce79ad4df8eea5c3d62b2ed9f016c65eecd96fb7f"


@pytest.mark.parametrize("messages", [1, 7, 300, 1000])
def test_one_chunk_is_the_in_memory_set(messages):
    gen = generate_events(messages, seed=5, campaigns_per_source=3, now=NOW)
    stream = EventStream(messages, seed=5, campaigns_per_source=3, chunk_messages=messages, now=NOW)
    chunks = list(stream)
    assert len(chunks) == 1
    assert chunks[0] == gen.events
    assert stream.duplicates == gen.duplicates
    assert stream.events == len(gen.events)


def test_chunks_hold_the_same_messages_and_facts_as_the_in_memory_set():
    gen = generate_events(1000, seed=3, now=NOW)
    stream = EventStream(1000, seed=3, chunk_messages=130, now=NOW)
    # The per-message draws come first in each chunk, so the first chunk's messages are identical.
    by_id = {e.event_id: e for e in gen.events}
    first = next(iter(stream))
    chunked = flat(stream)
    assert {e.message_id for e in first} == {f"m{n:07d}" for n in range(130)}
    assert all(by_id[e.event_id] == e for e in first)
    # Every message and source is there, and duplicates are real re-polls of a generated fact.
    assert {e.key for e in chunked} == {f"{SOURCES[n % 3][0]}:m{n:07d}" for n in range(1000)}
    counts = Counter(e.event_id for e in chunked)
    assert sum(counts.values()) - len(counts) == stream.duplicates
    assert stream.events == len(chunked)


def test_iterating_again_yields_the_same_chunks():
    stream = EventStream(500, seed=9, chunk_messages=64, now=NOW)
    first = [digest(c) for c in stream]
    dups = stream.duplicates
    assert [digest(c) for c in stream] == first
    assert stream.duplicates == dups
    assert stream.chunks == len(first) == 8


def test_a_chunk_never_splits_a_message():
    stream = EventStream(2000, seed=4, chunk_messages=97, now=NOW)
    owner: dict[str, int] = {}
    for i, chunk in enumerate(stream):
        ids = sorted({int(e.message_id[1:]) for e in chunk})
        assert ids == list(range(i * 97, min(2000, (i + 1) * 97)))  # whole, consecutive messages
        for e in chunk:
            assert owner.setdefault(e.key, i) == i


@pytest.mark.parametrize("contacts", [3, 100, 1001])
def test_the_distinct_contacts_across_sources_honour_the_setting(contacts):
    stream = EventStream(3000, seed=8, contacts=contacts, cover_contacts=True, chunk_messages=500, now=NOW)
    seen = contacts_of(flat(stream))
    assert len(seen) == contacts == stream.distinct_contacts()
    assert sum(split_contacts(contacts)) == contacts


def test_without_cover_the_contacts_stay_within_the_pools():
    stream = EventStream(3000, seed=8, contacts=300, chunk_messages=500, now=NOW)
    seen = contacts_of(flat(stream))
    assert 250 < len(seen) <= 300
    for source, pool in zip((s[0] for s in SOURCES), split_contacts(300), strict=True):
        numbers = {int(re.sub(r"\D", "", c.split(":")[1])) for c in seen if c.startswith(source)}
        assert max(numbers) < pool


def test_fewer_messages_than_contacts_give_one_contact_per_message():
    stream = EventStream(30, seed=1, contacts=300, cover_contacts=True, now=NOW)
    assert len(contacts_of(flat(stream))) == 30 == stream.distinct_contacts()


def test_contacts_and_contacts_per_source_are_exclusive():
    with pytest.raises(ValueError):
        EventStream(10, contacts=5, contacts_per_source=5)
    with pytest.raises(ValueError):
        EventStream(10, chunk_messages=0)


def test_the_stream_is_lazy_and_its_memory_is_one_chunk():
    # 5M events (about 1.16M messages): building the stream and its first chunk costs one chunk.
    started = time.perf_counter()
    tracemalloc.start()
    try:
        stream = EventStream(1_162_790, seed=2026, contacts=1_000_000, cover_contacts=True, chunk_messages=2000)
        chunks = iter(stream)
        first = next(chunks)
        second = next(chunks)
        del first
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 10
    assert 7000 < len(second) < 11000
    assert peak < 64 * 1024 * 1024  # two chunks of ~9k events, far from the gigabytes of 5M events
