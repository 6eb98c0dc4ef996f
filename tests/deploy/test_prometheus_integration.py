"""A real Prometheus scrapes a running pipeline; every dashboard and rule query returns data.

The four simulated providers (with 429s, 5xx and bad records, so errors,
retries and dead letters exist), ``mailpulse connect`` and ``mailpulse
worker`` run against the session broker; Prometheus (Debian's package, on
loopback) scrapes both with the alert rules loaded. Every PromQL expression of
``deploy/grafana/mailpulse.json`` (variables set to match everything) and of
the rules must parse and return series. A rule that must not fire on a healthy
pipeline is evaluated with its thresholds lowered (generated with tiny
thresholds and volumes; the pipeline rules' comparisons opened up), so an
expression that silently matches nothing fails here. The scraped figures agree
with the query API.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from mailpulse.alerts import AlertSettings, render_rules
from mailpulse.devprometheus import LocalPrometheus
from mailpulse.topics.admin import ensure_topics
from tests.fixtures.tools import require_tool
from tests.streams.fixtures import TEST_WORKER, WorkerProcess, free_port, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "mailpulse.json"
PROVIDERS = ("smartcq", "smtpeter", "supersend", "smartersends")


def _free_block(n: int) -> int:
    """A first port such that it and the next n-1 are free."""
    for _ in range(50):
        base = free_port()
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


def _config(path: Path, bootstrap: str, prefix: str, sim: int, metrics_port: int) -> None:
    sources = [
        {
            "name": "t-smartcq",
            "provider": "smartcq",
            "base_url": f"http://127.0.0.1:{sim}",
            "api_key": "sim-smartcq-key",
        },
        {
            "name": "t-smtpeter",
            "provider": "smtpeter",
            "base_url": f"http://127.0.0.1:{sim + 1}",
            "access_token": "sim-smtpeter-token",
            "selectors": [{"tags": ["newsletter"]}, {"template": 42}],
        },
        {
            "name": "t-supersend",
            "provider": "supersend",
            "base_url": f"http://127.0.0.1:{sim + 2}",
            "api_key": "sim-supersend-key",
        },
        {
            "name": "t-smartersends",
            "provider": "smartersends",
            "base_url": f"http://127.0.0.1:{sim + 3}",
            "api_key": "sim-smartersends-key",
        },
    ]
    for s in sources:
        s.update({"poll_interval": "3s", "reconcile_interval": "20s", "max_retries": 8, "timeout": "10s"})
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "replication_factor": 1},
                "connect": {"metrics_port": metrics_port, "batch_size": 500},
                "sources": sources,
            }
        )
    )


def _grafana_exprs() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var in ("provider", "source", "campaign"):
                expr = expr.replace(f"${var}", ".*")
            # The test pipeline is small: the table's volume floor drops to one message.
            out.append((panel["title"], expr.replace("$__rate_interval", "2m").replace("$min_sent", "1")))
    return out


def _opened_up(expr: str) -> str:
    """A pipeline rule with every comparison against a number opened up, so it returns its series."""
    return re.sub(r"(==|!=|>=|<=|>|<)\s*-?[0-9][0-9.e+]*(\s*\*\s*[0-9]+)?", ">= -Inf", expr)


#: Thresholds below any rate (a healthy test pipeline has no complaint): every group with a rate answers.
#: (model_construct: a negative threshold is no setting a user may give, only a probe.)
LOWERED = AlertSettings.model_construct(
    **{
        **AlertSettings().model_dump(),
        "complaint_rate_warning": -1,
        "complaint_rate_critical": -1,
        "bounce_rate_warning": -1,
        "bounce_rate_critical": -1,
        "deferral_rate_warning": -1,
        "min_sent_1h": 1,
        "min_sent_24h": 1,
    }
)


@pytest.fixture(scope="module")
def pipeline(kafka, tmp_path_factory):
    require_tool("prometheus")
    import asyncio

    tmp = tmp_path_factory.mktemp("prom-pipeline")
    prefix = f"t{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(kafka.bootstrap, prefix=prefix, replication_factor=1))
    sim, metrics_port = _free_block(4), free_port()
    config = tmp / "mailpulse.yaml"
    _config(config, kafka.bootstrap, prefix, sim, metrics_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPULSE_")}
    logs = []

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(tmp / f"{name}.log", "wb")
        logs.append(log)
        return subprocess.Popen(
            [sys.executable, "-m", "mailpulse.cli", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    procs = [
        spawn(
            "simulate",
            "simulate",
            "--size",
            "400",
            "--port-base",
            str(sim),
            "--faults",
            "429=0.03,5xx=0.03,bad=0.01,retry-after=1",
        )
    ]
    time.sleep(2)
    procs.append(
        spawn("connect", "connect", "--config", str(config), "--clock-url", f"http://127.0.0.1:{sim}/_sim/now")
    )
    worker = WorkerProcess(tmp, kafka.bootstrap, prefix, "worker", **{**TEST_WORKER, "publish_interval": "500ms"})
    worker.start()
    # A request while the worker recovers answers 503: the API's 5xx series exists, as after any restart.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if worker.get("/v1/campaigns").status_code == 503:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    prometheus = LocalPrometheus(
        state_dir=tmp / "prometheus",
        port=free_port(),
        scrape_interval="1s",
        targets={"mailpulse-connect": [f"127.0.0.1:{metrics_port}"], "mailpulse-worker": [f"127.0.0.1:{worker.port}"]},
    )
    prometheus.start()
    try:
        yield prometheus, worker, tmp
    finally:
        prometheus.stop()
        worker.stop()
        for p in procs:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


async def _settled(prometheus: LocalPrometheus, worker: WorkerProcess, tmp: Path) -> None:
    def every_provider_published() -> bool:
        got = prometheus.query("sum by (provider) (mailpulse_connector_events_published_total)")
        return {r["metric"]["provider"] for r in got if float(r["value"][1]) > 0} >= {
            "smartcq",
            "smtpeter",
            "supersend",
        }

    await wait_until(lambda: worker.get("/readyz").status_code == 200, 120, "worker ready", [worker])
    await wait_until(
        every_provider_published,
        120,
        "events of every events provider scraped",
        [worker],
        show=lambda: (tmp / "connect.log").read_text()[-2000:],
    )
    await wait_until(lambda: prometheus.query("mailpulse_source_messages"), 60, "state metrics scraped", [worker])
    await wait_until(
        lambda: prometheus.query("mailpulse_mailbox_window_messages"), 60, "mailbox metrics scraped", [worker]
    )
    time.sleep(8)  # a few more scrapes: rate() and increase() need two samples in their window


async def test_every_dashboard_query_returns_series_from_a_running_pipeline(pipeline):
    prometheus, worker, tmp = pipeline
    await _settled(prometheus, worker, tmp)
    empty = [(title, expr) for title, expr in _grafana_exprs() if not prometheus.query(expr)]
    assert not empty, f"dashboard queries without data: {empty}"


async def test_every_alert_expression_parses_and_returns_series_with_its_threshold_lowered(pipeline):
    prometheus, worker, tmp = pipeline
    await _settled(prometheus, worker, tmp)
    # The rules Prometheus loaded are the generated ones, and it evaluates them without error.
    loaded = prometheus.rules()
    assert {r["name"] for r in loaded} == {r["alert"] for g in render_rules()["groups"] for r in g["rules"]}
    assert all(r.get("health") in ("ok", "unknown") for r in loaded), [r for r in loaded if r.get("health") == "err"]
    empty = []
    for group in render_rules(LOWERED)["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"] if group["name"] == "mailpulse-deliverability" else _opened_up(rule["expr"])
            if not prometheus.query(expr):
                empty.append((rule["alert"], rule["labels"], expr))
    assert not empty, f"alert expressions without data: {empty}"


async def test_scraped_figures_agree_with_the_query_api(pipeline):
    prometheus, worker, tmp = pipeline
    await _settled(prometheus, worker, tmp)

    def agree() -> bool:
        campaigns = worker.get("/v1/campaigns", limit=1000).json()["items"]
        by_source: dict[str, int] = {}
        for c in campaigns:
            by_source[c["source"]] = by_source.get(c["source"], 0) + c["counts"]["sent"]
        scraped = {
            r["metric"]["source"]: int(float(r["value"][1]))
            for r in prometheus.query('sum by (source) (mailpulse_source_messages{flag="sent"})')
        }
        mailboxes = worker.get("/v1/mailbox-providers").json()["items"]
        api_mailbox = {(m["source"], m["mailbox_provider"]): m["counts"]["bounced"] for m in mailboxes}
        scraped_mailbox = {
            (r["metric"]["source"], r["metric"]["mailbox_provider"]): int(float(r["value"][1]))
            for r in prometheus.query('sum by (source, mailbox_provider) (mailpulse_mailbox_messages{flag="bounced"})')
        }
        return bool(by_source) and scraped == by_source and scraped_mailbox == api_mailbox

    # The pollers keep polling: compare when a scrape and the API show the same moment.
    await wait_until(agree, 60, "Prometheus figures equal the API's", [worker])
    assert httpx.get(f"{prometheus.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
