"""How every Kafka client of mailpulse connects: one function builds the settings from ``kafka:``.

``kafka_client_settings(kafka)`` returns the keyword arguments of every
``AIOKafkaProducer``, ``AIOKafkaConsumer`` and ``AIOKafkaAdminClient`` the
project opens (bootstrap servers, security protocol, SASL mechanism and
credentials, TLS context); ``faust_credentials(kafka)`` turns the same settings
into Faust's ``broker_credentials``, which Faust passes to its consumer, its
producers and the client it creates topics with. A test fails if a client is
built anywhere in the package without going through here.

aiokafka reports a refused password or an unknown CA only as "Unable to
bootstrap from [...]" (the cause is in a log line). ``check_kafka`` connects
once the same way, and ``start_client`` runs it when a client fails to start:
either raises ``KafkaAccessError`` with one line saying what failed (servers,
protocol, mechanism and user; never the password).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import ssl
from pathlib import Path
from typing import Any, Literal

from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from pydantic import Field, SecretStr, ValidationInfo, field_validator

from mailpulse.errors import ConfigError, MailpulseError
from mailpulse.sources import Model as _Model

__all__ = [
    "KafkaAccessError",
    "KafkaTarget",
    "as_kafka_config",
    "check_kafka",
    "describe_access_failure",
    "faust_credentials",
    "kafka_client_settings",
    "start_client",
]

# aiokafka logs "Loading SSL CA from ..." at INFO for every client it builds a context for.
logging.getLogger("aiokafka.helpers").setLevel(logging.WARNING)


class KafkaConfig(_Model):
    """The ``kafka:`` section of the config (here, beside the one function that turns it into client settings)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    #: Prepended to every topic and consumer-group name: lets several
    #: deployments (or test runs) share one cluster.
    topic_prefix: str = ""
    #: Replication factor for topics mailpulse creates; None: min(3, brokers).
    replication_factor: int | None = Field(default=None, ge=1)
    #: How every client (pollers, topics create, worker) connects; see docs/kafka-security.md.
    #: Fields are validated in this order, so each check sees the ones above it.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, validate_default=True
    )
    sasl_username: str | None = Field(default=None, validate_default=True)
    #: Normally ``${VAR}``; masked everywhere.
    sasl_password: SecretStr | None = Field(default=None, validate_default=True)
    #: PEM CA bundle that signed the brokers' certificates (default: the system's CAs).
    ssl_cafile: Path | None = None
    #: Client certificate and its unencrypted private key (PEM), for mutual TLS.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = Field(default=None, validate_default=True)
    ssl_check_hostname: bool = True

    @field_validator("bootstrap_servers")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for part in value.split(","):
            host, _, port = part.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9._-]+", value):
            raise ValueError("may hold only letters, digits, '.', '_' and '-'")
        return value

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @field_validator("sasl_mechanism", "sasl_username", "sasl_password")
    @classmethod
    def _sasl(cls, value: Any, info: ValidationInfo) -> Any:
        protocol = info.data.get("security_protocol")
        if protocol is None:
            return value  # security_protocol itself is invalid: reported there
        if value is None and protocol.startswith("SASL_"):
            what = {
                "sasl_mechanism": "a mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
                "sasl_username": "the SASL user name",
                "sasl_password": "the password, normally as ${ENV_VAR}",
            }[info.field_name or "sasl_mechanism"]
            raise ValueError(f"required with security_protocol {protocol}: give {what}")
        if value is not None and not protocol.startswith("SASL_"):
            raise ValueError(f"only used with security_protocol SASL_SSL or SASL_PLAINTEXT (it is {protocol})")
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        if isinstance(value, SecretStr) and not value.get_secret_value():
            raise ValueError("must not be empty (is the environment variable set?)")
        return value

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _tls_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        protocol = info.data.get("security_protocol")
        name = info.field_name
        if name == "ssl_keyfile" and "ssl_certfile" in info.data:
            certfile = info.data["ssl_certfile"]
            if certfile is not None and value is None:
                raise ValueError("required with ssl_certfile: mutual TLS needs the certificate's private key")
            if certfile is None and value is not None:
                raise ValueError("needs ssl_certfile too (mutual TLS: the client certificate)")
        if value is None:
            return None
        if protocol is not None and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(f"only used with security_protocol SSL or SASL_SSL (it is {protocol})")
        _readable_file(value)
        if name == "ssl_cafile":
            try:
                ssl.create_default_context(cafile=str(value))
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(f"{value} holds no usable PEM CA certificate ({_ssl_reason(exc)})") from None
        if name == "ssl_keyfile" and info.data.get("ssl_certfile") is not None:
            certfile = info.data["ssl_certfile"]
            try:
                # An encrypted key would make OpenSSL prompt on the terminal: answer with no password.
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(str(certfile), str(value), password=lambda: b"")
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(
                    f"cannot use {value} with ssl_certfile {certfile}: not an unencrypted PEM private key "
                    f"matching that certificate ({_ssl_reason(exc)})"
                ) from None
        return value


