"""Per-partition progress of stage 1, for on-call: is every owned events partition being read?

A worker can be up, ready and error-free while one partition makes no
progress (a stall of that kind was found in Faust's per-record path, see
docs/streams.md). The read offset and the lag per partition make it visible;
the alert rule ``MailpulseWorkerPartitionStalled`` fires when a partition has
a lag and its read offset has not moved for 10 minutes.
"""

from __future__ import annotations

from typing import Any

from mailpulse.streams.app import Streams
from mailpulse.streams.faust_internals import gauge_label_values, read_offset

__all__ = ["install_progress", "record_progress"]

#: Seconds between two samples.
INTERVAL = 5.0


def record_progress(s: Streams) -> None:
    """Set the read-offset and lag gauges of every owned events partition; drop the others."""
    consumer = s.app.consumer
    m = s.metrics
    owned: set[str] = set()
    for tp in consumer.assignment():
        if tp.topic != s.events_name:
            continue
        label = str(tp.partition)
        owned.add(label)
        read = read_offset(consumer, tp)
        highwater = consumer.highwater(tp)
        if read is not None:
            m.read_offset.labels(label).set(read)
        if highwater is not None:
            m.lag.labels(label).set(max(0, highwater - (read + 1 if read is not None else 0)))
    for gauge in (m.read_offset, m.lag):
        for (label,) in gauge_label_values(gauge):
            if label not in owned:
                gauge.remove(label)


def install_progress(s: Streams) -> None:
    @s.app.timer(INTERVAL)
    async def progress() -> Any:
        if s.views_ready:
            record_progress(s)
