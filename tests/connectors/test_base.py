"""The poll loop's bookkeeping with an in-memory publisher (Kafka itself is exercised by the integration tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from mailpulse.connectors.base import Page, Plan, Stream, StreamRunner
from mailpulse.connectors.dedupe import EventIndex
from mailpulse.connectors.errors import NormalisationError
from mailpulse.connectors.publisher import OutRecord
from mailpulse.topics.events import EmailEvent, EventType, make_event_id

NOW = datetime(2026, 11, 4, tzinfo=UTC)


class Source:
    name = "acme"
    lookback = __import__("datetime").timedelta(days=7)
    reconcile_interval = __import__("datetime").timedelta(minutes=15)


class ListStream(Stream):
    """Pages of {"id", "n"}; a record without an id is bad."""

    provider = "fake"
    name = "events"
    is_mutable = True

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        super().__init__(Source(), client=None)  # type: ignore[arg-type]
        self.pages = pages

    async def read(self, cursor: Any, plan: Plan) -> AsyncIterator[Page]:
        for i, page in enumerate(self.pages):
            yield Page(page, {"page": i + 1})

    def normalise_record(self, raw: Any, observed_at: datetime) -> list[EmailEvent]:
        if "id" not in raw:
            raise NormalisationError("id", "missing")
        return [
            EmailEvent(
                make_event_id("fake", "acme", raw["id"], "sent"),
                "fake",
                "acme",
                EventType.SENT,
                NOW,
                observed_at,
                raw["id"],
            )
        ]


class MemoryPublisher:
    def __init__(self, fail_times: int = 0) -> None:
        self.committed: list[list[OutRecord]] = []
        self.fail_times = fail_times

    async def commit(self, records: list[OutRecord]) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("broker went away mid-transaction")
        self.committed.append(list(records))

    def topic(self, suffix: str) -> list[OutRecord]:
        return [r for batch in self.committed for r in batch if r.topic.endswith(suffix)]


def runner(stream: Stream, publisher: MemoryPublisher, **kw: Any) -> StreamRunner:
    return StreamRunner(
        stream,
        publisher=publisher,
        prefix="p.",
        clock=lambda: NOW,
        cursor=None,
        event_index=EventIndex(),
        change_indexes={},
        **kw,
    )  # type: ignore[arg-type]


async def test_a_bad_record_goes_to_the_dlq_with_reason_and_payload_and_the_rest_is_published():
    pub = MemoryPublisher()
    r = runner(ListStream([[{"id": "a"}, {"oops": 1}, {"id": "b"}]]), pub)
    result = await r.run_pass(Plan("poll", NOW))
    assert (result.events, result.dlq) == (2, 1)
    [letter] = pub.topic("dlq.v1")
    body = orjson.loads(letter.value)
    assert (body["reason"], body["raw"], body["stream"], letter.key) == ("id: missing", {"oops": 1}, "events", b"acme")
    [checkpoint] = pub.topic("checkpoints.v1")
    assert orjson.loads(checkpoint.value)["cursor"] == {"page": 1} and checkpoint.key == b"acme/events"
    # The same bad record read again is not filed twice.
    assert (await r.run_pass(Plan("poll", NOW))).dlq == 0


async def test_each_transaction_carries_its_events_and_the_cursor_after_them():
    pub = MemoryPublisher()
    r = runner(ListStream([[{"id": "a"}, {"id": "b"}], [{"id": "c"}], [{"id": "d"}]]), pub, batch_size=2)
    await r.run_pass(Plan("poll", NOW))
    shapes = [[(rec.topic.rsplit(".", 2)[-2], rec.key.decode()) for rec in batch] for batch in pub.committed]
    assert shapes[0] == [("events", "acme:a"), ("events", "acme:b"), ("checkpoints", "acme/events")]
    assert orjson.loads(pub.committed[-1][-1].value)["cursor"] == {"page": 3}


async def test_a_failed_transaction_moves_neither_cursor_nor_index_and_the_retry_publishes_once():
    pub = MemoryPublisher(fail_times=1)
    r = runner(ListStream([[{"id": "a"}, {"id": "b"}]]), pub)
    before = (
        REGISTRY.get_sample_value(
            "mailpulse_connector_transactions_total",
            {"provider": "fake", "source": "acme", "stream": "events", "outcome": "aborted"},
        )
        or 0
    )
    with pytest.raises(RuntimeError):
        await r.run_pass(Plan("poll", NOW))
    assert r.cursor is None and len(r.event_index) == 0
    after = REGISTRY.get_sample_value(
        "mailpulse_connector_transactions_total",
        {"provider": "fake", "source": "acme", "stream": "events", "outcome": "aborted"},
    )
    assert after == before + 1
    assert (await r.run_pass(Plan("poll", NOW))).events == 2
    assert (await r.run_pass(Plan("poll", NOW))).events == 0
    assert [rec.key for rec in pub.topic("events.v1")] == [b"acme:a", b"acme:b"]


async def test_a_reconcile_pass_moves_the_cursor_only_when_it_completes():
    pub = MemoryPublisher()
    r = runner(ListStream([[{"id": "a"}], [{"id": "b"}]]), pub, batch_size=1)
    await r.run_pass(Plan("reconcile", NOW, since=NOW))
    cursors = [orjson.loads(rec.value)["cursor"] for rec in pub.topic("checkpoints.v1")]
    assert cursors == [{"page": 2}]


async def test_a_record_of_an_unforeseen_shape_goes_to_the_dlq_instead_of_stalling_the_source():
    # A real provider module fed a SuperSend row whose counter is text: its
    # comparison raises TypeError, which is not a NormalisationError.
    from mailpulse.connectors.providers import supersend

    class SuperSendRows(ListStream):
        provider = "supersend"

        def normalise_record(self, raw: Any, observed_at: datetime) -> list[Any]:
            return supersend.normalise(raw, source="acme", observed_at=observed_at)

    good = {
        "id": "r1",
        "type": "sent",
        "channel": "email",
        "date": "2026-11-03T23:59:59Z",
        "email_id": "m1",
        "contact": {"id": "k1", "email": "A@example.com"},
        "campaign": {"id": "c1"},
    }
    bad = {**good, "id": "r2", "email_id": "m2", "unsubscribes": "3"}
    pub = MemoryPublisher()
    result = await runner(SuperSendRows([[good, bad, {**good, "id": "r3", "email_id": "m3"}]]), pub).run_pass(
        Plan("poll", NOW)
    )
    assert (result.events, result.dlq) == (2, 1)
    [letter] = pub.topic("dlq.v1")
    body = orjson.loads(letter.value)
    assert body["reason"].startswith("unexpected record shape: TypeError: ") and body["raw"]["id"] == "r2"
    assert [orjson.loads(r.value)["message_id"] for r in pub.topic("events.v1")] == ["m1", "m3"]


async def test_after_commit_sees_a_batch_only_once_its_transaction_committed():
    seen: list[list[str]] = []

    class Watched(ListStream):
        def after_commit(self, outputs: Any) -> None:
            seen.append([o.message_id for o in outputs])

    pub = MemoryPublisher(fail_times=1)
    r = runner(Watched([[{"id": "a"}, {"id": "b"}]]), pub)
    with pytest.raises(RuntimeError):
        await r.run_pass(Plan("poll", NOW))
    assert seen == []
    await r.run_pass(Plan("poll", NOW))
    assert seen == [["a", "b"]]
    # Nothing new to commit: what was read is on the topic already, so the hook still sees it.
    await r.run_pass(Plan("poll", NOW))
    assert seen == [["a", "b"], ["a", "b"]]
