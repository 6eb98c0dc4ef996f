"""Engagement and deliverability figures from state, exact against a ground truth computed here.

Two real workers share the partitions. Events carry recipients at several
mailbox providers; SmartCQ's carry no address (as the real API), so its
contacts' addresses come from ``mailpulse.contacts.v1``, half of them only
after the events were counted (late metadata). The mailbox figures of the API
and the workers' ``/metrics`` shares, summed, must equal what this file
computes from the events with its own table of domains; a source's figures
must equal the sum of its campaigns; the freshness histograms count every
applied event once.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench.eventgen import generate_events
from mailpulse.topics.admin import ensure_topics
from mailpulse.topics.contracts import CONTACTS, EVENTS, topic_name
from mailpulse.topics.events import EmailEvent, EventType, make_event_id
from mailpulse.topics.records import ContactRecord, encode_record
from tests.streams.compare import mismatches
from tests.streams.fixtures import WorkerProcess, publish, wait_until
from tests.streams.groundtruth import ground_truth, message_flags

pytestmark = pytest.mark.integration

MAILBOX_FLAGS = (
    "sent",
    "delivered",
    "bounced",
    "hard_bounced",
    "soft_bounced",
    "deferred",
    "complained",
    "opened",
    "clicked",
)
#: The test's own table: domain -> the group the worker must report.
DOMAINS = {
    "gmail.com": "gmail",
    "hotmail.co.uk": "microsoft",
    "yahoo.fr": "yahoo",
    "icloud.com": "apple",
    "example.org": "other",
    "acme-corp.com": "corp",  # a group of the config
}
DOMAIN_LIST = sorted(DOMAINS)


def _address(n: int) -> str:
    return f"user{n}@{DOMAIN_LIST[n % len(DOMAIN_LIST)]}"


def _with_addresses(events: list[EmailEvent]) -> list[EmailEvent]:
    """SmartCQ events lose their address (the API has none); the others get one at a mix of domains."""
    out = []
    for e in events:
        n = int(e.email.split("@")[0].removeprefix("user"))
        out.append(dataclasses.replace(e, email=None if e.provider == "smartcq" else _address(n)))
    return out


def _contact_key(events: list[EmailEvent]) -> str | None:
    e0 = events[0]
    ids = sorted({e.contact_id for e in events if e.contact_id})
    emails = sorted({e.email for e in events if e.email})
    if ids:
        return f"{e0.source}:{ids[0]}"
    return f"{e0.source}:{emails[0]}" if emails else None


def expected_mailboxes(events: list[EmailEvent], known: dict[str, str]) -> dict[tuple[str, str], dict[str, int]]:
    """(source, group) -> flag counts. ``known``: contact key -> address from contacts.v1."""
    by_message: dict[str, list[EmailEvent]] = defaultdict(list)
    for e in events:
        by_message[e.key].append(e)
    by_contact: dict[str, list[list[EmailEvent]]] = defaultdict(list)
    for evs in by_message.values():
        key = _contact_key(evs)
        if key is not None:
            by_contact[key].append(evs)
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(MAILBOX_FLAGS, 0))
    for key, messages in by_contact.items():
        source, _, rest = key.partition(":")
        seen = sorted({e.email for evs in messages for e in evs if e.email})
        address = known.get(key) or (seen[0] if seen else (rest if "@" in rest else None))
        group = "unknown" if address is None else DOMAINS[address.split("@")[1]]
        for evs in messages:
            flags = message_flags(evs)
            for f in MAILBOX_FLAGS:
                out[(source, group)][f] += flags[f]
    return {k: dict(v) for k, v in out.items()}


def _diff(got: dict, want: dict) -> dict:
    return {k: (got.get(k), want.get(k)) for k in got.keys() | want.keys() if got.get(k) != want.get(k)}


def api_mailboxes(worker: WorkerProcess) -> dict[tuple[str, str], dict[str, int]]:
    body = worker.get("/v1/mailbox-providers").json()
    return {(i["source"], i["mailbox_provider"]): i["counts"] for i in body["items"]}


def _scrape(worker: WorkerProcess) -> list[Any]:
    return list(text_string_to_metric_families(httpx.get(worker.url + "/metrics", timeout=15).text))


def summed(
    workers: list[WorkerProcess], metric: str, by: tuple[str, ...], **match: str
) -> dict[tuple[str, ...], float]:
    """The workers' shares of ``metric`` summed by the labels ``by``, over samples matching ``match``."""
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for w in workers:
        for family in _scrape(w):
            for sample in family.samples:
                if sample.name != metric or any(sample.labels.get(k) != v for k, v in match.items()):
                    continue
                out[tuple(sample.labels[k] for k in by)] += sample.value
    return dict(out)


def _contact_records(events: list[EmailEvent]) -> list[ContactRecord]:
    now = datetime.now(UTC)
    ids = sorted({(e.source, e.contact_id) for e in events if e.provider == "smartcq" and e.contact_id})
    return [
        ContactRecord(source=src, provider="smartcq", contact_id=cid, observed_at=now, email=_address(int(cid[1:])))
        for src, cid in ids
    ]


