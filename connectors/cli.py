"""``mailpulse connect`` and ``mailpulse backfill``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import Any

from mailpulse.config import Config, load_config
from mailpulse.connectors.base import PassResult
from mailpulse.connectors.clock import CLOCK_URL_ENV, RemoteClock
from mailpulse.connectors.redact import install_secrets_filter
from mailpulse.connectors.runner import SourceRunner, parse_cli_time, run_connect, source_secrets
from mailpulse.errors import ConfigError

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("connect", help="poll every configured provider into Kafka, exactly once")
    p.add_argument("--config", default=None, help="config file (default: $MAILPULSE_CONFIG)")
    p.add_argument("--source", action="append", default=None, help="only this source (repeatable)")
    p.add_argument(
        "--clock-url",
        default=os.environ.get(CLOCK_URL_ENV),
        help=f"follow a simulated provider clock (a simulator's /_sim/now) instead of the wall clock (default: ${CLOCK_URL_ENV})",
    )
    p.set_defaults(func=_connect)

    b = subparsers.add_parser(
        "backfill", help="re-read one source's history into Kafka, exactly once, with a progress bar"
    )
    b.add_argument("--config", default=None, help="config file (default: $MAILPULSE_CONFIG)")
    b.add_argument("--source", required=True, help="the source's name in the config")
    b.add_argument("--since", required=True, help="start: YYYY-MM-DD or an ISO 8601 timestamp (UTC)")
    b.add_argument("--until", default=None, help="end (default: now)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    b.add_argument(
        "--clock-url", default=os.environ.get(CLOCK_URL_ENV), help="follow a simulated provider clock (see connect)"
    )
    b.set_defaults(func=_backfill)


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config, command=args.command)
    secrets = [s for source in config.sources for s in source_secrets(source)]
    if config.kafka.sasl_password is not None:
        secrets.append(config.kafka.sasl_password.get_secret_value())
    install_secrets_filter(secrets)
    # httpx logs every URL at INFO; query-parameter credentials (QueryParamAuth) and signed download URLs live in URLs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return config


def _preflight(config: Config) -> None:
    """Kafka answers and the contract topics exist, before the metrics server or any poller starts."""
    from mailpulse.topics.admin import preflight

    asyncio.run(preflight(config.kafka, config.kafka.topic_prefix, config_path=config.path))
    from mailpulse.kafkalog import install_outage_filter

    install_outage_filter(config.kafka.bootstrap_servers)


def _install_stop(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass


def _connect(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.source:
        for name in args.source:
            config.source(name)  # raises ConfigError naming the unknown source
    _preflight(config)
    if config.connect.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.connect.metrics_port)
        log.info("metrics on :%d/metrics", config.connect.metrics_port)

    async def main() -> int:
        stop = asyncio.Event()
        _install_stop(asyncio.get_running_loop(), stop)
        if not args.clock_url:
            return await run_connect(config, stop, names=args.source)
        clock = RemoteClock(args.clock_url)
        await clock.start()
        log.info("following the provider clock at %s (now %s)", args.clock_url, clock().isoformat())
        try:
            return await run_connect(config, stop, names=args.source, clock=clock)
        finally:
            await clock.stop()

    return asyncio.run(main())


def _backfill(args: argparse.Namespace) -> int:
    config = _load(args)
    source = config.source(args.source)
    since = _time(args.since, "--since")
    until = _time(args.until, "--until") if args.until else None
    if until is not None and until <= since:
        raise ConfigError(f"--until ({args.until}) must be after --since ({args.since})")
    _preflight(config)

    async def main() -> int:
        from tqdm import tqdm

        bar = tqdm(desc=f"backfill {source.name}", unit=" records", disable=args.no_progress, dynamic_ncols=True)
        seen: dict[str, int] = {}

        def progress(stream: str, result: PassResult, cursor: Any) -> None:
            bar.update(result.records - seen.get(stream, 0))
            seen[stream] = result.records
            bar.set_postfix(stream=stream, events=result.events, dlq=result.dlq)

        clock = RemoteClock(args.clock_url) if args.clock_url else None
        if clock is not None:
            await clock.start()
        runner = SourceRunner(
            config,
            source,
            mode="backfill",
            since=since,
            until=until,
            on_progress=progress,
            **({"clock": clock} if clock else {}),
        )
        try:
            await runner.start()
            results = await runner.run_once()
        finally:
            bar.close()
            await runner.close()
            if clock is not None:
                await clock.stop()
        if not results:
            print(f"backfill {source.name}: this window was already backfilled (nothing to do)")
        for name, r in results.items():
            print(
                f"backfill {source.name}/{name}: {r.records} records read, {r.events} events published, "
                f"{r.duplicates} already on the topic, {r.meta} metadata records, {r.dlq} to the DLQ"
            )
        return 0

    return asyncio.run(main())


def _time(value: str, flag: str) -> Any:
    try:
        return parse_cli_time(value)
    except ValueError:
        raise ConfigError(f"{flag}: {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 timestamp") from None
