"""The live API of one real worker: OpenAPI conformance, errors, metadata join, DLQ, stats topics,
hourly windows, and committed-only reading (an aborted transaction is never counted)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.eventgen import generate_events
from mailpulse.streams.schemas import component_schema, load_openapi
from mailpulse.topics.admin import ensure_topics
from mailpulse.topics.contracts import CAMPAIGN_STATS, CAMPAIGNS, DLQ, EVENTS, topic_name
from mailpulse.topics.events import EmailEvent, EventType, encode_event, make_event_id
from mailpulse.topics.records import CampaignMetadata, encode_record
from tests.streams.compare import mismatches
from tests.streams.fixtures import WorkerProcess, publish, wait_until
from tests.streams.groundtruth import ground_truth

pytestmark = pytest.mark.integration

DOC = load_openapi()


def schema(name: str) -> dict[str, Any]:
    return component_schema(name, doc=DOC)


def txn_events(campaign: str, n: int, tag: str) -> list[EmailEvent]:
    now = datetime.now(UTC)
    return [
        EmailEvent(
            event_id=make_event_id("smartcq", "acme-smartcq", tag, i),
            provider="smartcq",
            source="acme-smartcq",
            type=EventType.SENT,
            occurred_at=now,
            observed_at=now,
            message_id=f"{tag}-{i}",
            campaign_id=campaign,
            contact_id=f"{tag}-u{i}",
        )
        for i in range(n)
    ]


async def transaction(bootstrap: str, topic: str, events: list[EmailEvent], *, commit: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"test-{uuid.uuid4().hex[:8]}")
    await producer.start()
    try:
        await producer.begin_transaction()
        for e in events:
            await producer.send(topic, encode_event(e), key=e.key.encode())
        await producer.flush()
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[Any] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1500)
            if not batch:
                return out
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()


class Live:
    def __init__(self, worker: WorkerProcess, prefix: str, bootstrap: str, committed: list[EmailEvent]) -> None:
        self.worker = worker
        self.prefix = prefix
        self.bootstrap = bootstrap
        self.committed = committed
        self.campaigns, self.contacts = ground_truth(committed)


@pytest.fixture(scope="module")
async def live(kafka, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Live]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka.bootstrap, prefix=prefix, replication_factor=1)
    events_topic = topic_name(EVENTS, prefix)
    gen = generate_events(300, seed=5, campaigns_per_source=3)
    ok, aborted = txn_events("txn-ok", 10, "ok"), txn_events("txn-aborted", 7, "ab")
    await publish(kafka.bootstrap, events_topic, gen.events)
    await transaction(kafka.bootstrap, events_topic, ok, commit=True)
    await transaction(kafka.bootstrap, events_topic, aborted, commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        meta = CampaignMetadata(
            source="acme-smartcq",
            provider="smartcq",
            campaign_id="c0",
            observed_at=datetime.now(UTC),
            name="Winter sale",
            subject="Warm offers",
            send_time=datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        )
        await producer.send_and_wait(topic_name(CAMPAIGNS, prefix), encode_record(meta), key=meta.key.encode())
        await producer.send_and_wait(events_topic, b"{not json", key=b"acme-smartcq:broken")
        await producer.send_and_wait(events_topic, b'{"event_id": "x"}', key=b"acme-smartcq:incomplete")
    finally:
        await producer.stop()
    worker = WorkerProcess(tmp_path_factory.mktemp("api"), kafka.bootstrap, prefix, "w").start()
    state = Live(worker, prefix, kafka.bootstrap, gen.events + ok)
    try:
        await wait_until(lambda: worker.get("/readyz").status_code == 200, 90, "worker ready", [worker])
        await wait_until(lambda: not mismatches(worker, state.campaigns, "campaigns"), 60, "exact campaigns", [worker])
        yield state
    finally:
        worker.stop()


async def test_an_aborted_transaction_is_never_counted_and_a_committed_one_is(live: Live) -> None:
    w = live.worker
    assert w.get("/v1/campaigns/acme-smartcq:txn-aborted").status_code == 404
    assert w.get("/v1/contacts/acme-smartcq:ab-u0").status_code == 404
    assert w.get("/v1/campaigns/acme-smartcq:txn-ok").json()["counts"]["sent"] == 10
    assert mismatches(w, live.campaigns, "campaigns") == []
    assert mismatches(w, live.contacts, "contacts") == []


async def test_every_answer_conforms_to_the_openapi_document(live: Live) -> None:
    w = live.worker
    key = sorted(live.campaigns)[0]
    contact = sorted(live.contacts)[0]
    checks = [
        ("/v1/campaigns/" + key, {}, 200, "Campaign"),
        ("/v1/campaigns/" + key + "/hourly", {"hours": 48}, 200, "Hourly"),
        ("/v1/contacts/" + contact, {}, 200, "Contact"),
        ("/v1/campaigns", {"limit": 5}, 200, "CampaignList"),
        ("/v1/campaigns", {"source": "acme-smtpeter", "order": "-last_event_at"}, 200, "CampaignList"),
        ("/readyz", {}, 200, "Ready"),
        ("/v1/campaigns/acme-smartcq:nope", {}, 404, "Error"),
        ("/v1/contacts/acme-smartcq:nobody", {}, 404, "Error"),
        ("/v1/campaigns/no-colon", {}, 400, "Error"),
        ("/v1/campaigns/" + key + "/hourly", {"hours": "0"}, 400, "Error"),
        ("/v1/campaigns", {"limit": "many"}, 400, "Error"),
        ("/v1/campaigns", {"order": "name"}, 400, "Error"),
    ]
    for path, params, status, name in checks:
        r = w.get(path, **params)
        assert r.status_code == status, (path, params, r.text)
        assert r.headers["content-type"].startswith("application/json")
        jsonschema.validate(r.json(), schema(name))
    # Every documented path answers with a status the document lists.
    for path, item in DOC["paths"].items():
        concrete = path.replace("{key}", key)
        assert str(w.get(concrete).status_code) in item["get"]["responses"], path
    assert w.get("/healthz").json() == {"status": "ok"}
    everything = w.get("/metrics").text
    assert "mailpulse_stream_events_total" in everything and "mailpulse_source_messages" in everything
    only = httpx.get(w.url + "/metrics", params=[("name[]", "mailpulse_stream_events_total"), ("name[]", "nope")]).text
    families = {line.split()[2] for line in only.splitlines() if line.startswith("# TYPE")}
    assert families == {"mailpulse_stream_events_total"}, only  # the one family named, no other


async def test_a_malformed_parameter_is_a_400_naming_it_and_an_unknown_key_a_404(live: Live) -> None:
    w = live.worker
    for path, params, parameter in [
        ("/v1/campaigns/acme-smartcq:c0/hourly", {"hours": "abc"}, "hours"),
        ("/v1/campaigns/acme-smartcq:c0/hourly", {"hours": "49"}, "hours"),
        ("/v1/campaigns", {"limit": "0"}, "limit"),
        ("/v1/campaigns", {"source": "bad source"}, "source"),
        ("/v1/contacts/nocolon", {}, "key"),
    ]:
        r = w.get(path, **params)
        assert r.status_code == 400 and r.json()["error"]["parameter"] == parameter, (path, r.text)
    r = w.get("/v1/campaigns/acme-smartcq:unknown")
    assert r.status_code == 404 and "unknown campaign" in r.json()["error"]["message"]


async def test_faust_table_pages_are_not_served(live: Live) -> None:
    for path in ("/table/messages/", "/table/contacts/", "/router/", "/stats/"):
        assert live.worker.get(path).status_code == 404, path


async def test_campaign_metadata_is_joined_into_the_campaign_answer(live: Live) -> None:
    body = live.worker.get("/v1/campaigns/acme-smartcq:c0").json()
    assert body["metadata"] == {
        "name": "Winter sale",
        "subject": "Warm offers",
        "send_time": "2026-11-22T09:00:00.000Z",
    }
    other = live.worker.get("/v1/campaigns/acme-smartcq:c1").json()
    assert other["metadata"] is None


async def test_invalid_events_go_to_the_dlq_with_a_reason_and_the_rest_is_counted(live: Live) -> None:
    letters = [orjson.loads(r.value) for r in await read_topic(live.bootstrap, topic_name(DLQ, live.prefix))]
    reasons = sorted(letter["reason"] for letter in letters)
    assert len(letters) == 2
    assert "not valid JSON" in reasons[0] or "not valid JSON" in reasons[1]
    assert any("provider" in r or "type" in r for r in reasons)
    jsonschema.validate(
        letters[0],
        __import__("mailpulse.topics.contracts", fromlist=["load_schema"]).load_schema("dead-letter.v1.json"),
    )
    assert mismatches(live.worker, live.campaigns, "campaigns") == []


async def test_the_stats_topics_carry_the_api_answers(live: Live) -> None:
    w = live.worker
    stats_schema = __import__("mailpulse.topics.contracts", fromlist=["load_schema"]).load_schema(
        "campaign-stats.v1.json"
    )

    async def latest() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for r in await read_topic(live.bootstrap, topic_name(CAMPAIGN_STATS, live.prefix)):
            out[r.key.decode()] = None if r.value is None else orjson.loads(r.value)
        return out

    expected = {k: w.get(f"/v1/campaigns/{k}").json() for k in list(live.campaigns) + ["acme-smartcq:txn-ok"]}
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        got = await latest()
        if all(got.get(k) == v for k, v in expected.items()) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(1)
    for key, answer in expected.items():
        assert got.get(key) == answer, key
        jsonschema.validate(got[key], stats_schema)


async def test_hourly_windows_count_each_message_in_the_hour_it_was_first_sent(live: Live) -> None:
    sent_types = {
        "sent",
        "delivered",
        "deferred",
        "opened",
        "clicked",
        "bounced",
        "complained",
        "unsubscribed",
        "replied",
    }
    first_sent: dict[str, tuple[str, datetime]] = {}
    for e in live.committed:
        if e.type.value in sent_types and e.campaign_id:
            key = f"{e.source}:{e.campaign_id}"
            prev = first_sent.get(e.key)
            if prev is None or e.occurred_at < prev[1]:
                first_sent[e.key] = (key, e.occurred_at)
    expected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key, at in first_sent.values():
        hour = at.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        expected[key][hour] += 1
    for key in live.campaigns:
        windows = live.worker.get(f"/v1/campaigns/{key}/hourly", hours=48).json()["windows"]
        got = {w["start"]: w["counts"]["sent"] for w in windows if w["counts"]["sent"]}
        starts = [w["start"] for w in windows]
        assert starts == sorted(starts, reverse=True)
        # The generator spreads messages over the last 40 h: all inside the 48 h kept.
        assert got == dict(expected[key]), key


async def test_values_the_document_rules_out_are_a_json_400_naming_the_parameter(live: Live) -> None:
    w = live.worker
    for path, params, parameter in [
        ("/v1/campaigns", {"source": ""}, "source"),
        ("/v1/campaigns", {"scope": "global"}, "scope"),
        ("/v1/campaigns", {"limit": ""}, "limit"),
        ("/v1/campaigns/acme-smartcq:c0/hourly", {"hours": "+5"}, "hours"),
    ]:
        r = w.get(path, **params)
        assert r.status_code == 400, (path, params, r.text)
        assert r.headers["content-type"].startswith("application/json")
        jsonschema.validate(r.json(), schema("Error"))
        assert r.json()["error"]["parameter"] == parameter
    assert w.get("/v1/campaigns", scope="local").status_code == 200


async def test_an_oversized_request_line_or_header_is_a_json_4xx_and_one_short_log_line(live: Live) -> None:
    import httpx

    w = live.worker
    before = w.log.read_text(errors="replace")
    r1 = httpx.get(w.url + "/v1/campaigns", params={"source": "a" * 9000}, timeout=15)
    r2 = httpx.get(w.url + "/v1/campaigns", headers={"X-Big": "b" * 9000}, timeout=15)
    for r, status in ((r1, 414), (r2, 431)):
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/json")
        jsonschema.validate(r.json(), schema("Error"))
        assert r.json()["error"]["status"] == status
    assert w.get("/healthz").status_code == 200
    await asyncio.sleep(0.5)
    new = w.log.read_text(errors="replace")[len(before) :]
    rejected = [line for line in new.splitlines() if "rejected an HTTP request" in line]
    assert len(rejected) == 2, new
    assert all(len(line) < 200 and "aaaa" not in line and "bbbb" not in line for line in rejected), rejected
    assert "Traceback" not in new and "Error handling request" not in new, new


#: Generated cases per operation (7 operations; about 200 requests, ~5 s, so CI time stays low).
SCHEMATHESIS_EXAMPLES = 20


async def test_schemathesis_finds_no_5xx_and_every_answer_conforms_to_the_document(live: Live, tmp_path: Path) -> None:
    """The fuzzer's probes, kept running: positive and negative inputs against the live worker."""
    import subprocess
    import sys

    from mailpulse.streams import schemas

    doc = Path(schemas.__file__).with_name("openapi.yaml")
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", str(doc),
        "--url", live.worker.url,
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(SCHEMATHESIS_EXAMPLES),
        "--seed", "20261201",
        "--workers", "1",
        "--request-timeout", "20",
        "--generation-database", "none",
        "--no-color",
    ]  # fmt: skip
    result = await asyncio.to_thread(
        subprocess.run,
        cmd,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
