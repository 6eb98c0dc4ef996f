"""The Helm chart (helm/mailpulse), checked without a cluster.

``helm lint --strict`` and ``helm template`` (the helm binary bin/test builds
and caches) with the default values and with helm-values-full.yaml, which
turns on every option. Every rendered manifest passes kubernetes-validate's
schema of a recent Kubernetes; the restricted Pod Security Standard holds on
every container; no secret reaches a manifest; the rendered config file passes
mailpulse's own loader, with each worker pod's advertised_host its stable DNS name.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mailpulse.alerts import AlertSettings, helm_rules_template, helm_value_name, render_rules
from mailpulse.config import Config, load_config
from mailpulse.connectors.publisher import transactional_id
from mailpulse.streams.app import app_id
from mailpulse.topics.contracts import TOPICS, topic_name
from tests.fixtures.kafka import make_ca
from tests.fixtures.tools import require_helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "mailpulse"
FULL_VALUES = Path(__file__).resolve().parent / "helm-values-full.yaml"
STRIMZI = ROOT / "examples" / "strimzi"
RULES = ROOT / "deploy" / "prometheus" / "mailpulse-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "mailpulse.json"
RELEASE, NAMESPACE = "mp", "mail"
#: The Kubernetes schemas checked: the newest kubernetes-validate ships, and an older one still in support.
KUBE_VERSIONS = (kubernetes_validate.latest_version(), "1.30")
SENTINEL = "s3cr3t-SENTINEL"
#: Values of the Secret's variables when the test loads the config (as the pods would).
SECRET_ENV = {
    "KAFKA_PASSWORD": f"{SENTINEL}-kafka",
    "SMARTCQ_KEY": f"{SENTINEL}-smartcq",
    "SMTPETER_TOKEN": f"{SENTINEL}-smtpeter",
    "SUPERSEND_KEY": f"{SENTINEL}-supersend",
    "SMARTERSENDS_KEY": f"{SENTINEL}-smartersends",
}
#: (Secret, key) pairs the profiles' pods may read.
SECRET_KEYS = {
    *(("mailpulse-secrets", key) for key in yaml.safe_load(FULL_VALUES.read_text())["secretEnv"].values()),
    ("mailpulse", "password"),  # Strimzi's KafkaUser Secret
    ("mailpulse-providers", "smartcq-api-key"),
}
#: What `helm install` finds in a cluster with the prometheus-operator (helm template has no cluster to ask).
MONITORING_APIS = ["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
                   "--api-versions", "monitoring.coreos.com/v1/PrometheusRule"]  # fmt: skip
PROFILES = {"default": [], "full": ["-f", str(FULL_VALUES)], "strimzi": ["-f", str(STRIMZI / "values.yaml")]}
POD_KINDS = ("Deployment", "StatefulSet", "Job", "DaemonSet")
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([require_helm(), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done


def render(*args: str) -> list[dict[str, Any]]:
    out = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module", params=sorted(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(*args, *(MONITORING_APIS if name != "default" else [])) for name, args in PROFILES.items()}


@pytest.fixture(scope="module")
def docs(rendered, profile) -> list[dict[str, Any]]:
    return rendered[profile]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]) for d in docs if d["kind"] in POD_KINDS
    ]


def config_text(docs: list[dict[str, Any]]) -> str:
    return one(docs, "ConfigMap", f"{RELEASE}-mailpulse-config")["data"]["mailpulse.yaml"]


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of a container's env value."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def pod_env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The container's environment as the kubelet would set it for pod ``pod_name``."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
        elif field := var.get("valueFrom", {}).get("fieldRef"):
            env[var["name"]] = {"metadata.name": pod_name, "metadata.namespace": NAMESPACE}[field["fieldPath"]]
        elif ref := var.get("valueFrom", {}).get("secretKeyRef"):
            env[var["name"]] = SECRET_ENV[var["name"]]
            # The Secret the values name: full values' own, or Strimzi's user Secret and a providers' Secret.
            assert (ref["name"], ref["key"]) in SECRET_KEYS, ref
    return env


# ---------------------------------------------------------------------------
# helm lint, schemas


def test_helm_lint_strict(profile):
    done = helm("lint", "--strict", str(CHART), *PROFILES[profile])
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_passes_the_kubernetes_schema(docs, kube_version):
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            # prometheus-operator CRDs: kubernetes-validate has no schema for them; checked below.
            assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] in (
                "ServiceMonitor",
                "PrometheusRule",
            )
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} is not a valid Kubernetes {kube_version} object: {exc.message} at {list(exc.path)}")


def test_every_option_is_rendered(rendered):
    kinds = sorted({d["kind"] for d in rendered["full"]})
    assert kinds == sorted(
        {"ConfigMap", "Deployment", "Job", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule", "Service",
         "ServiceAccount", "ServiceMonitor", "StatefulSet"}
    )  # fmt: skip
    defaults = {d["kind"] for d in rendered["default"]}
    assert "ServiceMonitor" not in defaults and "PrometheusRule" not in defaults


def test_the_schema_refuses_what_the_chart_owns_or_forbids():
    for bad in (
        "connect.replicas=2",  # one poller copy, always
        "config.kafka.bootstrap=x:1",  # a typo of bootstrap_servers
        "config.worker.data_dir=/data",  # the volume mount sets it
        "config.kafka.ssl_cafile=/ca.pem",  # TLS files come from kafkaTls
        "podSecurityContext.runAsNonRoot=false",
    ):
        done = helm("template", RELEASE, str(CHART), "--set", bad, check=False)
        assert done.returncode != 0, f"--set {bad} was accepted"


# ---------------------------------------------------------------------------
# restricted Pod Security Standard


def test_restricted_pod_security_standard(docs):
    specs = pod_specs(docs)
    assert {name.split("/")[0] for name, _ in specs} >= {"Deployment", "StatefulSet"}
    for name, spec in specs:
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, name
        assert pod_sc.get("runAsUser", 0) != 0, name
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{name}: {flag}"
        assert spec.get("automountServiceAccountToken") is False, name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for v in volumes.values():
            kinds = set(v) - {"name"}
            assert kinds <= RESTRICTED_VOLUMES, f"{name}: volume {v['name']} of type {kinds}"
        containers = spec["containers"] + spec.get("initContainers", [])
        for c in containers:
            where = f"{name} container {c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            assert sc.get("privileged", False) is False, where
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", pod_sc.get("runAsUser")) not in (None, 0), where
            assert sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type") == "RuntimeDefault", where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert not any(p.get("hostPort") for p in c.get("ports", [])), where
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp is an emptyDir"


# ---------------------------------------------------------------------------
# secrets


def test_no_secret_value_in_any_manifest(rendered):
    for profile, docs in rendered.items():
        text = yaml.safe_dump_all(docs)
        assert SENTINEL not in text, profile
    docs = rendered["full"]
    for name, spec in pod_specs(docs):
        for c in spec["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            for var, key in (("KAFKA_PASSWORD", "kafka-password"), ("SMARTCQ_KEY", "smartcq-api-key")):
                assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "mailpulse-secrets", "key": key}, name
    config = yaml.safe_load(config_text(docs))
    assert config["kafka"]["sasl_password"] == "${KAFKA_PASSWORD}"
    assert [s.get("api_key", s.get("access_token")) for s in config["sources"]] == [
        "${SMARTCQ_KEY}", "${SMTPETER_TOKEN}", "${SUPERSEND_KEY}", "${SMARTERSENDS_KEY}"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "literal",
    [
        ["--set", f"config.kafka.sasl_password={SENTINEL}"],
        ["--set-string", f"config.sources[3].api_key={SENTINEL}"],
        ["--set-string", f"config.sources[1].access_token={SENTINEL}"],
    ],
    ids=["sasl_password", "api_key", "access_token"],
)
def test_a_literal_secret_is_refused_without_being_echoed(literal):
    done = helm("template", RELEASE, str(CHART), "-f", str(FULL_VALUES), *literal, check=False)
    assert done.returncode != 0
    assert "${VAR} reference" in done.stderr
    assert SENTINEL not in done.stdout + done.stderr


def test_a_config_variable_without_a_secret_entry_is_refused():
    args = ["--set-string", "config.sources[0].api_key=${ACME_KEY}"]
    done = helm("template", RELEASE, str(CHART), "-f", str(FULL_VALUES), *args, check=False)
    assert done.returncode != 0
    assert "no secretEnv (or extraEnv) entry sets ACME_KEY" in done.stderr


# ---------------------------------------------------------------------------
# the config file, through mailpulse's own loader


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real PEM files with the Secret's key names (the loader opens them)."""
    directory = tmp_path_factory.mktemp("kafka-tls")
    cert, key = make_ca(directory, "ca")
    (directory / "ca.crt").write_text(cert.read_text())
    (directory / "user.crt").write_text(cert.read_text())
    (directory / "user.key").write_text(key.read_text())
    return directory


