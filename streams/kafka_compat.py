"""Make Faust's stream consumer read committed records only.

faust-streaming 0.15.3 creates its worker consumer with
``isolation_level="read_uncommitted"`` unless ``processing_guarantee`` is
``exactly_once`` (``faust/transport/drivers/aiokafka.py``,
``AIOKafkaConsumerThread._create_worker_consumer``), and has no setting to
change it. The connectors publish in Kafka transactions and a connector killed
mid-batch leaves aborted records behind, which a worker must never count.

The override below lets Faust build its consumer as usual and then flips the
one attribute aiokafka 0.14 reads when it starts its fetcher
(``AIOKafkaConsumer._isolation_level``, passed to ``Fetcher`` in ``start()``).
It is pinned: on other versions it refuses to run rather than silently
reading aborted records. ``tests/streams/test_kafka_compat.py`` proves it with
an aborted transaction against the real broker.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["ReadCommittedTransport", "patch_read_committed"]

#: Versions the override was read against and is tested with.
_FAUST_VERSIONS = ("0.15.",)
_AIOKAFKA_VERSIONS = ("0.14.",)


def _check_versions() -> None:
    if not faust.__version__.startswith(_FAUST_VERSIONS) or not aiokafka.__version__.startswith(_AIOKAFKA_VERSIONS):
        raise RuntimeError(
            f"streams.kafka_compat was written for faust-streaming 0.15 and aiokafka 0.14 "
            f"(found {faust.__version__} and {aiokafka.__version__}): re-read "
            "AIOKafkaConsumerThread._create_worker_consumer before upgrading"
        )


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        if getattr(consumer, "_isolation_level", None) not in ("read_uncommitted", "read_committed"):
            raise RuntimeError("aiokafka consumer has no _isolation_level: kafka_compat needs updating")
        consumer._isolation_level = "read_committed"
        return consumer


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = ReadCommittedConsumer


def patch_read_committed(app: faust.App) -> None:
    """Use the read-committed transport for ``app``: call right after creating it, before any topic."""
    _check_versions()
    # Same construction as faust.App._new_transport, with our class.
    app.transport = ReadCommittedTransport(app.conf.broker_consumer, app)
