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
        for _i in range(per_second):
            try:
                raise ConnectionRefusedError(111, "Connect call failed")
            except ConnectionRefusedError:
                logger.error('Unable connect to "127.0.0.1:9": [Errno 111] Connect call failed', exc_info=True)
        clock.now += 1


def test_a_storm_becomes_one_line_a_summary_every_30s_and_one_line_when_back(setup):
    f, clock, up, emitted, records, logger = setup
    logger.warning("unrelated warning before the outage")
    assert len(records) == 2  # passes, once per handler
    for _ in range(96):  # 96 s of outage at 65 lines a second, ticked every second like the thread
        storm(logger, clock, 1)
        f.tick()
    assert len(records) == 2  # nothing of the storm reached a handler
    assert emitted[0].startswith("Kafka connection lost (127.0.0.1:9): [aiokafka.conn ERROR] Unable connect to")
    assert "\n" not in emitted[0] and "Traceback" not in emitted[0]
    summaries = [m for m in emitted if m.startswith("Kafka still unreachable")]
    assert len(summaries) == 3  # 30, 60 and 90 s after it was declared lost
    assert "messages suppressed in the last 30s" in summaries[0]
    # The broker is back: no error for quiet_for seconds and a TCP connection succeeds.
    up["value"] = True
    for _ in range(6):
        clock.now += 1
        f.tick()
    assert emitted[-1].startswith("Kafka connection is back (127.0.0.1:9) after ")
    assert f"{65 * 96 - 1} messages suppressed" in emitted[-1]
    assert len(emitted) == 5
    # Afterwards records pass again.
    logger.warning("a later unrelated warning")
    assert records[-1].getMessage() == "a later unrelated warning"


def test_a_blip_is_one_line_and_no_outage(setup):
    f, clock, up, emitted, records, logger = setup
    logger.warning("Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError")
    clock.now += 0.2
    logger.warning("Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError")
    for _ in range(6):
        clock.now += 1
        f.tick()
    assert emitted == [
        "[aiokafka.conn WARNING] Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"
        " (and 1 similar messages)"
    ]
    assert not f.lost and f.suspect_at is None
    logger.warning("unrelated")
    assert records[-1].getMessage() == "unrelated"


def test_still_erroring_with_the_port_open_is_not_back(setup):
    f, clock, up, emitted, records, logger = setup
    up["value"] = True
    for _ in range(10):
        storm(logger, clock, 1, per_second=5)
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
