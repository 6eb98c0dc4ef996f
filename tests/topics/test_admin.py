"""``topics create`` against the real broker: creation, idempotence, drift."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from mailpulse.topics.admin import ensure_topics
from mailpulse.topics.contracts import DLQ, EVENTS, TOPICS, topic_name


async def _describe(bootstrap: str, name: str) -> tuple[int, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (meta,) = await admin.describe_topics([name])
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        configs = {e[0]: e[1] for e in response.resources[0][4]}
        return len(meta["partitions"]), configs
    finally:
        await admin.close()


async def test_create_makes_every_contract_topic_with_its_partitions_and_configs(kafka, unique_prefix):
    report = await ensure_topics(kafka.bootstrap, prefix=unique_prefix, replication_factor=1)

    assert sorted(report.created) == sorted(topic_name(s, unique_prefix) for s in TOPICS)
    assert report.drift == []
    for spec in TOPICS:
        partitions, configs = await _describe(kafka.bootstrap, topic_name(spec, unique_prefix))
        assert partitions == spec.partitions, spec.name
        for key, value in spec.configs().items():
            assert configs[key] == value, (spec.name, key)


async def test_create_twice_creates_nothing_and_reports_no_drift(kafka, unique_prefix):
    await ensure_topics(kafka.bootstrap, prefix=unique_prefix, replication_factor=1)
    again = await ensure_topics(kafka.bootstrap, prefix=unique_prefix, replication_factor=1)

    assert again.created == []
    assert sorted(again.existing) == sorted(topic_name(s, unique_prefix) for s in TOPICS)
    assert again.drift == []


async def test_drift_in_partitions_and_cleanup_policy_is_reported_not_changed(kafka, unique_prefix):
    events = topic_name(EVENTS, unique_prefix)
    dlq = topic_name(DLQ, unique_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(events, num_partitions=3, replication_factor=1),
                NewTopic(dlq, num_partitions=1, replication_factor=1, topic_configs={"cleanup.policy": "compact"}),
            ]
        )
    finally:
        await admin.close()

    report = await ensure_topics(kafka.bootstrap, prefix=unique_prefix, replication_factor=1)

    found = {(d.topic, d.setting): (d.expected, d.actual) for d in report.drift}
    assert found[(events, "partitions")] == (str(EVENTS.partitions), "3")
    assert found[(dlq, "cleanup.policy")] == ("delete", "compact")
    assert found[(dlq, "retention.ms")][0] == str(DLQ.retention_ms)
    assert events not in report.created and dlq not in report.created
    assert (await _describe(kafka.bootstrap, events))[0] == 3  # reported, never "fixed"
    assert any(line.startswith("DRIFT") and "partitions is 3" in line for line in report.lines())
