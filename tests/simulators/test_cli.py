"""``mailpulse simulate`` as a subprocess: prints its URLs, serves, obeys /_sim/, stops on SIGTERM; bad flags are one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

CMD = [sys.executable, "-m", "mailpulse.cli", "simulate"]


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--size", "lots"], "--size: 'lots' is not an integer"),
        (["--port-base", "70000"], "--port-base: 70000 is out of range"),
        (["--clock-speed", "-2"], "--clock-speed: -2 is out of range"),
        (["--faults", "429=0.5,boom=1"], "--faults: fault 'boom=1'"),
        (["--start", "someday"], "--start: 'someday'"),
    ],
)
def test_bad_flags_fail_with_one_clear_line(flags: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    from mailpulse.cli import main

    assert main(["simulate", *flags]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("mailpulse simulate:")


def test_the_simulator_process_serves_all_four_apis_and_is_driven_by_control_routes() -> None:
    proc = subprocess.Popen(
        [*CMD, "--port-base", "0", "--size", "300", "--clock-speed", "0", "--seed", "4", "--faults", "retry-after=2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        urls = dict(proc.stdout.readline().split() for _ in range(4))
        assert list(urls) == ["smartcq", "smtpeter", "supersend", "smartersends"]
        with httpx.Client(timeout=10) as client:
            cq = urls["smartcq"]
            key = {"Authorization": "Bearer sim-smartcq-key"}
            before = client.get(cq + "/_sim/snapshot/smartcq").json()
            assert client.get(cq + "/api/v1/sends", params={"limit": 500}, headers=key).json()["data"] == before
            client.post(cq + "/_sim/advance", params={"seconds": 86400})
            assert len(client.get(cq + "/_sim/snapshot/smartcq").json()) > len(before)
            client.post(cq + "/_sim/faults", json={"provider": "smartcq", "script": ["429"]})
            limited = client.get(cq + "/api/v1/sends", headers=key)
            assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
            assert client.get(
                urls["smtpeter"] + "/v1/events/template/42", params={"access_token": "sim-smtpeter-token"}
            ).json()
            assert client.get(
                urls["supersend"] + "/v2/events", headers={"Authorization": "Bearer sim-supersend-key"}
            ).json()["success"]
            assert (
                client.get(
                    urls["smartersends"] + "/api/events", headers={"Authorization": "Bearer sim-smartersends-key"}
                ).status_code
                == 200
            )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
