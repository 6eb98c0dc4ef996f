"""During a Kafka outage, a few log lines instead of dozens a second.

aiokafka and Faust log every failed connection, metadata refresh, heartbeat
and fetch: 60-70 ERROR/WARNING lines a second while a broker is down.
``KafkaOutageFilter`` turns that into:

- one WARNING when the connection is lost: connection errors for ``grace``
  seconds (3) in a row, ``Kafka connection lost (BOOTSTRAP): <first error>``
  (a shorter blip, such as a coordinator not yet elected at start, is one
  line: its first error and how many similar ones followed);
- one WARNING every ``summary_every`` seconds (30) while it stays lost:
  ``Kafka still unreachable (BOOTSTRAP) for 95s: 1843 messages suppressed``;
- one WARNING when it is back: no connection error for ``quiet_for`` seconds
  and a TCP connection to a bootstrap server succeeds.

From the first connection error on, every WARNING-or-worse record of the ``aiokafka``, ``faust`` and
``mode`` loggers (and their children) is counted and dropped. The filter is
installed on the root logger's handlers, so it sees the records of every
child logger (a logger's own filters apply only to records logged on that
very logger); a record that passes several handlers is decided once.
Summaries come from a daemon thread (``tick``), so they appear even when the
libraries go quiet.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable

__all__ = ["KafkaOutageFilter", "install_outage_filter", "LOGGERS"]

#: Loggers whose records are summarised during an outage.
LOGGERS = ("aiokafka", "faust", "mode")
_TROUBLE = re.compile(
    r"(?i)connect|bootstrap|NodeNotReady|metadata|coordinator|timed? ?out|broker|heartbeat|errno|unreachable|"
    r"KafkaError|not available"
)
_TROUBLE_EXC = (
    "KafkaConnectionError",
    "NodeNotReadyError",
    "RequestTimedOutError",
    "KafkaTimeoutError",
    "GroupCoordinatorNotAvailableError",
    "CoordinatorNotAvailableError",
    "ConnectionError",
    "ConnectionRefusedError",
    "OSError",
    "TimeoutError",
)
_DECIDED = "_mailpulse_outage_decision"
log = logging.getLogger("mailpulse.kafka")


def _tcp_probe(bootstrap: str, timeout_s: float = 1.0) -> bool:
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def _one_line(record: logging.LogRecord) -> str:
    """The record's message, first line, short; its logger and level in front; no traceback."""
    try:
        text = record.getMessage()
    except Exception:
        text = str(record.msg)
    text = (text.splitlines() or [""])[0][:200]
    return f"[{record.name} {record.levelname}] {text}"


class KafkaOutageFilter(logging.Filter):
    def __init__(
        self,
        bootstrap: str,
        *,
        summary_every: float = 30.0,
        quiet_for: float = 5.0,
        grace: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        probe: Callable[[], bool] | None = None,
        emit: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.bootstrap = bootstrap
        self.summary_every = summary_every
        self.quiet_for = quiet_for
        self.clock = clock
        self.probe = probe or (lambda: _tcp_probe(bootstrap))
        self.emit = emit or (lambda message: log.warning("%s", message))
        self.grace = grace
        self.lost_at: float | None = None
        self.suspect_at: float | None = None
        self.first = ""
        self.last_trouble = 0.0
        self.last_summary = 0.0
        self.suppressed = 0
        self.suppressed_total = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def lost(self) -> bool:
        return self.lost_at is not None

    @staticmethod
    def _relevant(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and record.name.split(".")[0] in LOGGERS

    @staticmethod
    def _is_trouble(record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ in _TROUBLE_EXC:
            return True
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            text = str(record.msg)
        return bool(_TROUBLE.search(text))

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, _DECIDED, None)
        if decided is not None:
            return decided
        decision = self._decide(record)
        setattr(record, _DECIDED, decision)
        return decision

    def _decide(self, record: logging.LogRecord) -> bool:
        if not self._relevant(record):
            return True
        with self._lock:
            now = self.clock()
            trouble = self._is_trouble(record)
            if self.suspect_at is None and self.lost_at is None:
                if not trouble:
                    return True
                # Maybe a blip (a coordinator not yet elected at start): held back until it lasts.
                self.suspect_at = self.last_trouble = now
                self.suppressed = self.suppressed_total = 0
                self.first = _one_line(record)
                return False
            if trouble:
                self.last_trouble = now
            self.suppressed += 1
            self.suppressed_total += 1
            return False

    def tick(self) -> None:
        """Declare the outage, emit the periodic summary, or the line saying the connection is back."""
        with self._lock:
            if self.suspect_at is None and self.lost_at is None:
                return
            now = self.clock()
            quiet = now - self.last_trouble >= self.quiet_for
            lost_at = self.lost_at
        back = quiet and lost_at is not None and self.probe()
        message = None
        with self._lock:
            if self.suspect_at is not None:
                if self.last_trouble - self.suspect_at >= self.grace:
                    message = (
                        f"Kafka connection lost ({self.bootstrap}): {self.first}; "
                        f"further Kafka errors are summarised every {self.summary_every:.0f}s"
                    )
                    self.lost_at = self.suspect_at
                    self.suspect_at = None
                    self.last_summary = now
                    self.suppressed = 0
                elif now - self.last_trouble >= self.grace:  # a blip: its first line, and how many followed it
                    more = f" (and {self.suppressed} similar messages)" if self.suppressed else ""
                    message = f"{self.first}{more}"
                    self.suspect_at = None
            elif self.lost_at is not None:
                if back:
                    message = (
                        f"Kafka connection is back ({self.bootstrap}) after {now - self.lost_at:.0f}s; "
                        f"{self.suppressed_total} messages suppressed"
                    )
                    self.lost_at = None
                elif now - self.last_summary >= self.summary_every:
                    message = (
                        f"Kafka still unreachable ({self.bootstrap}) for {now - self.lost_at:.0f}s: "
                        f"{self.suppressed} messages suppressed in the last {now - self.last_summary:.0f}s"
                    )
                    self.last_summary = now
                    self.suppressed = 0
        if message:
            self.emit(message)

    def run(self, interval: float = 1.0) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception:  # pragma: no cover - never let the monitor die loudly
                    pass

        thread = threading.Thread(target=loop, name="kafka-outage-log", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()


def install_outage_filter(bootstrap: str, *, summary_every: float = 30.0) -> KafkaOutageFilter:
    """Install on every handler of the root logger and start the summary thread."""
    f = KafkaOutageFilter(bootstrap, summary_every=summary_every)
    root = logging.getLogger()
    for handler in root.handlers:
        handler.addFilter(f)
    f.run()
    return f
