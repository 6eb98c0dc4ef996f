"""Fault injection: scripted faults in order, Retry-After, revocation, seeded random faults, malformed pages, bad records."""

from __future__ import annotations

import time

import orjson
import pytest

from mailpulse.simulators import FaultSpecError, Simulator, SimulatorConfig, parse_fault_spec, serve_simulators
from mailpulse.simulators.faults import BAD_KINDS
from tests.simulators.conftest import Served

SENDS = "/api/v1/sends"


async def test_scripted_faults_hit_the_next_requests_in_order_then_the_api_answers(
    served: Served, sim: Simulator
) -> None:
    sim.faults.script("smartcq", ["429", "503", "503"])
    statuses = [(await served.get("smartcq", SENDS, limit=5)).status_code for _ in range(4)]
    assert statuses == [429, 503, 503, 200]
    assert [r.status for r in sim.request_log] == statuses
    assert sim.faults.pending("smartcq") == []


async def test_429_carries_retry_after_from_the_knob_or_the_script(served: Served, sim: Simulator) -> None:
    sim.faults.set("supersend", retry_after=4)
    sim.faults.script("supersend", ["429", "429:9"])
    first = await served.get("supersend", "/v2/events")
    second = await served.get("supersend", "/v2/events")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "4")
    assert (second.status_code, second.headers["Retry-After"]) == (429, "9")
    assert first.json()["success"] is False


async def test_a_revoked_key_is_refused_until_restored_and_only_for_that_provider(
    served: Served, sim: Simulator
) -> None:
    sim.faults.revoke("smartcq")
    assert (await served.get("smartcq", SENDS)).status_code == 401
    assert (await served.get("supersend", "/v2/events")).status_code == 200
    assert (await served.get("smartersends", "/api/events")).status_code == 200
    sim.faults.restore("smartcq")
    assert (await served.get("smartcq", SENDS)).status_code == 200


async def _statuses(seed: int, n: int) -> list[int]:
    sim = Simulator(SimulatorConfig(seed=seed, size=200))
    sim.faults.set("smartcq", rate_429=0.2, rate_5xx=0.2)
    import httpx

    async with serve_simulators(sim, providers=("smartcq",)) as urls:
        async with httpx.AsyncClient() as client:
            headers = {"Authorization": f"Bearer {sim.credentials['smartcq']}"}
            return [(await client.get(urls["smartcq"] + SENDS, headers=headers)).status_code for _ in range(n)]


async def test_random_faults_are_seeded_the_same_seed_fails_the_same_requests() -> None:
    a, b, c = await _statuses(11, 40), await _statuses(11, 40), await _statuses(12, 40)
    assert a == b != c
    assert {429, 200} <= set(a) and set(a) & {500, 502, 503, 504}


async def test_malformed_pages_are_invalid_json_or_the_wrong_shape(served: Served, sim: Simulator) -> None:
    sim.faults.script("smartcq", ["invalid-json", "wrong-shape"])
    broken = await served.get("smartcq", SENDS)
    assert broken.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(broken.content)
    wrong = await served.get("smartcq", SENDS)
    assert wrong.status_code == 200 and not isinstance(wrong.json()["data"], list)
    sim.faults.script("smtpeter", ["wrong-shape"])
    assert isinstance((await served.get("smtpeter", "/v1/events/tags/newsletter")).json(), dict)


async def test_slow_replies_are_delayed(served: Served, sim: Simulator) -> None:
    sim.faults.script("smartersends", ["slow:300"])
    began = time.monotonic()
    r = await served.get("smartersends", "/api/events")
    assert r.status_code == 200 and time.monotonic() - began >= 0.3


@pytest.mark.parametrize("provider", ["smartcq", "smtpeter", "supersend", "smartersends"])
def test_bad_records_are_in_the_snapshot_and_listed_with_their_reason(provider: str) -> None:
    sim = Simulator(SimulatorConfig(seed=7, size=2000))
    clean = sim.snapshot(provider) if provider != "smartersends" else sim.snapshot(provider, kind="campaigns")
    assert sim.bad_records(provider) == []
    sim.faults.set(provider, bad_record_rate=0.3)
    bad = sim.bad_records(provider)
    assert {b["reason"] for b in bad} == set(BAD_KINDS)
    dirty = sim.snapshot(provider) if provider != "smartersends" else sim.snapshot(provider, kind="campaigns")
    assert len(dirty) == len(clean)
    payloads = [b["payload"] for b in bad if b["kind"] in ("sends", "events", "campaigns")]
    assert payloads and all(p in dirty for p in payloads) and not any(p in clean for p in payloads)


async def test_bad_records_are_served_by_the_api(served: Served, sim: Simulator) -> None:
    sim.faults.set("smartcq", bad_record_rate=0.05)
    page = (await served.get("smartcq", SENDS, limit=500)).json()["data"]
    missing_id = [s for s in page if "id" not in s]
    assert missing_id and all(s in [b["payload"] for b in sim.bad_records("smartcq")] for s in missing_id)


def test_fault_specs_parse_and_bad_ones_name_the_problem() -> None:
    assert parse_fault_spec("429=0.05,5xx=0.02,slow=0.01,malformed=0.01,bad=0.001") == {
        "rate_429": 0.05,
        "rate_5xx": 0.02,
        "slow_rate": 0.01,
        "malformed_page_rate": 0.01,
        "bad_record_rate": 0.001,
    }
    assert parse_fault_spec("retry-after=3, slow-ms=50") == {"retry_after": 3, "slow_ms": 50}
    for spec, needle in (
        ("430=0.1", "430=0.1"),
        ("429=lots", "lots"),
        ("5xx=1.5", "between 0 and 1"),
        ("bad", "KEY=VALUE"),
    ):
        with pytest.raises(FaultSpecError, match=needle):
            parse_fault_spec(spec)


def test_unknown_scripted_faults_knobs_and_providers_are_refused(sim: Simulator) -> None:
    with pytest.raises(FaultSpecError, match="teapot"):
        sim.faults.script("smartcq", ["teapot"])
    with pytest.raises(FaultSpecError, match="rate_418"):
        sim.faults.set("smartcq", rate_418=0.5)
    with pytest.raises(FaultSpecError, match="mailchimp"):
        sim.faults.revoke("mailchimp")


async def test_latency_slows_every_reply_and_slow_ms_alone_slows_none(served: Served, sim: Simulator) -> None:
    sim.faults.set("supersend", slow_ms=5000)  # no slow_rate: no slow replies
    began = time.monotonic()
    await served.get("supersend", "/v2/events")
    assert time.monotonic() - began < 5
    sim.faults.set("supersend", latency_ms=150)
    began = time.monotonic()
    for _ in range(2):
        await served.get("supersend", "/v2/events")
    assert time.monotonic() - began >= 0.3


async def test_a_scripted_disconnect_drops_the_connection_without_a_reply(served: Served, sim: Simulator) -> None:
    import httpx

    sim.faults.script("smartcq", ["disconnect"])
    with pytest.raises(httpx.TransportError):
        await served.get("smartcq", SENDS)
    assert (await served.get("smartcq", SENDS)).status_code == 200