def _readable_file(path: Path) -> None:
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path} is not readable by this user")


def _ssl_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc).replace("\n", " ")


#: A ``kafka:`` config, or a bare bootstrap string (PLAINTEXT: dev brokers and tests).
KafkaTarget = KafkaConfig | str


_BOOTSTRAP_ENV = "MAILPULSE_KAFKA_BOOTSTRAP"  # mailpulse.config.BOOTSTRAP_ENV (config imports this module)


class KafkaAccessError(MailpulseError):
    """Kafka could not be reached, or refused the TLS handshake or the credentials. One line.

    Exit code 2 when the config is what to fix (credentials, TLS, the protocol of the
    listener), 1 when the brokers are down or unreachable (the same config may work later).
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _ClosedOnFirstRequest(KafkaError):
    """Connected, but the broker hung up on the first request (e.g. no SASL where the listener wants it)."""


def as_kafka_config(target: KafkaTarget) -> KafkaConfig:
    return target if isinstance(target, KafkaConfig) else KafkaConfig(bootstrap_servers=target)


def _ssl_context(kafka: KafkaConfig) -> ssl.SSLContext | None:
    if not kafka.uses_ssl:
        return None
    from aiokafka.helpers import create_ssl_context

    try:
        context = create_ssl_context(
            cafile=kafka.ssl_cafile,
            certfile=kafka.ssl_certfile,
            keyfile=kafka.ssl_keyfile,
            password=lambda: b"",  # never prompt on a terminal for an encrypted key
        )
    except (ssl.SSLError, OSError) as exc:
        # The files were checked when the config was loaded; they changed since.
        raise ConfigError(f"kafka.ssl_*: cannot build the TLS context: {exc}") from None
    context.check_hostname = kafka.ssl_check_hostname
    return context


def kafka_client_settings(target: KafkaTarget) -> dict[str, Any]:
    """aiokafka keyword arguments for any client: ``AIOKafkaProducer(**kafka_client_settings(kafka), ...)``."""
    kafka = as_kafka_config(target)
    settings: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    context = _ssl_context(kafka)
    if context is not None:
        settings["ssl_context"] = context
    if kafka.uses_sasl:
        assert kafka.sasl_password is not None  # validated with the config
        settings["sasl_mechanism"] = kafka.sasl_mechanism
        settings["sasl_plain_username"] = kafka.sasl_username
        settings["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return settings


def faust_credentials(target: KafkaTarget) -> Any:
    """Faust's ``broker_credentials`` for the same settings (None for PLAINTEXT).

    faust-streaming 0.15.3 (transport/drivers/aiokafka.py,
    ``credentials_to_aiokafka_auth``) turns these into the same aiokafka
    arguments for its consumer, its producers and its topic-creating client.
    """
    import faust

    settings = kafka_client_settings(target)
    protocol = settings["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(settings["ssl_context"])
    # SASL_SSL when ssl_context is given, SASL_PLAINTEXT otherwise.
    return faust.SASLCredentials(
        username=settings["sasl_plain_username"],
        password=settings["sasl_plain_password"],
        ssl_context=settings.get("ssl_context"),
        mechanism=settings["sasl_mechanism"],
    )


# ---------------------------------------------------------------------------
# Failures, as one line


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


def _who(kafka: KafkaConfig) -> str:
    if kafka.uses_sasl:
        return f"{kafka.security_protocol}, {kafka.sasl_mechanism}, user {kafka.sasl_username!r}"
    return kafka.security_protocol


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def describe_access_failure(kafka: KafkaConfig, exc: BaseException) -> str:
    """One line saying why connecting to ``kafka`` failed with ``exc``; never the password."""
    servers = kafka.bootstrap_servers
    where = f"Kafka at {servers} ({_who(kafka)})"
    if isinstance(exc, (SaslAuthenticationFailed, AuthenticationFailedError, IllegalSaslStateError)):
        detail = _one_line(exc.args[0]) if exc.args and exc.args[0] else type(exc).__name__
        return (
            f"Kafka authentication failed: {where} refused the credentials ({detail}); "
            "check kafka.sasl_username, kafka.sasl_password and kafka.sasl_mechanism"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (
            f"Kafka authentication refused: {where} does not enable SASL mechanism {kafka.sasl_mechanism} "
            "on that listener; set kafka.sasl_mechanism to one it enables"
        )
    if isinstance(exc, _ClosedOnFirstRequest):
        hint = (
            "the listener probably expects SASL (security_protocol SASL_SSL or SASL_PLAINTEXT)"
            if not kafka.uses_sasl
            else "is security_protocol the one of that listener?"
        )
        return f"Kafka refused the connection: {where} closed it on the first request; {hint}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = _one_line(exc.verify_message or exc.reason or exc)
        if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
            hint = (
                "connect with a name the certificate lists (bootstrap_servers), "
                "or turn off kafka.ssl_check_hostname (not recommended)"
            )
        elif kafka.ssl_cafile is None:
            hint = "set kafka.ssl_cafile to the CA that signed the brokers' certificates"
        else:
            hint = f"kafka.ssl_cafile ({kafka.ssl_cafile}) is not the CA that signed the brokers' certificates"
        return f"Kafka TLS failed: the certificate of {where} could not be verified (certificate verify failed: {reason}); {hint}"
    if isinstance(exc, ssl.SSLError):
        reason = _one_line(exc.reason or exc)
        return (
            f"Kafka TLS handshake failed with {where} ({reason}): is it a TLS listener, "
            "and does it ask for a client certificate (kafka.ssl_certfile, kafka.ssl_keyfile)?"
        )
    if isinstance(exc, asyncio.TimeoutError):
        return (
            f"{where} did not answer in time: is security_protocol the one of that listener, and is the host reachable?"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot reach {where}: connection refused (is the broker running? check kafka.bootstrap_servers or {_BOOTSTRAP_ENV})"
    if isinstance(exc, socket.gaierror):
        return f"cannot reach {where}: cannot resolve the host name ({_one_line(exc.strerror or exc)})"
    if isinstance(exc, OSError) and not isinstance(
        exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
    ):
        return f"cannot reach {where}: {_one_line(exc.strerror or exc) or type(exc).__name__}"
    if isinstance(exc, (OSError, KafkaConnectionError, asyncio.IncompleteReadError)):
        # A TLS client at a plain listener, or a plain client at a TLS one: the peer hangs up.
        hint = (
            "is it a TLS listener? (security_protocol SSL or SASL_SSL expects one)"
            if kafka.uses_ssl
            else "the listener probably expects TLS (security_protocol SSL or SASL_SSL)"
        )
        reason = _one_line(getattr(exc, "strerror", None) or exc) or type(exc).__name__
        return f"cannot connect to {where}: {reason}; {hint}"
    return f"cannot connect to {where}: {type(exc).__name__}: {_one_line(exc)}"


#: The failures that say most about what to fix come first.
_RANK = (
    (SaslAuthenticationFailed, AuthenticationFailedError, IllegalSaslStateError, UnsupportedSaslMechanismError),
    (ssl.SSLError,),
    (_ClosedOnFirstRequest, asyncio.TimeoutError),
)


def _rank(exc: BaseException) -> int:
    for i, kinds in enumerate(_RANK):
        if isinstance(exc, kinds):
            return i
    return len(_RANK)


async def check_kafka(target: KafkaTarget, timeout_s: float = 20.0) -> None:
    """Connect to the bootstrap servers once (TCP, TLS handshake, SASL); raise ``KafkaAccessError`` if none accepts."""
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    kafka = as_kafka_config(target)
    settings = kafka_client_settings(kafka)
    settings.pop("bootstrap_servers")
    failures: list[BaseException] = []
    for host, port in _hosts(kafka.bootstrap_servers):
        try:
            conn = await asyncio.wait_for(
                create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **settings), timeout_s + 1
            )
        except (TimeoutError, OSError, KafkaError, asyncio.IncompleteReadError, ValueError) as exc:
            failures.append(exc)
            continue
        try:
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
        except (TimeoutError, KafkaError, OSError):
            failures.append(_ClosedOnFirstRequest())
            continue
        finally:
            conn.close()
        return
    worst = min(failures, key=_rank)
    config_problem = _rank(worst) < 2 or isinstance(worst, _ClosedOnFirstRequest)
    raise KafkaAccessError(describe_access_failure(kafka, worst), exit_code=2 if config_problem else 1)


async def start_client(client: Any, target: KafkaTarget) -> None:
    """``await client.start()``; when it cannot bootstrap, say why in one line (``KafkaAccessError``)."""
    try:
        await client.start()
    except (KafkaConnectionError, ssl.SSLError) as exc:
        close = getattr(client, "stop", None) or getattr(client, "close", None)
        try:
            await close()
        except Exception:  # noqa: BLE001 - a half-started client; the start failure is what matters
            pass
        try:
            await check_kafka(target)
        except KafkaAccessError as diagnosed:
            raise diagnosed from None
        raise exc
