"""The outage filter: one line when lost, a summary every 30 s while lost, one line when back."""

from __future__ import annotations

import logging

import pytest

from mailpulse.kafkalog import KafkaOutageFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup():
    clock = Clock()
    up = {"value": False}
    emitted: list[str] = []
    f = KafkaOutageFilter("127.0.0.1:9", clock=clock, probe=lambda: up["value"], emit=emitted.append)
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handlers = [Capture(), Capture()]  # two handlers: every record decided once
    for h in handlers:
        h.addFilter(f)
    logger = logging.getLogger("aiokafka.conn")
    old = (logger.handlers[:], logger.propagate, logger.level)
    logger.handlers[:] = handlers
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield f, clock, up, emitted, records, logger
    logger.handlers[:], logger.propagate, logger.level = old[0], old[1], old[2]


def storm(logger: logging.Logger, clock: Clock, seconds: int, per_second: int = 65) -> None:
    for _ in range(seconds):
        for i in range(per_second):
            try:
                raise ConnectionRefusedError(111, "Connect call failed")
            except ConnectionRefusedError:
                logger.error('Unable connect to "127.0.0.1:9": [Errno 111] Connect call failed', exc_info=True)
        clock.now += 1


def test_a_storm_becomes_one_line_a_summary_every_30s_and_one_line_when_back(setup):
    f, clock, up, emitted, records, logger = setup
    logger.warning("unrelated warning before the outage")
    storm(logger, clock, 1)
    f.tick()
    lost = [r for r in records if "Kafka connection lost" in r.getMessage()]
    assert len(records) == 2 * 2  # the unrelated line and the "lost" line, once per handler
    assert len(lost) == 2 and lost[0].exc_info is None and "\n" not in lost[0].getMessage()
    assert "127.0.0.1:9" in lost[0].getMessage()
    for _ in range(95):  # 95 s of outage, ticked every second like the thread
        storm(logger, clock, 1)
        f.tick()
    assert len(records) == 4
    summaries = [m for m in emitted if m.startswith("Kafka still unreachable")]
    assert len(summaries) == 3  # at 30, 60 and 90 s
    assert "messages suppressed in the last 30s" in summaries[0]
    # The broker is back: no error for quiet_for seconds and a TCP connection succeeds.
    up["value"] = True
    for _ in range(6):
        clock.now += 1
        f.tick()
    assert emitted[-1].startswith("Kafka connection is back (127.0.0.1:9) after ")
    assert f"{65 * 96 - 1} messages suppressed" in emitted[-1]
    assert len(emitted) == 4
    # Afterwards records pass again, and a new outage is a new "lost" line.
    logger.warning("a later unrelated warning")
    storm(logger, clock, 1)
    assert [r.getMessage().split(" (")[0] for r in records[-4:]] == ["a later unrelated warning"] * 2 + ["Kafka connection lost"] * 2


def test_still_erroring_with_the_port_open_is_not_back(setup):
    f, clock, up, emitted, records, logger = setup
    up["value"] = True
    storm(logger, clock, 10, per_second=5)
    f.tick()
    assert not any(m.startswith("Kafka connection is back") for m in emitted)
    assert f.lost


def test_other_loggers_and_info_lines_are_never_touched(setup):
    f, clock, up, emitted, records, logger = setup
    storm(logger, clock, 1)
    other = logging.getLogger("mailpulse.connectors.runner")
    record = other.makeRecord(other.name, logging.ERROR, __file__, 1, "Kafka error, retrying next poll", None, None)
    assert f.filter(record)
    info = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "Connecting to 127.0.0.1:9", None, None)
    assert f.filter(info)
