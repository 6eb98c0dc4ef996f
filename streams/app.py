"""The Faust app of a worker, built from the one typed ``Config``.

Topology (the message-state design: one changelog write per changed message; see docs/streams.md)::

    mailpulse.events.v1 (key {source}:{message_id}, 8 partitions)
      -> stage 1 agent: merge facts into the message table (changelogged, one
         write per changed message per batch); keep per-partition partial
         aggregates in memory (PartitionView); every publish_interval publish
         changed partials, as absolute values, to
    {app_id}.campaign-partials / {app_id}.contact-partials (key = aggregate key)
      -> stage 2 agents: keep each key's latest partial per source partition
         (campaign / contact tables, changelogged) + campaign metadata from
         mailpulse.campaigns.v1; publish changed answers to the stats topics.

Every name (app id = consumer group, changelogs, internal topics) carries
``kafka.topic_prefix``, so deployments and test runs sharing a cluster never
see each other's state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import faust

from mailpulse.config import Config
from mailpulse.kafkaclient import faust_credentials
from mailpulse.streams.aggregates import PartitionView
from mailpulse.streams.faust_internals import patch_read_committed, set_bulk_restorer, use_rocksdb_options
from mailpulse.streams.mailbox import MailboxClassifier
from mailpulse.streams.metrics import WorkerMetrics
from mailpulse.streams.restore import Restorer
from mailpulse.streams.rocksdb_memory import MemoryBudget
from mailpulse.streams.rollups import Rollup
from mailpulse.streams.statemetrics import Freshness, StateCollector
from mailpulse.streams.tables import PartitionStore
from mailpulse.topics.contracts import CAMPAIGN_STATS, CAMPAIGNS, CONTACT_STATS, CONTACTS, DLQ, EVENTS, topic_name

__all__ = ["Streams", "app_id", "create_app", "ensure_internal_topics"]

MIB = 1024 * 1024


def app_id(config: Config) -> str:
    return f"{config.kafka.topic_prefix}mailpulse-streams"


@dataclass
class Streams:
    """Everything the agents and views share: the app, its tables and topics, and in-memory views."""

    config: Config
    app: faust.App
    metrics: WorkerMetrics
    events_topic: Any
    campaigns_topic: Any
    campaign_partials: Any
    contact_partials: Any
    #: Stage 2 of campaigns reads partials and metadata in one agent: same key, same partition.
    campaign_inputs: Any
    #: Stage 2 of contacts likewise joins mailpulse.contacts.v1 (the contacts' addresses).
    contact_inputs: Any
    contacts_topic: Any
    messages: PartitionStore
    campaign_table: PartitionStore
    contact_table: PartitionStore
    events_name: str
    dlq_name: str
    campaign_stats_name: str
    contact_stats_name: str
    #: Stage-1 views by events partition.
    views: dict[int, PartitionView] = field(default_factory=dict)
    #: Stage-2 keys whose answer changed since the last publication: key -> (partition, its decoded
    #: value, or None to read it from the table). Holding the value spares a table read and a decode.
    dirty_campaigns: dict[bytes, tuple[int, Any]] = field(default_factory=dict)
    dirty_contacts: dict[bytes, tuple[int, Any]] = field(default_factory=dict)
    #: Owned stage-2 partitions whose every key's answer is still to be published again after an
    #: assignment (a crashed owner may have died before publishing its last changes): partition ->
    #: the key to go on from. publish_stats walks the table from there a slice at a time, so no
    #: set of all the owned keys is ever held (it would grow with the contacts).
    republish_campaigns: dict[int, bytes] = field(default_factory=dict)
    republish_contacts: dict[int, bytes] = field(default_factory=dict)
    #: Set once the first assignment has recovered and views are built.
    views_ready: bool = False
    #: Counts revocations: work that yields to the event loop checks it has not changed meanwhile.
    generation: int = 0
    #: Stage-2 totals by group (mailpulse.streams.rollups), per owned stage-2 partition.
    campaign_rollups: dict[int, Rollup] = field(default_factory=dict)
    contact_rollups: dict[int, Rollup] = field(default_factory=dict)
    #: Owned campaigns' latest event time, per stage-2 partition: the exported top N.
    campaign_last_at: dict[int, dict[bytes, int]] = field(default_factory=dict)
    classifier: MailboxClassifier = field(default_factory=MailboxClassifier)
    freshness: Freshness = field(default_factory=Freshness)
    #: Held by stage 1 for a whole batch, and by sealing while it reads and deletes message states.
    stage1_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: The one RocksDB memory budget of the tables and the contact spills.
    memory: MemoryBudget | None = None

    @property
    def tables(self) -> dict[str, Any]:
        return {
            "messages": self.messages.table,
            "campaigns": self.campaign_table.table,
            "contacts": self.contact_table.table,
        }

    @property
    def ready(self) -> bool:
        app = self.app
        return (
            self.views_ready
            and not app.rebalancing
            and not getattr(app, "in_recovery", False)
            and app.tables.recovery.completed.is_set()
        )


def _raw_table(app: faust.App, name: str, help_: str, memory: MemoryBudget) -> Any:
    table = app.Table(
        name,
        # bytes key and value types make Faust use the "raw" codec for the
        # changelog too (tables/base.py _serializer_from_type); a schema alone
        # leaves recovery decoding JSON.
        key_type=bytes,
        value_type=bytes,
        partitions=EVENTS.partitions,
        help=help_,
    )
    # Faust would open every partition with its own 2 GiB block cache and 64 MiB write buffers.
    use_rocksdb_options(table, memory.options)
    return table


def create_app(config: Config) -> Streams:
    """Build the app, its topics and tables (agents and views are added by ``build_worker``)."""
    w = config.worker
    prefix = config.kafka.topic_prefix
    host = w.advertised_host or ("127.0.0.1" if w.web_host in ("0.0.0.0", "::") else w.web_host)
    app = faust.App(
        app_id(config),
        broker=[f"kafka://{h.strip()}" for h in config.kafka.bootstrap_servers.split(",")],
        # TLS and SASL of kafka: for Faust's consumer, producers and topic creation.
        broker_credentials=faust_credentials(config.kafka),
        store="rocksdb://",
        datadir=str(w.data_dir),
        autodiscover=False,
        processing_guarantee="at_least_once",
        topic_partitions=EVENTS.partitions,
        topic_replication_factor=config.kafka.replication_factor or 1,
        topic_allow_declare=True,
        web_enabled=True,
        web_bind=w.web_host,
        web_port=w.web_port,
        canonical_url=f"http://{host}:{w.web_port}",
        # Contact data (emails) is not for anyone who can reach the port: only the query API is served.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        # Throughput (docs/streams.md, Faust on this stack): big polls and fetches; commits by interval.
        broker_max_poll_records=w.batch_size,
        # Records fetched wait in aiokafka's buffers until the agents take them, up to this much per
        # assigned partition (~26 for one worker, all topics): at the scale volume 16 MiB left ~300 MB
        # of fetched data in memory; 8 MiB kept the throughput on the 286k bench set, 4 MiB cost ~20%.
        consumer_max_fetch_size=w.fetch_partition_mb * MIB,
        broker_commit_every=100_000,
        broker_commit_interval=2.0,
        producer_linger=0.05,
        producer_max_batch_size=MIB,
        broker_session_timeout=w.session_timeout.total_seconds(),
        broker_heartbeat_interval=w.heartbeat_interval.total_seconds(),
        broker_rebalance_timeout=w.rebalance_timeout.total_seconds(),
        broker_request_timeout=max(90.0, w.session_timeout.total_seconds() + 10),
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        Monitor="mailpulse.streams.sensors:QuietMonitor",
        # Changelogs restored in bulk before Faust's record-by-record replay (streams/restore.py).
        TableManager="mailpulse.streams.faust_internals:BulkRestoringTableManager",
    )
    patch_read_committed(app)
    memory = MemoryBudget(w.rocksdb_memory_mb, w.rocksdb_write_buffer_mb)
    internal = f"{app_id(config)}."
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    streams = Streams(
        config=config,
        app=app,
        metrics=WorkerMetrics(),
        events_topic=app.topic(topic_name(EVENTS, prefix), **raw),
        campaigns_topic=app.topic(topic_name(CAMPAIGNS, prefix), **raw),
        campaign_partials=app.topic(internal + "campaign-partials", partitions=EVENTS.partitions, internal=True, **raw),
        contact_partials=app.topic(internal + "contact-partials", partitions=EVENTS.partitions, internal=True, **raw),
        campaign_inputs=app.topic(
            internal + "campaign-partials",
            topic_name(CAMPAIGNS, prefix),
            partitions=EVENTS.partitions,
            internal=True,
            **raw,
        ),
        contact_inputs=app.topic(
            internal + "contact-partials",
            topic_name(CONTACTS, prefix),
            partitions=EVENTS.partitions,
            internal=True,
            **raw,
        ),
        contacts_topic=app.topic(topic_name(CONTACTS, prefix), **raw),
        messages=PartitionStore(
            app, _raw_table(app, "messages", "Per-message state, keyed {source}:{message_id}.", memory)
        ),
        campaign_table=PartitionStore(app, _raw_table(app, "campaigns", "Per-campaign partials and metadata.", memory)),
        contact_table=PartitionStore(app, _raw_table(app, "contacts", "Per-contact partials.", memory)),
        events_name=topic_name(EVENTS, prefix),
        dlq_name=topic_name(DLQ, prefix),
        campaign_stats_name=topic_name(CAMPAIGN_STATS, prefix),
        contact_stats_name=topic_name(CONTACT_STATS, prefix),
        classifier=MailboxClassifier(w.mailbox_providers),
        memory=memory,
    )
    set_bulk_restorer(
        app,
        Restorer(
            config.kafka,
            fetch_partition_bytes=w.fetch_partition_mb * MIB,
            # Faust gives up on a recovery step after broker_request_timeout: stop well before it.
            budget_s=app.conf.broker_request_timeout - 15,
            restored=streams.metrics.restored,
        ),
    )
    streams.metrics.rocksdb_memory.set_function(memory.usage)
    streams.metrics.rocksdb_memory_limit.set(memory.capacity)
    streams.metrics.registry.register(StateCollector(streams))
    return streams


async def ensure_internal_topics(streams: Streams, timeout_s: float = 30.0) -> list[str]:
    """Create the partial topics and table changelogs before the consumer subscribes.

    Faust creates them at startup too, but after its consumer has subscribed:
    a topic missing from the first assignment ("Ignoring missing topic") is
    only picked up after the next metadata refresh and rebalance, minutes
    later, and until then its agent reads nothing.
    """
    from aiokafka.admin import NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from mailpulse.topics.admin import start_admin

    config = streams.config
    rf = config.kafka.replication_factor or 1
    wanted = {
        streams.campaign_partials.get_topic_name(): {
            "cleanup.policy": "delete",
            "retention.ms": str(7 * 24 * 3600 * 1000),
        },
        streams.contact_partials.get_topic_name(): {
            "cleanup.policy": "delete",
            "retention.ms": str(7 * 24 * 3600 * 1000),
        },
    }
    for table in streams.tables.values():
        wanted[table.changelog_topic_name] = {"cleanup.policy": "compact"}
    admin = await start_admin(config.kafka, timeout_s=timeout_s)
    try:
        present = set(await admin.list_topics())
        missing = [n for n in wanted if n not in present]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(n, EVENTS.partitions, rf, topic_configs=wanted[n]) for n in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another worker created it first
        return missing
    finally:
        await admin.close()
