"""``mailpulse worker --config FILE``: run the streams worker (Faust app + query API)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import shutil
from pathlib import Path
from typing import Any

from mailpulse.config import Config, load_config

__all__ = ["build_worker", "register", "run_worker"]

# Faust's level names -> logging's.
_LEVELS = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG"}


def build_worker(config: Config) -> Any:
    """The app with its agents and API installed (a ``mailpulse.streams.app.Streams``)."""
    from mailpulse.streams import http_errors
    from mailpulse.streams.agents import install_agents
    from mailpulse.streams.api import install_api
    from mailpulse.streams.app import create_app
    from mailpulse.streams.progress import install_progress

    http_errors.install()

    streams = create_app(config)
    install_agents(streams)
    install_progress(streams)
    install_api(streams)
    return streams


#: Allocations between two young-generation collections (CPython's default: 700). Each batch
#: allocates hundreds of thousands of short-lived containers: the fewer of them alive when a
#: collection runs, the less it scans (50,000 spent ~16% of a scale run collecting; 200,000 gave
#: +13% events/s on the 1M-event set, docs/streams.md "What moved it").
GC_THRESHOLD = 200_000


def run_worker(config: Config) -> int:
    import faust

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        uvloop = None
    if uvloop is not None:
        # uvloop made Faust's per-event loop ~20% faster when measured (docs/streams.md, Faust on this stack).
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # The worker allocates many small, mostly acyclic objects per batch (states,
    # contributions); CPython's default gen-0 threshold (700) makes the cyclic
    # collector a large share of its CPU. Collect far less often.
    gc.set_threshold(GC_THRESHOLD, 50, 100)
    from mailpulse.streams.malloc import tune_malloc

    # Opt-in (worker.malloc_tuning): batch-sized buffers back to the system when freed (streams/malloc.py).
    tuned = tune_malloc() if config.worker.malloc_tuning else {}
    config.worker.data_dir.mkdir(parents=True, exist_ok=True)
    streams = build_worker(config)
    from mailpulse.streams.agents import VIEWS_DIR
    from mailpulse.streams.app import ensure_internal_topics
    from mailpulse.streams.tables import discard_unacknowledged

    # Contact spills a killed worker left behind: views are rebuilt on assignment, never read back.
    shutil.rmtree(config.worker.data_dir / VIEWS_DIR, ignore_errors=True)

    streams.metrics.local_tables_discarded.inc(len(discard_unacknowledged(Path(streams.app.conf.tabledir))))
    loop.run_until_complete(ensure_internal_topics(streams))
    worker = faust.Worker(
        streams.app,
        loglevel=_LEVELS[config.worker.log_level],
        loop=loop,
        override_logging=False,
    )
    log = logging.getLogger(__name__)
    log.info("worker %s: API on %s", streams.app.conf.id, streams.app.conf.canonical_url)
    if tuned:
        log.info("glibc malloc: %s", ", ".join(f"{name}={value}" for name, value in tuned.items()))
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


async def check_retention(config: Config) -> None:
    """The message horizon and marker TTL against the events topic's retention: ConfigError if unsafe."""
    from mailpulse.config import ConfigError
    from mailpulse.streams.sealing import retention_problem
    from mailpulse.topics.admin import topic_retention_ms
    from mailpulse.topics.contracts import EVENTS, topic_name

    w = config.worker
    horizon_ms = int(w.message_horizon.total_seconds() * 1000)
    if horizon_ms <= 0:
        return
    events = topic_name(EVENTS, config.kafka.topic_prefix)
    retention = await topic_retention_ms(config.kafka, events)
    problem = retention_problem(horizon_ms, int(w.sealed_marker_ttl.total_seconds() * 1000), retention)
    if problem:
        raise ConfigError(f"{config.path}: worker.{problem} ({events} retention.ms={retention})")


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config, command="worker")
    from mailpulse.topics.admin import preflight

    asyncio.run(preflight(config.kafka, config.kafka.topic_prefix, config_path=config.path))
    asyncio.run(check_retention(config))
    from mailpulse.kafkalog import install_outage_filter

    install_outage_filter(config.kafka.bootstrap_servers)
    return run_worker(config)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run the streams worker: per-message, per-campaign and per-contact state and the query API",
        description="Run the Faust worker reading mailpulse.events.v1; several workers share the partitions.",
    )
    parser.add_argument("--config", default=None, help="config file (default: $MAILPULSE_CONFIG)")
    parser.set_defaults(func=_run)
