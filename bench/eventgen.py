"""Generated email event sets for the streams tests and benchmark.

Realistic enough to exercise every rule of the flag table: three providers
(one without delivery reports and with a running opens counter, one keyed by
email instead of contact id), deferrals, bounces of every kind, opens and
clicks (some clicks before their open), complaints, unsubscribes, replies,
failures and suppressions; timestamps spread over the last ``span_hours``; a
share of events published twice; and the publish order shuffled within a
window so that a message's events arrive out of order.
"""

from __future__ import annotations

import heapq
import random
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

__all__ = ["SOURCES", "GeneratedSet", "generate_events"]

#: (source name, provider, has contact ids, reports deliveries, opens counter)
SOURCES = (
    ("acme-smartcq", "smartcq", True, True, False),
    ("acme-supersend", "supersend", True, False, True),
    ("acme-smtpeter", "smtpeter", False, True, False),
)


@dataclass(frozen=True)
class GeneratedSet:
    #: In publish order, duplicates included.
    events: list[EmailEvent]
    messages: int
    duplicates: int


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
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    contacts = contacts_per_source or max(1, messages // 4)
    out: list[tuple[datetime, EmailEvent]] = []
    for n in range(messages):
        source, provider, has_contact_id, reports_delivery, counter = SOURCES[n % len(SOURCES)]
        message_id = f"m{n:07d}"
        campaign = f"c{rng.randrange(campaigns_per_source)}"
        contact_n = rng.randrange(contacts)
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
    # Reorder: swap events within a sliding window (a message's click can come before its open).
    for i in range(len(events)):
        j = min(len(events) - 1, i + rng.randrange(shuffle_window))
        events[i], events[j] = events[j], events[i]
    dups = 0
    final: list[EmailEvent] = []
    pending: list[tuple[int, int, EmailEvent]] = []
    for i, e in enumerate(events):
        final.append(e)
        if rng.random() < duplicate_rate:
            # A re-poll: the same fact again, a little later in the log.
            heapq.heappush(pending, (i + rng.randrange(1, 200), dups, e))
            dups += 1
        while pending and pending[0][0] <= i:
            final.append(heapq.heappop(pending)[2])
    final.extend(e for _, _, e in sorted(pending))
    return GeneratedSet(events=final, messages=messages, duplicates=dups)
