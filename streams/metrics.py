"""Prometheus metrics of a worker: names defined once here; agents only inc()/observe()/set()."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "WorkerMetrics"]


@dataclass
class WorkerMetrics:
    """One registry per app, so several apps in one process (tests) never collide."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events = Counter(
            "mailpulse_stream_events_total",
            "Events read from the events topic, by result (new: changed a message; duplicate: added nothing; "
            "invalid: sent to the DLQ; sealed: its message was sealed, its figures are final).",
            ["result"],
            registry=r,
        )
        self.sealed = Counter(
            "mailpulse_stream_messages_sealed_total",
            "Messages sealed past worker.message_horizon: state deleted, contribution kept in their campaign and contact.",
            registry=r,
        )
        self.markers_dropped = Counter(
            "mailpulse_stream_sealed_markers_dropped_total",
            "Markers of sealed messages dropped worker.sealed_marker_ttl after sealing.",
            registry=r,
        )
        self.state_writes = Counter(
            "mailpulse_stream_state_writes_total",
            "Table writes (one changelog record each), by table.",
            ["table"],
            registry=r,
        )
        self.partials = Counter(
            "mailpulse_stream_partials_published_total",
            "Stage-1 partial aggregates published, by kind.",
            ["kind"],
            registry=r,
        )
        self.partials_consumed = Counter(
            "mailpulse_stream_partials_consumed_total",
            "Stage-2 records read (partials and metadata), by kind.",
            ["kind"],
            registry=r,
        )
        self.partials_stale = Counter(
            "mailpulse_stream_partials_ignored_total",
            "Stage-2 partials ignored because a newer version was held (replays, old owners).",
            ["kind"],
            registry=r,
        )
        self.stats = Counter(
            "mailpulse_stream_stats_published_total",
            "Records published to the stats topics, by kind.",
            ["kind"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "mailpulse_stream_batch_seconds",
            "Time to process one batch, by stage.",
            ["stage"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.partitions = Gauge(
            "mailpulse_stream_partitions", "Events partitions this worker owns and has a view of.", registry=r
        )
        self.ready = Gauge("mailpulse_stream_ready", "1 once tables have recovered and views are built.", registry=r)
        self.rocksdb_memory = Gauge(
            "mailpulse_stream_rocksdb_memory_bytes",
            "Bytes held in the worker's shared RocksDB block cache, memtables and index/filter blocks included.",
            registry=r,
        )
        self.rocksdb_memory_limit = Gauge(
            "mailpulse_stream_rocksdb_memory_limit_bytes",
            "The RocksDB memory budget (worker.rocksdb_memory_mb); RocksDB may exceed it briefly while flushing.",
            registry=r,
        )
        self.rebuilds = Counter(
            "mailpulse_stream_view_rebuilds_total", "Partition views rebuilt from the message table.", registry=r
        )
        self.read_offset = Gauge(
            "mailpulse_stream_read_offset",
            "Offset of the last events record handed to stage 1, per owned events partition.",
            ["partition"],
            registry=r,
        )
        self.lag = Gauge(
            "mailpulse_stream_lag_records",
            "Events records not yet read, per owned events partition: high watermark - read offset - 1 "
            "(a tail of transaction markers or aborted records, never read, keeps it a little above 0).",
            ["partition"],
            registry=r,
        )
        self.local_tables_discarded = Counter(
            "mailpulse_stream_local_tables_discarded_total",
            "Local table partitions deleted at start because they held writes their changelog never acknowledged.",
            registry=r,
        )
        self.restored = Counter(
            "mailpulse_stream_changelog_records_restored_total",
            "Changelog records written into the local tables by the bulk restore, by table "
            "(recovery of a partition with an empty or stale data_dir; Faust replays what it leaves).",
            ["table"],
            registry=r,
        )
        self.requests = Counter(
            "mailpulse_api_requests_total", "API requests, by endpoint and status.", ["endpoint", "status"], registry=r
        )

    def render(self, names: list[str] | None = None) -> bytes:
        """The exposition text; with ``names``, only those metric families (``/metrics?name[]=...``,
        as prometheus_client's own handlers do): a progress probe need not pay for every series."""
        registry = self.registry.restricted_registry(names) if names else self.registry
        return generate_latest(registry)
