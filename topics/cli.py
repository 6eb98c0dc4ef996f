"""``mailpulse topics create``: create the contract topics, report drift."""

from __future__ import annotations

import argparse
import asyncio
import os

from mailpulse.config import BOOTSTRAP_ENV, CONFIG_ENV, Config, KafkaConfig, load_config
from mailpulse.topics.admin import ensure_topics

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    topics = subparsers.add_parser("topics", help="manage the contract topics")
    sub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = sub.add_parser(
        "create",
        help="create missing topics and report drift of existing ones (exit 1 on drift)",
    )
    create.add_argument("--config", default=os.environ.get(CONFIG_ENV), help=f"config file (default ${CONFIG_ENV})")
    create.add_argument("--bootstrap", help=f"Kafka bootstrap servers (default: the config's, or ${BOOTSTRAP_ENV})")
    create.set_defaults(func=_create)


def _kafka_settings(args: argparse.Namespace) -> tuple[KafkaConfig, str, int | None]:
    if args.config:
        cfg = load_config(args.config, command="topics create")
    else:
        cfg = Config()
    bootstrap = args.bootstrap or os.environ.get(BOOTSTRAP_ENV) or cfg.kafka.bootstrap_servers
    kafka = cfg.kafka.model_copy(update={"bootstrap_servers": bootstrap})
    return kafka, cfg.kafka.topic_prefix, cfg.kafka.replication_factor


def _create(args: argparse.Namespace) -> int:
    kafka, prefix, rf = _kafka_settings(args)
    report = asyncio.run(ensure_topics(kafka, prefix=prefix, replication_factor=rf))
    for line in report.lines():
        print(line)
    print(
        f"{len(report.created)} created, {len(report.existing)} existing, "
        f"{len(report.drift)} drift (replication factor {report.replication_factor}, {kafka.bootstrap_servers})"
    )
    return 1 if report.drift else 0
