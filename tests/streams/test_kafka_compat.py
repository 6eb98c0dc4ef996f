"""The pinned consumer override: read_committed isolation and bulk handlers.

(The aborted-transaction proof against the real broker is in test_api_integration.py.)
"""

from __future__ import annotations

import pytest

from mailpulse.config import Config
from mailpulse.streams.kafka_compat import ReadCommittedConsumerThread, ReadCommittedTransport


def test_every_record_topic_of_the_worker_is_handed_over_in_bulk_and_subscribed() -> None:
    from mailpulse.streams.agents import install_agents
    from mailpulse.streams.app import create_app

    s = create_app(Config())
    install_agents(s)
    handlers = s.app.transport.bulk_handlers
    assert set(handlers) == {
        s.events_name,
        s.campaign_partials.get_topic_name(),
        s.contact_partials.get_topic_name(),
        s.campaigns_topic.get_topic_name(),
    }
    # Subscribed through the conductor, so the assignor co-partitions them and acks count.
    assert set(handlers) <= {name for channel in s.app.topics for name in channel.topics}
    assert not s.app.agents  # no Faust stream reads a record


def test_a_bulk_handler_needs_the_read_committed_transport() -> None:
    import faust

    from mailpulse.streams.kafka_compat import register_bulk_handler

    app = faust.App("x", autodiscover=False)

    async def handler(records: list) -> None:
        pass

    with pytest.raises(RuntimeError, match="patch_read_committed"):
        register_bulk_handler(app, app.topic("t"), handler)


def test_the_worker_app_uses_the_read_committed_consumer() -> None:
    from mailpulse.streams.app import create_app

    s = create_app(Config())
    assert isinstance(s.app.transport, ReadCommittedTransport)
    assert s.app.transport.Consumer._new_consumer_thread.__qualname__.startswith("ReadCommittedConsumer")
    assert issubclass(ReadCommittedConsumerThread, __import__("faust.transport.drivers.aiokafka", fromlist=["x"]).AIOKafkaConsumerThread)


async def test_after_a_changelog_batch_fails_the_consumer_commits_nothing_and_crashes() -> None:
    # The producer gave up on a changelog batch (its future holds the error):
    # committing source offsets now would mark events processed whose facts no
    # changelog holds. Faust's commit flushes the producer but never checks results.
    import asyncio

    from aiokafka.errors import MessageSizeTooLargeError
    from faust.types import TP

    from mailpulse.streams.app import create_app

    s = create_app(Config())
    failed: asyncio.Future = asyncio.get_running_loop().create_future()
    failed.set_exception(MessageSizeTooLargeError())
    s.messages._persisted(TP("x-messages-changelog", 3), failed, b"token", 0)

    consumer = s.app.consumer
    assert await consumer._commit({TP(s.events_name, 3): 10}) is False
    assert isinstance(consumer.crash_reason, MessageSizeTooLargeError)
    assert isinstance(s.app.transport.changelog_failure, MessageSizeTooLargeError)
