"""The one door to Faust's internals: its start-up check, read_committed isolation and bulk agents.

(The aborted-transaction proof against the real broker is in test_api_integration.py.)
"""

from __future__ import annotations

import pytest

from mailpulse.config import Config
from mailpulse.streams.faust_internals import ReadCommittedConsumerThread, ReadCommittedTransport


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
        s.contacts_topic.get_topic_name(),
    }
    # Subscribed through the conductor, so the assignor co-partitions them and acks count.
    assert set(handlers) <= {name for channel in s.app.topics for name in channel.topics}
    assert not s.app.agents  # no Faust stream reads a record


def test_a_bulk_handler_needs_the_read_committed_transport() -> None:
    import faust

    from mailpulse.streams.faust_internals import register_bulk_handler

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
    assert issubclass(
        ReadCommittedConsumerThread,
        __import__("faust.transport.drivers.aiokafka", fromlist=["x"]).AIOKafkaConsumerThread,
    )


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


# ---------------------------------------------------------------------------
# The start-up check


def test_every_internal_the_worker_and_the_connectors_rely_on_is_present_in_the_installed_versions() -> None:
    from mailpulse.streams.faust_internals import check_internals, missing_internals

    assert missing_internals("worker") == []
    assert missing_internals("connect") == []
    check_internals("worker")
    check_internals("connect")


def _one_line_error(command: str) -> str:
    from mailpulse.streams.faust_internals import IncompatibleInternals, check_internals

    with pytest.raises(IncompatibleInternals) as info:
        check_internals(command)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("needs faust-streaming 0.15.x and aiokafka 0.14.x (found faust-streaming 0.15.")
    return message


def test_a_faust_method_renamed_fails_the_check_naming_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from faust.transport.consumer import Consumer

    monkeypatch.setattr(Consumer, "_wait_for_next_records", Consumer._wait_next_records, raising=False)
    monkeypatch.delattr(Consumer, "_wait_next_records")
    message = _one_line_error("worker")
    assert message.endswith("missing faust.transport.drivers.aiokafka.Consumer._wait_next_records(self, timeout)")


def test_a_faust_method_with_other_parameters_fails_the_check_naming_both_signatures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from faust.transport.consumer import Consumer

    monkeypatch.setattr(Consumer, "_add_gap", lambda self, tp, start, stop: None)
    assert _one_line_error("worker").endswith(
        "missing faust.transport.drivers.aiokafka.Consumer._add_gap(self, tp, offset_from, offset_to) "
        "(found (self, tp, start, stop))"
    )


def test_an_attribute_faust_no_longer_assigns_in_init_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from faust.transport.consumer import Consumer

    original = Consumer.__init__

    def init_without_read_offset(self: object, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # stands for an __init__ that names no _read_offset

    monkeypatch.setattr(Consumer, "__init__", init_without_read_offset)
    assert "Consumer._read_offset" in _one_line_error("worker")


def test_the_connectors_check_only_what_they_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiokafka.client import AIOKafkaClient
    from faust.transport.consumer import Consumer

    from mailpulse.streams.faust_internals import missing_internals

    monkeypatch.delattr(Consumer, "_add_gap")
    assert missing_internals("connect") == []
    monkeypatch.delattr(AIOKafkaClient, "fetch_all_metadata")
    assert _one_line_error("connect").endswith("missing aiokafka.client.AIOKafkaClient.fetch_all_metadata(self)")


@pytest.mark.parametrize("argv", [["worker"], ["connect"]])
def test_a_command_on_unsupported_internals_exits_2_with_one_line_and_no_traceback(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiokafka import AIOKafkaConsumer

    from mailpulse.cli import main

    original = AIOKafkaConsumer.__init__

    def init_without_client(self: object, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # stands for an __init__ that names no _client

    monkeypatch.setattr(AIOKafkaConsumer, "__init__", init_without_client)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"mailpulse {argv[0]}: needs faust-streaming 0.15.x and aiokafka 0.14.x")
    assert "aiokafka.AIOKafkaConsumer._client" in err[0]


def test_a_bulk_agent_registers_its_handler_for_the_topic_and_returns_it_unchanged() -> None:
    import faust

    from mailpulse.streams.faust_internals import bulk_agent, patch_read_committed

    app = faust.App("bulk-agent-test", autodiscover=False)
    patch_read_committed(app)
    topic = app.topic("in")

    @bulk_agent(app, topic)
    async def handler(records: list) -> None:
        pass

    assert app.transport.bulk_handlers == {"in": handler}
    assert topic in app.topics
