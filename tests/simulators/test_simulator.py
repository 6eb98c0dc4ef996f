"""The simulator core: determinism, the clock, the request log, the /_sim/ control routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailpulse.simulators import PROVIDERS, Simulator, SimulatorConfig
from tests.simulators.conftest import Served

KINDS = {
    "smartcq": ["sends", "contacts"],
    "smtpeter": [None],
    "supersend": [None],
    "smartersends": ["campaigns", "conversations", "calendar"],
}


def _everything(sim: Simulator) -> dict[str, object]:
    return {f"{p}/{k}": sim.snapshot(p, **({"kind": k} if k else {})) for p in PROVIDERS for k in KINDS[p]}


def test_the_api_constants_are_as_promised() -> None:
    assert PROVIDERS == ("smartcq", "smtpeter", "supersend", "smartersends")
    assert Simulator().credentials == {
        "smartcq": "sim-smartcq-key",
        "smtpeter": "sim-smtpeter-token",
        "supersend": "sim-supersend-key",
        "smartersends": "sim-smartersends-key",
    }


def test_the_same_seed_gives_the_same_snapshots_whatever_is_generated_first() -> None:
    a = Simulator(SimulatorConfig(seed=5, size=800), share_data=False)
    b = Simulator(SimulatorConfig(seed=5, size=800), share_data=False)
    b.data("smartersends"), b.data("supersend")  # a different generation order
    a.advance(timedelta(hours=30))
    b.advance(timedelta(hours=30))
    assert _everything(a) == _everything(b)
    other = Simulator(SimulatorConfig(seed=6, size=800), share_data=False)
    other.advance(timedelta(hours=30))
    assert all(_everything(a)[k] != v for k, v in _everything(other).items())


def test_simulators_with_equal_configs_share_the_generated_data_but_not_clock_or_faults() -> None:
    a, b = Simulator(SimulatorConfig(seed=9, size=300)), Simulator(SimulatorConfig(seed=9, size=300))
    assert a.data("smartcq") is b.data("smartcq")
    a.advance(timedelta(days=1))
    a.faults.set("smartcq", bad_record_rate=0.5)
    assert b.now < a.now and b.bad_records("smartcq") == []
    assert len(b.snapshot("smartcq")) < len(a.snapshot("smartcq"))


def test_the_clock_starts_after_the_history_and_only_moves_forward() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    sim = Simulator(SimulatorConfig(start=start, history=timedelta(days=2)))
    assert sim.now == start + timedelta(days=2)
    assert sim.advance(timedelta(minutes=90)) == start + timedelta(days=2, minutes=90)
    with pytest.raises(ValueError, match="forward"):
        sim.advance(timedelta(seconds=-1))
    sends = sim.snapshot("smartcq")
    assert min(s["createdAt"] for s in sends) >= "2026-11-01T00:00:00.000Z"
    assert max(s["createdAt"] for s in sends) <= sim.now.isoformat().replace("+00:00", "Z")


def test_a_running_clock_advances_with_real_time() -> None:
    import time

    sim = Simulator(SimulatorConfig(clock_speed=3600))
    t0 = sim.now
    time.sleep(0.05)
    assert sim.now - t0 >= timedelta(seconds=150)


def test_bad_configs_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="aware"):
        SimulatorConfig(start=datetime(2026, 11, 1))
    with pytest.raises(ValueError, match="size"):
        SimulatorConfig(size=0)
    with pytest.raises(ValueError, match="unknown provider"):
        Simulator().snapshot("mailchimp")


def test_roughly_size_messages_per_provider_with_the_future_share_arriving_later() -> None:
    sim = Simulator(SimulatorConfig(seed=2, size=1000, future_fraction=0.2))
    visible = len(sim.snapshot("smartcq"))
    assert 700 <= visible <= 900
    sim.advance(timedelta(days=8))
    assert len(sim.snapshot("smartcq")) == 1000
    attempts = [e for e in sim.snapshot("smtpeter") if e["event"] == "attempt"]
    assert len(attempts) == 1000


async def test_the_request_log_records_each_request_and_never_the_token(served: Served, sim: Simulator) -> None:
    await served.get("smtpeter", "/v1/events/tags/newsletter", start="2026-11-01")
    await served.get("smartcq", "/api/v1/sends", auth=False)
    first, second = sim.request_log
    assert first == (
        "smtpeter",
        "GET",
        "/v1/events/tags/newsletter",
        {"access_token": "***", "start": "2026-11-01"},
        200,
    )
    assert second[0::4] == ("smartcq", 401)
    assert first.sim_time == sim.now and second.at >= first.at
    assert sim.credentials["smtpeter"] not in repr(sim.request_log)


async def test_control_routes_advance_snapshot_and_set_faults(served: Served, sim: Simulator) -> None:
    base = served.urls["supersend"]
    now = (await served.client.get(base + "/_sim/now")).json()["now"]
    moved = (await served.client.post(base + "/_sim/advance", params={"seconds": 7200})).json()["now"]
    assert (datetime.fromisoformat(moved) - datetime.fromisoformat(now)) == timedelta(hours=2)
    assert (await served.client.post(base + "/_sim/advance", params={"seconds": "-1"})).status_code == 400
    snap = (
        await served.client.get(
            base + "/_sim/snapshot/smartcq", params={"kind": "contacts", "include_archived": "true"}
        )
    ).json()
    assert snap == sim.snapshot("smartcq", kind="contacts", include_archived=True)
    r = await served.client.post(
        base + "/_sim/faults", json={"provider": "smartcq", "script": ["503"], "spec": "429=0.0"}
    )
    assert r.status_code == 200 and r.json()["smartcq"]["script"] == ["503"]
    assert (await served.get("smartcq", "/api/v1/sends")).status_code == 503
    assert (await served.client.post(base + "/_sim/faults", json={"script": ["503"]})).status_code == 400
    r = await served.client.post(base + "/_sim/settings", json={"smartersends_export_method": "GET"})
    assert r.json()["smartersends_export_method"] == "GET" == sim.settings.smartersends_export_method
    log = (await served.client.get(base + "/_sim/requests")).json()
    assert log[-1]["status"] == 503 and log[-1]["provider"] == "smartcq"
    assert all(not entry["path"].startswith("/_sim/") for entry in log)


def test_without_a_horizon_everything_exists_at_the_clock_start() -> None:
    sim = Simulator(SimulatorConfig(seed=4, size=1200, horizon=timedelta(0)))
    sends = sim.snapshot("smartcq")
    assert len(sends) == 1200
    sim.advance(timedelta(days=30))
    assert len(sim.snapshot("smartcq")) == 1200
    assert len([e for e in sim.snapshot("smtpeter") if e["event"] == "attempt"]) == 1200
