"""A real Apache Kafka broker for development and tests, without Docker.

The broker's classpath is assembled from Maven Central with Maven and cached
outside the repository (``$XDG_CACHE_HOME/mailpulse/kafka-<version>/lib``), so
the second start downloads nothing. One combined broker+controller (KRaft)
runs on 127.0.0.1, sized for a 2-core machine. Its pid, config, data and log
live in a state directory so that ``status`` and ``stop`` work from another
process. How it is run and its pitfalls: see the "Local Kafka" section of the README.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailpulse.errors import MailpulseError

__all__ = [
    "KAFKA_VERSION",
    "LocalKafka",
    "LocalKafkaError",
    "SaslSslListener",
    "broker_answers",
    "default_cache_dir",
    "free_port",
]

KAFKA_VERSION = "4.4.0"
LOG4J2_VERSION = "2.25.3"
READY_TIMEOUT_S = 90.0

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
 <groupId>mailpulse.dev</groupId><artifactId>kafka-broker-classpath</artifactId><version>1</version><packaging>pom</packaging>
 <dependencies>
  <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka}</version></dependency>
  <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>{log4j}</version></dependency>
  <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
  <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
  <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>1.7.36</version></dependency>
 </dependencies>
 <build><pluginManagement><plugins><plugin><groupId>org.apache.maven.plugins</groupId>
  <artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version></plugin></plugins></pluginManagement></build>
</project>
"""

# One partition for the offsets and transaction-state topics (default 50) makes
# the first group join and init_transactions() fast; the small cleaner buffer
# saves ~126 MB of heap.
_SERVER_PROPERTIES = """process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
background.threads=2
log.cleaner.dedupe.buffer.size=2097152
"""

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = INFO
"""


# A SASL_SSL listener beside PLAINTEXT (which the broker itself and the
# readiness check keep using): TLS with a PEM keystore, SCRAM users stored in
# the cluster metadata when the storage is formatted.
_SASL_SSL_PROPERTIES = """listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location={keystore}
listener.name.sasl_ssl.sasl.enabled.mechanisms={mechanism}
listener.name.sasl_ssl.{mechanism_lower}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
"""


@dataclass(frozen=True)
class SaslSslListener:
    """A SASL_SSL listener (SCRAM over TLS) on ``port``, as managed clusters offer."""

    port: int
    #: PEM file holding the broker's unencrypted private key and its certificate chain.
    keystore: Path
    #: SCRAM users created when the storage is formatted: ((name, password), ...).
    users: tuple[tuple[str, str], ...]
    mechanism: str = "SCRAM-SHA-512"

    def __post_init__(self) -> None:
        if self.mechanism not in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ValueError(f"mechanism must be SCRAM-SHA-256 or SCRAM-SHA-512, not {self.mechanism!r}")
        for name, password in self.users:
            # StorageTool's --add-scram syntax: 'SCRAM-SHA-512=[name=alice,password=...]'
            if not name or not password or any(c in name + password for c in ',[]="'):
                raise ValueError('SCRAM user names and passwords must be non-empty and free of , [ ] = and "')

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def scram_args(self) -> list[str]:
        out = []
        for name, password in self.users:
            out += ["--add-scram", f"{self.mechanism}=[name={name},password={password}]"]
        return out


class LocalKafkaError(MailpulseError):
    """The local broker could not be assembled or started; the message says what to do."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mailpulse"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def broker_answers(bootstrap: Any, timeout_s: float = 5.0) -> bool:
    """True when a broker at ``bootstrap`` (a host:port string or a ``KafkaConfig``) answers a metadata request."""
    from mailpulse.kafkaclient import as_kafka_config, kafka_client_settings

    kafka = as_kafka_config(bootstrap)

    async def probe() -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(**kafka_client_settings(kafka), request_timeout_ms=int(timeout_s * 1000))
        try:
            await asyncio.wait_for(admin.start(), timeout_s)
            await asyncio.wait_for(admin.list_topics(), timeout_s)
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    host, _, port = kafka.bootstrap_servers.split(",")[0].rpartition(":")
    if not _port_open(host, int(port)):
        return False
    return asyncio.run(probe())