def load_rendered(text: str, tmp_path: Path, env: dict[str, str], command: str | None, tls_dir: Path | None = None):
    if tls_dir is not None:
        text = text.replace("/etc/mailpulse/kafka/", f"{tls_dir}/")
    path = tmp_path / "mailpulse.yaml"
    path.write_text(text)
    return load_config(path, env, command=command)


def test_rendered_config_loads_with_mailpulses_loader(rendered, tmp_path, tls_files):
    # Full: every command the chart runs, with the environment of the pods.
    docs = rendered["full"]
    sts = one(docs, "StatefulSet")
    worker_env = pod_env(sts["spec"]["template"]["spec"]["containers"][0], f"{sts['metadata']['name']}-0")
    connect = one(docs, "Deployment")
    connect_env = pod_env(connect["spec"]["template"]["spec"]["containers"][0], "connect-pod")
    job = one(docs, "Job")
    job_env = pod_env(job["spec"]["template"]["spec"]["containers"][0], "topics-pod")
    text = config_text(docs)
    for env, command in (
        (worker_env, "worker"),
        (connect_env, "connect"),
        (job_env, "topics create"),
        (worker_env, None),
    ):
        config = load_rendered(text, tmp_path, env, command, tls_files)
        assert config.kafka.security_protocol == "SASL_SSL"
        assert config.kafka.sasl_password.get_secret_value() == SECRET_ENV["KAFKA_PASSWORD"]
        assert config.kafka.ssl_keyfile == tls_files / "user.key"
    assert len(config.sources) == 4 and config.sources[0].api_key.get_secret_value() == SECRET_ENV["SMARTCQ_KEY"]
    assert str(config.worker.data_dir) == "/var/lib/mailpulse"
    assert config.worker.web_port == 6066 and config.connect.metrics_port == 9108
    # The hook Job reads the same file.
    hook_config = one(docs, "ConfigMap", f"{RELEASE}-mailpulse-topics-config")["data"]["mailpulse.yaml"]
    assert hook_config == text
    # Default values: the worker and topics create (connect needs a source first).
    docs = rendered["default"]
    sts = one(docs, "StatefulSet")
    env = pod_env(sts["spec"]["template"]["spec"]["containers"][0], f"{sts['metadata']['name']}-0")
    for command in ("worker", "topics create"):
        config = load_rendered(config_text(docs), tmp_path, env, command)
        assert str(config.worker.data_dir) == "/var/lib/mailpulse"


