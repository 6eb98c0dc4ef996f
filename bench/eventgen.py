"""Generated email event sets for the streams tests and benchmark.

Realistic enough to exercise every rule of the flag table: three providers
(one without delivery reports and with a running opens counter, one keyed by
email instead of contact id), deferrals, bounces of every kind, opens and
clicks (some clicks before their open), complaints, unsubscribes, replies,
failures and suppressions; timestamps spread over the last ``span_hours``; a
share of events published twice; and the publish order shuffled within a
window so that a message's events arrive out of order.

Two forms of the same generator:

* ``generate_events(messages, ...)``: the whole set in memory (tests, small runs);
* ``EventStream(messages, ..., chunk_messages=N)``: an iterable of chunks, each
  the events of ``N`` consecutive messages (the last chunk fewer), generated
  lazily, so that millions of events take the memory of one chunk. A chunk
  never splits a message: every event of a message, and every duplicate of it,
  is in the chunk of that message, and the time sort, the reordering window and
  the duplicates' delays apply within a chunk. With ``chunk_messages >=
  messages`` the single chunk is exactly what ``generate_events`` returns for
  the same arguments (it is built that way), which is today's output for a seed.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailpulse.topics.events import (
    ATTR_OPENS_COUNTER,
    ATTR_REPORTS_DELIVERY,
    Bounce,
    BounceKind,
    EmailEvent,
    EventType,
    make_event_id,
)

__all__ = ["DEFAULT_CHUNK_MESSAGES", "SOURCES", "EventStream", "GeneratedSet", "generate_events", "split_contacts"]

#: (source name, provider, has contact ids, reports deliveries, opens counter)
SOURCES = (
    ("acme-smartcq", "smartcq", True, True, False),
    ("acme-supersend", "supersend", True, False, True),
    ("acme-smtpeter", "smtpeter", False, True, False),
)

#: Messages per chunk of an ``EventStream`` unless told (about 430k events, a few hundred MB).
DEFAULT_CHUNK_MESSAGES = 100_000


@dataclass(frozen=True)
class GeneratedSet:
    #: In publish order, duplicates included.
    events: list[EmailEvent]
    messages: int
    duplicates: int


def split_contacts(contacts: int) -> tuple[int, ...]:
    """``contacts`` distinct contacts across all sources -> contacts per source (as even as can be, >= 1)."""
    n = len(SOURCES)
    return tuple(max(1, contacts // n + (1 if i < contacts % n else 0)) for i in range(n))


class EventStream:
    """The generated set in chunks of whole messages, built lazily (bounded memory).

    Contacts: ``contacts_per_source`` (one figure for every source) or
    ``contacts`` (distinct contacts across all sources, split by
    ``split_contacts``); neither: ``messages // 4`` per source, as
    ``generate_events`` always did. Each message draws its contact at random
    from its source's pool, so a pool larger than about a third of the
    source's messages is not all used; ``cover_contacts=True`` gives the k-th
    message of a source contact k while k is below the pool size (the random
    draw is still made, so nothing else changes), so every contact of the pool
    appears once the source has at least as many messages.

    Iterating again starts over from the seed and yields the same chunks;
    ``events`` and ``duplicates`` count what the latest iteration has yielded.
    """

    def __init__(
        self,
        messages: int,
        *,
        seed: int = 7,
        campaigns_per_source: int = 6,
        contacts_per_source: int | None = None,
        contacts: int | None = None,
        cover_contacts: bool = False,
        span_hours: float = 40.0,
        duplicate_rate: float = 0.1,
        shuffle_window: int = 50,
        chunk_messages: int = DEFAULT_CHUNK_MESSAGES,
        now: datetime | None = None,
    ) -> None:
        if contacts is not None and contacts_per_source is not None:
            raise ValueError("give contacts (across sources) or contacts_per_source, not both")
        if chunk_messages < 1:
            raise ValueError("chunk_messages must be at least 1")
        self.messages = messages
        self.seed = seed
        self.campaigns_per_source = campaigns_per_source
        if contacts is not None:
            self.pools = split_contacts(contacts)
        else:
            self.pools = (contacts_per_source or max(1, messages // 4),) * len(SOURCES)
        self.cover_contacts = cover_contacts
        self.span_hours = span_hours
        self.duplicate_rate = duplicate_rate
        self.shuffle_window = shuffle_window
        self.chunk_messages = chunk_messages
        self.now = now or datetime.now(UTC)
        self.events = 0
        self.duplicates = 0

    @property
    def chunks(self) -> int:
        return -(-self.messages // self.chunk_messages)

    def distinct_contacts(self) -> int:
        """How many distinct contacts the set names, when ``cover_contacts`` (else an upper bound)."""
        n = len(SOURCES)
        per_source = [len(range(s, self.messages, n)) for s in range(n)]
        return sum(min(pool, m) for pool, m in zip(self.pools, per_source, strict=True))

    def __iter__(self) -> Iterator[list[EmailEvent]]:
        rng = random.Random(self.seed)
        self.events = self.duplicates = 0
        for start in range(0, self.messages, self.chunk_messages):
            chunk = self._chunk(rng, start, min(self.messages, start + self.chunk_messages))
            self.events += len(chunk)
            yield chunk

    def _chunk(self, rng: random.Random, first: int, end: int) -> list[EmailEvent]:
        now = self.now
        span_hours = self.span_hours
        out: list[tuple[datetime, EmailEvent]] = []
        for n in range(first, end):
            s = n % len(SOURCES)
            source, provider, has_contact_id, reports_delivery, counter = SOURCES[s]
            message_id = f"m{n:07d}"
            campaign = f"c{rng.randrange(self.campaigns_per_source)}"
            pool = self.pools[s]
            contact_n = rng.randrange(pool)
            if self.cover_contacts and n // len(SOURCES) < pool:
                contact_n = n // len(SOURCES)
            contact_id = f"u{contact_n}" if has_contact_id else None
            email = f"user{contact_n}@example.com"
            t0 = now - timedelta(hours=rng.uniform(0.05, span_hours))
            attrs = {} if reports_delivery else {ATTR_REPORTS_DELIVERY: False}
            seq = 0

            def ev(type_: EventType, at: datetime, bounce: Bounce | None = None, extra: dict | None = None) -> None:
                nonlocal seq
                seq += 1
                a = dict(attrs)
                if extra:
                    a.update(extra)
                out.append(
                    (
                        at,
                        EmailEvent(
                            event_id=make_event_id(provider, source, message_id, type_.value, seq),
                            provider=provider,
                            source=source,
                            type=type_,
                            occurred_at=at,
                            observed_at=at + timedelta(seconds=30),
                            message_id=message_id,
                            campaign_id=campaign,
                            contact_id=contact_id,
                            email=email,
                            bounce=bounce,
                            url="https://example.com/x" if type_ is EventType.CLICKED else None,
                            attributes=a,
                        ),
                    )
                )

            def later(minutes: float) -> datetime:
                return min(now, t0 + timedelta(minutes=rng.uniform(0, minutes)))

            r = rng.random()
            if r < 0.02:
                ev(EventType.SUPPRESSED, t0)
                continue
            if r < 0.04:
                ev(EventType.FAILED, t0)
                continue
            if rng.random() < 0.7:
                ev(EventType.QUEUED, t0 - timedelta(seconds=5))
            ev(EventType.SENT, t0)
            if rng.random() < 0.05:
                ev(EventType.DEFERRED, later(5))
            b = rng.random()
            if b < 0.08:
                kind = rng.choice([BounceKind.HARD, BounceKind.SOFT, BounceKind.UNKNOWN])
                ev(EventType.BOUNCED, later(10), Bounce(kind=kind, code="550"))
                if rng.random() < 0.2:  # a late delivery report after the bounce
                    ev(EventType.DELIVERED, later(3))
                continue
            if reports_delivery:
                ev(EventType.DELIVERED, later(3))
            if rng.random() < 0.45:
                opens = rng.randint(1, 4)
                for i in range(opens):
                    ev(EventType.OPENED, later(600), extra={ATTR_OPENS_COUNTER: i + 1} if counter else None)
                if rng.random() < 0.4:
                    for _ in range(rng.randint(1, 2)):
                        ev(EventType.CLICKED, later(600))
            elif rng.random() < 0.05:
                ev(EventType.CLICKED, later(600))  # a click whose open was never tracked
            if rng.random() < 0.02:
                ev(EventType.COMPLAINED, later(900))
            if rng.random() < 0.03:
                ev(EventType.UNSUBSCRIBED, later(900))
            if rng.random() < 0.02:
                ev(EventType.REPLIED, later(900))
        out.sort(key=lambda p: p[0])
        events = [e for _, e in out]
        out.clear()
        # Reorder: swap events within a sliding window (a message's click can come before its open).
        for i in range(len(events)):
            j = min(len(events) - 1, i + rng.randrange(self.shuffle_window))
            events[i], events[j] = events[j], events[i]
        final: list[EmailEvent] = []
        pending: list[tuple[int, int, EmailEvent]] = []
        for i, e in enumerate(events):
            final.append(e)
            if rng.random() < self.duplicate_rate:
                # A re-poll: the same fact again, a little later in the log (within the chunk).
                heapq.heappush(pending, (i + rng.randrange(1, 200), self.duplicates, e))
                self.duplicates += 1
            while pending and pending[0][0] <= i:
                final.append(heapq.heappop(pending)[2])
        final.extend(e for _, _, e in sorted(pending))
        return final


def generate_events(
    messages: int,
    *,
    seed: int = 7,
    campaigns_per_source: int = 6,
    contacts_per_source: int | None = None,
    span_hours: float = 40.0,
    duplicate_rate: float = 0.1,
    shuffle_window: int = 50,
    now: datetime | None = None,
) -> GeneratedSet:
    """The whole set in memory: the single chunk of an ``EventStream`` of the same arguments."""
    stream = EventStream(
        messages,
        seed=seed,
        campaigns_per_source=campaigns_per_source,
        contacts_per_source=contacts_per_source,
        span_hours=span_hours,
        duplicate_rate=duplicate_rate,
        shuffle_window=shuffle_window,
        chunk_messages=max(1, messages),
        now=now,
    )
    events = [e for chunk in stream for e in chunk]
    return GeneratedSet(events=events, messages=messages, duplicates=stream.duplicates)