@dataclass
class LocalKafka:
    """One local KRaft broker whose files live under ``state_dir``."""

    state_dir: Path
    port: int = 9092
    controller_port: int = 9093
    version: str = KAFKA_VERSION
    cache_dir: Path | None = None
    heap_mb: int = 512
    #: Also serve SASL_SSL (SCRAM over TLS) on a second port.
    sasl_ssl: SaslSslListener | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def lib_dir(self) -> Path:
        return (self.cache_dir or default_cache_dir()) / f"kafka-{self.version}" / "lib"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "broker.log"

    @property
    def _pid_file(self) -> Path:
        return self.state_dir / "broker.pid"

    # -- classpath ----------------------------------------------------------

    def ensure_classpath(self) -> Path:
        """Copy the broker's jars from Maven Central into the cache (once)."""
        marker = self.lib_dir / ".complete"
        if marker.exists():
            return self.lib_dir
        _require_tool("mvn", "Maven 3.6+ (Debian/Ubuntu: apt-get install maven)")
        _require_tool("java", "a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)")
        work = self.lib_dir.parent
        work.mkdir(parents=True, exist_ok=True)
        (work / "pom.xml").write_text(_POM.format(kafka=self.version, log4j=LOG4J2_VERSION))
        tmp_lib = work / "lib.partial"
        shutil.rmtree(tmp_lib, ignore_errors=True)
        cmd = [
            "mvn", "-q", "-B", "-f", str(work / "pom.xml"),
            "dependency:copy-dependencies", f"-DoutputDirectory={tmp_lib}", "-DincludeScope=runtime",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise LocalKafkaError(
                f"Maven could not fetch Kafka {self.version} from Maven Central "
                f"(is https://repo.maven.apache.org reachable?):\n" + "\n".join(tail)
            )
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        tmp_lib.rename(self.lib_dir)
        marker.touch()
        return self.lib_dir

    # -- lifecycle ----------------------------------------------------------

    def pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        """Start the broker (if not running) and return its bootstrap address once it serves."""
        if self.is_running() and broker_answers(self.bootstrap):
            return self.bootstrap
        for port in (self.port, self.sasl_ssl.port if self.sasl_ssl else None):
            if port is not None and _port_open("127.0.0.1", port):
                raise LocalKafkaError(
                    f"port {port} is taken by another process: stop it, or choose another "
                    "port (mailpulse dev kafka start --port N)"
                )
        _require_tool("java", "a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)")
        lib = self.ensure_classpath()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data_dir = self.state_dir / "data"
        props = self.state_dir / "server.properties"
        props.write_text(self._server_properties(data_dir))
        log4j = self.state_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        tmp = self.state_dir / "tmp"  # zstd/snappy unpack native libs here
        tmp.mkdir(exist_ok=True)
        classpath = f"{lib}/*"
        if not (data_dir / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=").replace("-", "A")
            fmt = subprocess.run(
                ["java", "-Xmx128m", "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "-t", cluster_id, "-c", str(props), "--standalone", "-g",
                 *(self.sasl_ssl.scram_args() if self.sasl_ssl else [])],
                capture_output=True, text=True,
            )  # fmt: skip
            if fmt.returncode != 0:
                detail = fmt.stderr.strip()[-500:]
                for _, password in self.sasl_ssl.users if self.sasl_ssl else ():
                    detail = detail.replace(password, "***")
                raise LocalKafkaError(f"formatting Kafka storage failed: {detail}")
        log = open(self.log_file, "ab")
        proc = subprocess.Popen(
            [
                "java", f"-Xms{min(256, self.heap_mb)}m", f"-Xmx{self.heap_mb}m",
                "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError",
                f"-Djava.io.tmpdir={tmp}",
                f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.state_dir}",
                "-cp", classpath, "kafka.Kafka", str(props),
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the launching shell; stopped through the pid file
        )  # fmt: skip
        log.close()
        self._pid_file.write_text(str(proc.pid))
        self._wait_ready(proc, timeout_s)
        return self.bootstrap

    def _server_properties(self, data_dir: Path) -> str:
        text = _SERVER_PROPERTIES.format(port=self.port, controller_port=self.controller_port, data_dir=data_dir)
        listener = self.sasl_ssl
        if listener is None:
            return text
        extra = f",SASL_SSL://127.0.0.1:{listener.port}"
        lines = []
        for line in text.splitlines():
            if line.startswith(("listeners=", "advertised.listeners=")):
                line += extra
            elif line.startswith("listener.security.protocol.map="):
                line += ",SASL_SSL:SASL_SSL"
            lines.append(line)
        mechanism = listener.mechanism
        return (
            "\n".join(lines)
            + "\n"
            + _SASL_SSL_PROPERTIES.format(
                keystore=listener.keystore, mechanism=mechanism, mechanism_lower=mechanism.lower()
            )
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        # The client port opens only once the broker has caught up on metadata
        # and been unfenced; one metadata request then proves it serves.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalKafkaError(
                    f"the Kafka broker exited with code {proc.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{self._log_tail()}"
                )
            if _port_open("127.0.0.1", self.port) and broker_answers(self.bootstrap):
                return
            time.sleep(0.3)
        self.stop()
        raise LocalKafkaError(
            f"the Kafka broker did not answer on {self.bootstrap} within {timeout_s:.0f}s; "
            f"last lines of {self.log_file}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM, wait, then SIGKILL. Returns False when nothing was running."""
        pid = self.pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self._pid_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child, so it does not linger as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _require_tool(name: str, what: str) -> None:
    if shutil.which(name) is None:
        raise LocalKafkaError(f"'{name}' is not on PATH: install {what} to run the local Kafka broker")