def test_tls_files_are_mounted_where_the_config_points(rendered):
    docs = rendered["full"]
    config = yaml.safe_load(config_text(docs))
    for name, spec in pod_specs(docs):
        volume = next(v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "mailpulse-kafka-tls")
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
        assert mount["readOnly"] is True, name
        for key, file in (("ssl_cafile", "ca.crt"), ("ssl_certfile", "user.crt"), ("ssl_keyfile", "user.key")):
            assert config["kafka"][key] == f"{mount['mountPath']}/{file}", name


def test_each_worker_advertises_its_stable_dns_name(rendered, tmp_path, tls_files):
    docs = rendered["full"]
    sts = one(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 3
    headless = one(docs, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= pod_labels.items()
    container = sts["spec"]["template"]["spec"]["containers"][0]
    names = set()
    for ordinal in range(sts["spec"]["replicas"]):
        pod = f"{sts['metadata']['name']}-{ordinal}"
        config = load_rendered(config_text(docs), tmp_path, pod_env(container, pod), "worker", tls_files)
        expected = f"{pod}.{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
        assert config.worker.advertised_host == expected
        names.add(config.worker.advertised_host)
    assert len(names) == 3
    port = next(p for p in container["ports"] if p["name"] == "http")["containerPort"]
    assert port == config.worker.web_port


def test_grace_period_outlasts_the_session_timeout(rendered, tmp_path, tls_files):
    for profile, docs in rendered.items():
        sts = one(docs, "StatefulSet")
        env = pod_env(sts["spec"]["template"]["spec"]["containers"][0], "w-0")
        config = load_rendered(config_text(docs), tmp_path, env, "worker", None if profile == "default" else tls_files)
        grace = timedelta(seconds=sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
        assert grace > config.worker.session_timeout, profile
    done = helm("template", RELEASE, str(CHART), "--set", "worker.terminationGracePeriodSeconds=30", check=False)
    assert done.returncode != 0 and "must be longer than config.worker.session_timeout" in done.stderr


# ---------------------------------------------------------------------------
# workloads


def test_connect_is_one_pod_with_metrics_probes(docs):
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"]["type"] == "Recreate"
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["connect", "--config", "/etc/mailpulse/mailpulse.yaml"]
    assert yaml.safe_load(config_text(docs))["connect"]["metrics_port"] == c["ports"][0]["containerPort"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] == c["ports"][0]["name"] == "metrics"


def test_workers_statefulset(docs):
    sts = one(docs, "StatefulSet")
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    (c,) = spec["template"]["spec"]["containers"]
    assert c["args"] == ["worker", "--config", "/etc/mailpulse/mailpulse.yaml"]
    (claim,) = spec["volumeClaimTemplates"]
    data_dir = yaml.safe_load(config_text(docs))["worker"]["data_dir"]
    assert {"name": claim["metadata"]["name"], "mountPath": data_dir} in c["volumeMounts"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # A rebalance makes every pod's /readyz answer 503 at once: readiness tolerates 2 minutes of it.
    readiness = c["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] >= 120
    api = one(docs, "Service", sts["metadata"]["name"])
    assert api["spec"]["type"] == "ClusterIP" and "clusterIP" not in api["spec"]
    assert api["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_topics_job_is_a_pre_install_and_pre_upgrade_hook(rendered):
    docs = rendered["full"]
    job = one(docs, "Job")
    hook_config = one(docs, "ConfigMap", f"{RELEASE}-mailpulse-topics-config")
    for doc, weight in ((hook_config, "-10"), (job, "-5")):
        notes = doc["metadata"]["annotations"]
        assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert notes["helm.sh/hook-weight"] == weight
    spec = job["spec"]["template"]["spec"]
    assert spec["containers"][0]["args"] == ["topics", "create", "--config", "/etc/mailpulse/mailpulse.yaml"]
    assert spec["volumes"][0]["configMap"]["name"] == hook_config["metadata"]["name"]
    off = render("-f", str(FULL_VALUES), "--set", "topics.create=false")
    assert not [d for d in off if d["kind"] == "Job"]


def test_service_monitors_scrape_the_named_metrics_ports(rendered):
    docs = rendered["full"]
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selected = [
            s for s in services if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"{monitor['metadata']['name']} selects {[s['metadata']['name'] for s in selected]}"
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}


def test_prometheus_rule_with_default_values_is_the_repositorys_rules_file(rendered):
    rule = one(rendered["full"], "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_chart_alert_rules_template_is_generated():
    assert (CHART / "templates" / "_alert-rules.tpl").read_text() == helm_rules_template(), (
        "helm/mailpulse/templates/_alert-rules.tpl is stale: run "
        "mailpulse alerts rules --helm-template > helm/mailpulse/templates/_alert-rules.tpl"
    )


def test_chart_threshold_defaults_are_the_generators_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())["alerts"]
    defaults = AlertSettings()
    expected = {helm_value_name(f): getattr(defaults, f) for f in AlertSettings.model_fields if f != "runbook_url"}
    assert values["thresholds"] == expected
    assert values["runbookUrl"] == defaults.runbook_url


def test_alert_thresholds_set_in_values_reach_the_prometheus_rule(tmp_path):
    custom = AlertSettings(
        complaint_rate_warning=0.0005,
        complaint_rate_critical=0.0042,
        bounce_rate_warning=0.02,
        bounce_rate_critical=0.07,
        deferral_rate_warning=0.2,
        min_sent_1h=777,
        min_sent_24h=5000,
        runbook_url="https://runbooks.example/mailpulse.md",
    )
    thresholds = {helm_value_name(f): getattr(custom, f) for f in AlertSettings.model_fields if f != "runbook_url"}
    values = tmp_path / "alerts.yaml"
    values.write_text(yaml.safe_dump({"alerts": {"enabled": True, "runbookUrl": custom.runbook_url,
                                                 "thresholds": thresholds}}))  # fmt: skip
    docs = render("-f", str(values), *MONITORING_APIS)
    assert one(docs, "PrometheusRule")["spec"] == render_rules(custom)


def test_a_rate_above_one_in_values_is_refused_by_the_schema():
    done = helm("template", RELEASE, str(CHART), "--set", "alerts.thresholds.bounceRateWarning=3", check=False)
    assert done.returncode != 0
    assert "bounceRateWarning" in done.stderr


def render_notes(tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` would print it with ``args``.

    `helm install --dry-run` wants a cluster: render it through a copy of the chart
    in which it is a named template, shown in a ConfigMap.
    """
    chart = tmp_path / "mailpulse-notes"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        notes = (chart / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "NOTES.txt").unlink()
        (chart / "templates" / "_notes.tpl").write_text('{{- define "test.notes" -}}\n' + notes + "{{- end }}\n")
        (chart / "templates" / "notes.yaml").write_text(
            'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ include "test.notes" . | quote }}\n'
        )
    out = helm("template", RELEASE, str(chart), "--namespace", NAMESPACE, *args,
               "--show-only", "templates/notes.yaml").stdout  # fmt: skip
    return yaml.safe_load(out)["data"]["notes"]


def test_notes_render(tmp_path):
    text = render_notes(tmp_path, "-f", str(FULL_VALUES))
    assert f"http://{RELEASE}-mailpulse-worker.{NAMESPACE}.svc:6066" in text
    assert "KAFKA_PASSWORD" in text and "mailpulse-secrets" in text and SENTINEL not in text


def test_dashboard_configmap_carries_the_repositorys_dashboard_for_the_grafana_sidecar(rendered):
    shipped = CHART / "files" / "mailpulse-dashboard.json"
    assert shipped.read_bytes() == DASHBOARD.read_bytes(), (
        "helm/mailpulse/files/mailpulse-dashboard.json differs from deploy/grafana/mailpulse.json: copy it over"
    )
    config_map = one(rendered["full"], "ConfigMap", f"{RELEASE}-mailpulse-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["mailpulse.json"]) == json.loads(DASHBOARD.read_text())
    assert not [d for d in rendered["default"] if d["metadata"]["name"].endswith("-dashboard")]


def test_network_policies_admit_the_listed_peers_and_worker_to_worker_routing(rendered):
    docs = rendered["full"]
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    worker, connect = policies[f"{RELEASE}-mailpulse-worker"], policies[f"{RELEASE}-mailpulse-connect"]
    worker_set = one(docs, "StatefulSet")
    pod_labels = worker_set["spec"]["template"]["metadata"]["labels"]
    assert worker["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (rule,) = worker["spec"]["ingress"]
    port_names = {p["name"] for c in worker_set["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    assert {p["port"] for p in rule["ports"]} <= port_names
    peers = rule["from"]
    # Worker to worker: the peer selector picks the worker pods themselves.
    assert any(
        p.get("podSelector", {}).get("matchLabels", {}).items() <= pod_labels.items()
        for p in peers
        if "podSelector" in p
    )
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert monitoring in peers and connect["spec"]["ingress"][0]["from"] == [monitoring]
    assert worker["spec"]["policyTypes"] == connect["spec"]["policyTypes"] == ["Ingress"]
    assert not [d for d in rendered["default"] if d["kind"] == "NetworkPolicy"]


def test_monitoring_objects_are_skipped_with_a_warning_where_the_operator_apis_are_missing(tmp_path):
    docs = render("-f", str(FULL_VALUES))  # no --api-versions: a cluster without the prometheus-operator
    kinds = {d["kind"] for d in docs}
    assert "ServiceMonitor" not in kinds and "PrometheusRule" not in kinds
    for extra, warned in (([], {"ServiceMonitor", "PrometheusRule"}), (MONITORING_APIS, set())):
        text = render_notes(tmp_path, "-f", str(FULL_VALUES), *extra)
        assert {k for k in ("ServiceMonitor", "PrometheusRule") if f"WARNING: {k} is enabled" in text} == warned


def test_strimzi_example_reads_the_kafkauser_secret_and_the_cluster_ca(rendered, tmp_path, tls_files):
    docs = rendered["strimzi"]
    sts = one(docs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    refs = {
        v["name"]: v["valueFrom"]["secretKeyRef"] for v in container["env"] if "secretKeyRef" in v.get("valueFrom", {})
    }
    assert refs["KAFKA_PASSWORD"] == {"name": "mailpulse", "key": "password"}
    assert refs["SMARTCQ_KEY"]["name"] == "mailpulse-providers"
    assert "my-cluster-cluster-ca-cert" in {v.get("secret", {}).get("secretName") for v in pod["volumes"]}
    env = pod_env(container, f"{sts['metadata']['name']}-0")
    config = load_rendered(config_text(docs), tmp_path, env, "worker", tls_files)
    assert config.kafka.security_protocol == "SASL_SSL" and config.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert config.kafka.sasl_password.get_secret_value() == SECRET_ENV["KAFKA_PASSWORD"]
    assert str(config.kafka.ssl_cafile).endswith("/ca.crt")


def test_strimzi_kafkauser_acls_cover_every_name_mailpulse_uses():
    user = yaml.safe_load((STRIMZI / "kafkauser.yaml").read_text())
    assert user["kind"] == "KafkaUser" and user["spec"]["authentication"]["type"] == "scram-sha-512"
    prefixes: dict[str, list[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        if resource["type"] != "cluster":
            assert resource["patternType"] == "prefix" and acl["operations"] == ["All"]
            prefixes.setdefault(resource["type"], []).append(resource["name"])
    values = yaml.safe_load((STRIMZI / "values.yaml").read_text())
    config = Config.model_validate({"kafka": {"bootstrap_servers": "x:9093"}})
    names = {
        "topic": [topic_name(spec, config.kafka.topic_prefix) for spec in TOPICS]
        + [f"{app_id(config)}.campaign-partials", f"{app_id(config)}-messages-changelog"],
        "group": [app_id(config)],
        "transactionalId": [
            transactional_id(config.kafka.topic_prefix, source["name"], stream, role=role)
            for source in values["config"]["sources"]
            for stream in ("sends", "contacts")
            for role in ("connector", "backfill")
        ],
    }
    for kind, wanted in names.items():
        for name in wanted:
            assert any(name.startswith(p) for p in prefixes.get(kind, [])), f"no ACL lets mailpulse use {kind} {name}"


def test_the_schema_takes_every_worker_and_connect_key_the_chart_does_not_set_itself():
    from mailpulse.config import ConnectConfig, WorkerConfig

    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]["properties"]
    chart_owned = {"web_port", "web_host", "data_dir", "advertised_host", "metrics_port"}
    for section, model in (("worker", WorkerConfig), ("connect", ConnectConfig)):
        allowed = set(schema[section]["properties"])
        missing = set(model.model_fields) - chart_owned - allowed
        assert not missing, f"config.{section} keys the chart's schema refuses: {sorted(missing)}"
        assert allowed <= set(model.model_fields), (
            f"schema keys mailpulse does not know: {allowed - set(model.model_fields)}"
        )
