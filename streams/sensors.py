"""A Faust monitor without per-record bookkeeping.

Faust's ``Monitor`` updates several counters and deques for every message in,
every stream event and every send; that is measurable at this worker's rates
(docs/streams.md, Faust on this stack) and nothing reads it here: the web stats pages
are disabled and the worker's own Prometheus metrics count per batch.
Rebalance, assignment and commit hooks keep Faust's behaviour.
"""

from __future__ import annotations

from typing import Any

from faust.sensors import Monitor

__all__ = ["QuietMonitor"]


class QuietMonitor(Monitor):
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int, valsize: int) -> Any:
        return None

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        return None