async def _send_contacts(bootstrap: str, topic: str, records: list[ContactRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for r in records:
            await producer.send(topic, encode_record(r), key=r.key.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def test_mailbox_figures_are_exact_across_two_workers_and_late_addresses_are_counted_once(kafka, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka.bootstrap, prefix=prefix, replication_factor=1)
    events = _with_addresses(generate_events(900, seed=23, campaigns_per_source=4, span_hours=20).events)
    contacts = _contact_records(events)
    early, late = contacts[::2], contacts[1::2]
    await _send_contacts(kafka.bootstrap, topic_name(CONTACTS, prefix), early)
    await publish(kafka.bootstrap, topic_name(EVENTS, prefix), events)
    groups = {"mailbox_providers": {"corp": ["acme-corp.com"]}}
    workers = [WorkerProcess(tmp_path, kafka.bootstrap, prefix, f"w{i}", **groups).start() for i in range(2)]
    try:
        campaigns, _ = ground_truth(events)
        for w in workers:
            await wait_until(lambda w=w: w.get("/readyz").status_code == 200, 120, "worker ready", workers)
        await wait_until(lambda: not mismatches(workers[0], campaigns, "campaigns"), 90, "exact campaigns", workers)

        known = {r.key: r.email for r in early}
        truth = expected_mailboxes(events, known)
        assert any(group == "unknown" for _, group in truth), "the test must hold contacts without an address yet"
        await wait_until(
            lambda: api_mailboxes(workers[1]) == truth,
            60,
            "mailbox figures before the late addresses",
            workers,
            show=lambda: _diff(api_mailboxes(workers[1]), truth),
        )

        # The other half of the addresses arrives after their events were counted.
        await _send_contacts(kafka.bootstrap, topic_name(CONTACTS, prefix), late)
        known = {r.key: r.email for r in contacts}
        truth = expected_mailboxes(events, known)
        assert not any(group == "unknown" for _, group in truth)
        await wait_until(
            lambda: api_mailboxes(workers[0]) == truth,
            60,
            "mailbox figures after the late addresses",
            workers,
            show=lambda: _diff(api_mailboxes(workers[0]), truth),
        )
        assert api_mailboxes(workers[1]) == truth  # every worker answers the whole

        # The workers' /metrics shares, summed, are the same figures, all-time and over the last 24 h
        # (every event of the set is within the last 21 hours).
        expected = {(src, grp, f): n for (src, grp), counts in truth.items() for f, n in counts.items()}
        shares = summed(workers, "mailpulse_mailbox_messages", ("source", "mailbox_provider", "flag"))
        assert shares == expected
        last_24h = summed(
            workers, "mailpulse_mailbox_window_messages", ("source", "mailbox_provider", "flag"), window="last_24h"
        )
        assert last_24h == expected

        # A source's figures are the sum of its campaigns' (what /v1/campaigns lists).
        listed = workers[0].get("/v1/campaigns", limit=1000).json()["items"]
        for flag in ("sent", "delivered", "bounced", "opened", "clicked", "complained"):
            per_source: dict[str, int] = defaultdict(int)
            for item in listed:
                per_source[item["source"]] += item["counts"][flag]
            got = summed(workers, "mailpulse_source_messages", ("source",), flag=flag)
            assert got == {(src,): float(n) for src, n in per_source.items()}, flag

        # Freshness: every applied event is observed once, against both references.
        applied = summed(workers, "mailpulse_stream_events_total", (), result="new")[()]
        for since in ("occurred_at", "observed_at"):
            counted = summed(workers, "mailpulse_stream_event_delay_seconds_count", (), since=since)[()]
            assert counted == applied
    finally:
        for w in workers:
            w.stop()


async def test_only_the_most_recent_campaigns_are_exported_and_a_campaign_leaving_them_loses_its_series(
    kafka, tmp_path
):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka.bootstrap, prefix=prefix, replication_factor=1)
    base = datetime.now(UTC).timestamp() - 3600
    campaigns = 10_000

    def sent(n: int, at: float, tag: str = "") -> EmailEvent:
        when = datetime.fromtimestamp(at, UTC)
        return EmailEvent(
            event_id=make_event_id("smartcq", "acme", f"m{n}{tag}", "sent"),
            provider="smartcq",
            source="acme",
            type=EventType.SENT,
            occurred_at=when,
            observed_at=when,
            message_id=f"m{n}{tag}",
            campaign_id=f"c{n:05d}",
            contact_id=f"u{n}",
        )

    # Campaign n last sent at base + n/10 s: the newest 200 are c09800 .. c09999.
    await publish(kafka.bootstrap, topic_name(EVENTS, prefix), [sent(n, base + n / 10) for n in range(campaigns)])
    worker = WorkerProcess(tmp_path, kafka.bootstrap, prefix, "w").start()
    try:

        def exported() -> set[str]:
            got = summed([worker], "mailpulse_campaign_messages", ("campaign",), flag="sent")
            return {c for (c,) in got}

        newest = {f"c{n:05d}" for n in range(campaigns - 200, campaigns)}
        await wait_until(
            lambda: exported() == newest,
            120,
            "the 200 newest campaigns exported",
            [worker],
            show=lambda: (len(exported()), sorted(exported() - newest)[:5], sorted(newest - exported())[:5]),
        )
        series = sum(len(f.samples) for f in _scrape(worker) if f.name.startswith("mailpulse_campaign_"))
        assert series == 200 * 13 * 3  # 13 flags, all-time and two hourly windows: the documented bound

        # An old campaign sends again: it enters the 200, the oldest of them leaves with its series.
        await publish(kafka.bootstrap, topic_name(EVENTS, prefix), [sent(5, base + 7200, tag="-again")])
        await wait_until(lambda: exported() == (newest - {"c09800"}) | {"c00005"}, 60, "top 200 moved", [worker])
        got = summed([worker], "mailpulse_campaign_messages", ("campaign",), flag="sent")
        assert got[("c00005",)] == 2.0
    finally:
        worker.stop()
