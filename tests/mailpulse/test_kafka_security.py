"""Kafka security keys: validated as one line naming the key; one function builds every client's settings."""

from __future__ import annotations

import ast
import os
import ssl
from pathlib import Path

import pytest
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

from mailpulse.config import Config, KafkaConfig, load_config
from mailpulse.errors import ConfigError
from mailpulse.kafkaclient import describe_access_failure, faust_credentials, kafka_client_settings
from tests.fixtures.kafka import make_broker_keystore, make_ca

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("mailpulse", "connectors", "topics", "streams")
SASL = "security_protocol: SASL_SSL, sasl_mechanism: SCRAM-SHA-512, sasl_username: alice, sasl_password: '${KAFKA_PASSWORD}'"
ENV = {"KAFKA_PASSWORD": "s3cret-pw"}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = Path(tmp_path_factory.mktemp("tls"))
    ca = make_ca(d, "ca")
    client = make_ca(d, "client")  # any certificate and its key do for mutual TLS files
    make_broker_keystore(d, ca)
    return {"ca": ca[0], "cert": client[0], "key": client[1], "other_key": d / "broker.key"}


@pytest.fixture
def write(tmp_path: Path):
    def _write(kafka: str) -> Path:
        path = tmp_path / "mailpulse.yaml"
        path.write_text(f"kafka: {{{kafka}}}\n")
        return path

    return _write


def _error(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV if env is None else env)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: kafka.")
    assert "s3cret-pw" not in message
    return message


def test_defaults_are_plaintext_with_nothing_else():
    kafka = Config().kafka
    assert kafka.security_protocol == "PLAINTEXT" and kafka.ssl_check_hostname is True
    assert kafka_client_settings(kafka) == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(kafka) is None


def test_sasl_ssl_config_loads_and_never_shows_the_password(write, tls):
    path = write(f"{SASL}, ssl_cafile: '{tls['ca']}'")
    config = load_config(path, env=ENV)
    assert config.kafka.sasl_password.get_secret_value() == "s3cret-pw"
    assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in str(config.kafka)


@pytest.mark.parametrize(
    "section, key, words",
    [
        ("security_protocol: TLS", "security_protocol", "'SASL_SSL'"),
        ("security_protocol: SASL_SSL", "sasl_mechanism", "required with security_protocol SASL_SSL"),
        ("security_protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN", "sasl_username", "required"),
        ("security_protocol: SASL_SSL, sasl_mechanism: PLAIN, sasl_username: a", "sasl_password", "required"),
        (
            "security_protocol: SASL_SSL, sasl_mechanism: GSSAPI, sasl_username: a, sasl_password: b",
            "sasl_mechanism",
            "SCRAM-SHA-512",
        ),
        (
            "security_protocol: SASL_SSL, sasl_mechanism: PLAIN, sasl_username: ' ', sasl_password: b",
            "sasl_username",
            "empty",
        ),
        ("sasl_mechanism: PLAIN", "sasl_mechanism", "only used with security_protocol SASL_SSL or SASL_PLAINTEXT"),
        ("sasl_username: alice", "sasl_username", "only used with"),
        ("security_protocol: SSL, sasl_password: x", "sasl_password", "only used with"),
        (
            "ssl_cafile: /etc/hostname",
            "ssl_cafile",
            "only used with security_protocol SSL or SASL_SSL (it is PLAINTEXT)",
        ),
        ("security_protocol: SSL, ssl_cafile: /no/such/ca.pem", "ssl_cafile", "/no/such/ca.pem does not exist"),
        ("security_protocol: SSL, ssl_cafile: /", "ssl_cafile", "is not a file"),
        (
            "security_protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN, sasl_username: a, sasl_password: b, ssl_cafile: /x",
            "ssl_cafile",
            "only used with",
        ),
        ("security_protocol: SSL, ssl_keyfile: /etc/hostname", "ssl_keyfile", "needs ssl_certfile"),
    ],
)
def test_each_problem_is_one_line_naming_the_key(write, section, key, words):
    message = _error(write(section))
    assert f"kafka.{key}: " in message
    assert words in message


