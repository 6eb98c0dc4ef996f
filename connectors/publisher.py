"""Exactly-once publishing: a batch and its cursor in one Kafka transaction.

One ``AIOKafkaProducer`` per (source, stream) with a stable
``transactional_id``: a second copy of the same poller fences the first, and
a poller that restarts after a crash aborts whatever its predecessor left open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from mailpulse.kafkaclient import KafkaTarget, kafka_client_settings, start_client

__all__ = ["OutRecord", "Publisher", "transactional_id"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes
    #: None is a tombstone (compacted topics).
    value: bytes | None


def transactional_id(prefix: str, source: str, stream: str, *, role: str = "connector") -> str:
    return f"{prefix}mailpulse-{role}-{source}-{stream}"


@dataclass
class Publisher:
    kafka: KafkaTarget
    transactional_id: str
    _producer: AIOKafkaProducer | None = field(default=None, init=False, repr=False)

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            **kafka_client_settings(self.kafka),
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=8 * 1024 * 1024,
            compression_type=None,
        )
        await start_client(self._producer, self.kafka)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def commit(self, records: list[OutRecord]) -> None:
        """Send every record in one transaction; raises (and aborts) on any failure."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("publisher not started")
        async with producer.transaction():
            send = producer.send
            for r in records:
                await send(r.topic, value=r.value, key=r.key)
