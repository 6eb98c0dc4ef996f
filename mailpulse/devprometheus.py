"""A local Prometheus server for ``mailpulse dev up`` and the tests: scrapes the pollers and workers, loads the rules.

It runs the ``prometheus`` binary found on PATH (Debian's ``prometheus``
package; ``bin/test`` installs it where it can) on loopback, with a config
written into its state directory: one scrape job per part, the alert rules of
``mailpulse alerts rules`` (with the config's thresholds), and a short scrape
interval so a local pipeline is visible at once.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from mailpulse.alerts import AlertSettings, rules_yaml
from mailpulse.errors import MailpulseError

__all__ = ["LocalPrometheus", "PrometheusError", "prometheus_binary"]


class PrometheusError(MailpulseError):
    """The local Prometheus did not start, or a query failed."""


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


@dataclass
class LocalPrometheus:
    state_dir: Path
    port: int = 9090
    #: job name -> ``host:port`` targets serving ``/metrics``.
    targets: dict[str, list[str]] = field(default_factory=dict)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    scrape_interval: str = "2s"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "prometheus.log"

    def write_config(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        rules = self.state_dir / "mailpulse-alerts.yml"
        rules.write_text(rules_yaml(self.alerts))
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(hosts)}]} for job, hosts in self.targets.items()
            ],
        }
        path = self.state_dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, timeout: float = 60) -> str:
        binary = prometheus_binary()
        if binary is None:
            raise PrometheusError("prometheus not found on PATH (Debian/Ubuntu: apt-get install prometheus)")
        config = self.write_config()
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.state_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited with code {self.process.returncode}; log {self.log_file}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise PrometheusError(f"prometheus did not become ready on {self.url} in {timeout:.0f}s; log {self.log_file}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # -- the HTTP API, for the tests and dev up's banner --------------------------------------------------------

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; raises ``PrometheusError`` naming the expression if Prometheus refuses it."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query failed ({body.get('errorType')}: {body.get('error')}): {expr}")
        return body["data"]["result"]

    def targets_up(self) -> dict[str, str]:
        body = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["scrapeUrl"]: t["health"] for t in body["data"]["activeTargets"]}

    def rules(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]