def test_password_from_an_unset_variable_names_the_key(write):
    message = _error(write(SASL), env={})
    assert "kafka.sasl_password: environment variable KAFKA_PASSWORD is not set" in message


def test_tls_files_must_be_readable_pem_and_match(write, tls, tmp_path):
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n")
    assert "holds no usable PEM CA certificate" in _error(write(f"security_protocol: SSL, ssl_cafile: '{not_pem}'"))
    assert "kafka.ssl_keyfile: required with ssl_certfile" in _error(
        write(f"security_protocol: SSL, ssl_certfile: '{tls['cert']}'")
    )
    mismatch = _error(
        write(f"security_protocol: SSL, ssl_certfile: '{tls['cert']}', ssl_keyfile: '{tls['other_key']}'")
    )
    assert "kafka.ssl_keyfile: cannot use" in mismatch and "matching that certificate" in mismatch
    ok = load_config(
        write(f"security_protocol: SSL, ssl_certfile: '{tls['cert']}', ssl_keyfile: '{tls['key']}'"), env={}
    )
    assert ok.kafka.ssl_keyfile == tls["key"]


def test_an_unreadable_tls_file_names_the_key(write, tls, monkeypatch):
    # chmod 0 does not stop root (CI may run as root): the check asks os.access, so ask it here.
    import mailpulse.config as config_module

    real = os.access
    monkeypatch.setattr(config_module.os, "access", lambda p, mode: False if Path(p) == tls["ca"] else real(p, mode))
    message = _error(write(f"security_protocol: SSL, ssl_cafile: '{tls['ca']}'"))
    assert f"kafka.ssl_cafile: {tls['ca']} is not readable by this user" in message


def test_launcher_adds_a_sasl_ssl_listener_beside_plaintext(tmp_path):
    from mailpulse.devkafka import LocalKafka, SaslSslListener

    listener = SaslSslListener(port=19096, keystore=tmp_path / "ks.pem", users=(("alice", "pw1"),))
    props = LocalKafka(state_dir=tmp_path, port=19092, controller_port=19093, sasl_ssl=listener)._server_properties(
        tmp_path / "data"
    )
    lines = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
    assert lines["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,SASL_SSL://127.0.0.1:19096"
    assert lines["advertised.listeners"].endswith(",SASL_SSL://127.0.0.1:19096")
    assert lines["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert lines["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert lines["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "pw1" not in props  # users live in the cluster metadata (formatted with --add-scram), not in the file
    assert listener.scram_args() == ["--add-scram", "SCRAM-SHA-512=[name=alice,password=pw1]"]
    with pytest.raises(ValueError):
        SaslSslListener(port=1, keystore=tmp_path, users=(("alice", "a,b"),))
    plain = LocalKafka(state_dir=tmp_path, port=19092, controller_port=19093)._server_properties(tmp_path / "data")
    assert "SASL_SSL" not in plain


def test_client_settings_sasl_ssl(tls):
    kafka = KafkaConfig(
        bootstrap_servers="b1:9096,b2:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="alice",
        sasl_password="pw",
        ssl_cafile=tls["ca"],
    )
    settings = kafka_client_settings(kafka)
    context = settings.pop("ssl_context")
    assert settings == {
        "bootstrap_servers": "b1:9096,b2:9096",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "pw",
    }
    assert isinstance(context, ssl.SSLContext) and context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1  # our CA only, not the system's

    creds = faust_credentials(kafka)
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    assert isinstance(creds, faust.SASLCredentials) and "pw" not in repr(creds)
    # What Faust hands its consumer, producers and topic-creating client:
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_username"] == "alice" and auth["sasl_plain_password"] == "pw"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_client_settings_mutual_tls_without_hostname_check_and_sasl_plaintext(tls):
    kafka = KafkaConfig(
        security_protocol="SSL", ssl_certfile=tls["cert"], ssl_keyfile=tls["key"], ssl_check_hostname=False
    )
    settings = kafka_client_settings(kafka)
    assert settings["security_protocol"] == "SSL" and "sasl_mechanism" not in settings
    assert settings["ssl_context"].check_hostname is False and settings["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    assert credentials_to_aiokafka_auth(faust_credentials(kafka))["security_protocol"] == "SSL"

    plain = KafkaConfig(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256", sasl_username="u", sasl_password="p"
    )
    assert "ssl_context" not in kafka_client_settings(plain)
    auth = credentials_to_aiokafka_auth(faust_credentials(plain))
    assert auth["security_protocol"] == "SASL_PLAINTEXT" and auth["sasl_mechanism"] == "SCRAM-SHA-256"


def test_access_failures_are_one_line_without_the_password(tls):
    kafka = KafkaConfig(
        bootstrap_servers="k1:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="alice",
        sasl_password="pw-123",
        ssl_cafile=tls["ca"],
    )
    refused = describe_access_failure(kafka, SaslAuthenticationFailed("invalid credentials"))
    assert refused.startswith("Kafka authentication failed: Kafka at k1:9096 (SASL_SSL, SCRAM-SHA-512, user 'alice')")
    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    verify.verify_message = "unable to get local issuer certificate"
    unknown_ca = describe_access_failure(kafka, verify)
    assert "certificate verify failed: unable to get local issuer certificate" in unknown_ca
    assert "kafka.ssl_cafile" in unknown_ca
    mechanism = describe_access_failure(kafka, UnsupportedSaslMechanismError("x"))
    assert "does not enable SASL mechanism SCRAM-SHA-512" in mechanism
    for line in (refused, unknown_ca, mechanism, describe_access_failure(kafka, ConnectionRefusedError(111, "x"))):
        assert "\n" not in line and "pw-123" not in line


# -- every client goes through kafka_client_settings -------------------------------------------

_CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient", "AIOKafkaClient"}


def _called_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _spreads(node: ast.Call, function: str) -> bool:
    return any(
        kw.arg is None and isinstance(kw.value, ast.Call) and _called_name(kw.value) == function for kw in node.keywords
    )


def _package_calls() -> list[tuple[str, ast.Call]]:
    out = []
    for folder in PACKAGE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            out += [(f"{path.relative_to(ROOT)}:{n.lineno}", n) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    return out


def test_every_kafka_client_in_the_package_is_built_from_kafka_client_settings():
    calls = _package_calls()
    clients = [(where, node) for where, node in calls if _called_name(node) in _CLIENTS]
    assert len(clients) >= 5, "the scan found too few clients: did the layout change?"
    bypass = [where for where, node in clients if not _spreads(node, "kafka_client_settings")]
    assert bypass == [], f"AIOKafka* clients built without **kafka_client_settings(kafka): {bypass}"
    # Nothing else passes connection settings by hand.
    by_hand = [
        where
        for where, node in calls
        if not where.startswith("mailpulse/kafkaclient.py")
        and any(
            kw.arg in ("bootstrap_servers", "security_protocol", "sasl_plain_password", "ssl_context")
            for kw in node.keywords
        )
    ]
    assert by_hand == [], f"Kafka connection settings given by hand (use kafka_client_settings): {by_hand}"


def test_the_faust_app_gets_broker_credentials_from_the_config():
    apps = [(where, node) for where, node in _package_calls() if _called_name(node) == "App"]
    assert apps, "no faust.App(...) found"
    for where, node in apps:
        creds = [kw for kw in node.keywords if kw.arg == "broker_credentials"]
        assert creds and isinstance(creds[0].value, ast.Call) and _called_name(creds[0].value) == "faust_credentials", (
            where
        )
