"""The ``mailpulse`` command line.

Each part registers its own subcommands: a module listed in
``_COMMAND_MODULES`` exposes ``register(subparsers)``, and every command's
handler (set with ``parser.set_defaults(func=...)``) takes the parsed
arguments and returns an exit code. A ``MailpulseError`` becomes one line on
stderr and exit code 2 (or its ``exit_code``: 1 for Kafka unreachable at start); nothing else is caught.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mailpulse.errors import MailpulseError

__all__ = ["main", "build_parser"]

_COMMAND_MODULES: tuple[str, ...] = (
    "mailpulse.devcli",
    "mailpulse.topics.cli",
    "mailpulse.connectors.cli",
    "mailpulse.streams.cli",
    "mailpulse.simulators.cli",
)
#: Commands that rely on private Faust/aiokafka attributes, checked before they start
#: (``mailpulse.streams.faust_internals.check_internals``), and the set of needs to check.
_USES_KAFKA_INTERNALS = {"worker": "worker", "connect": "connect", "backfill": "connect"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailpulse",
        description="Email providers' event APIs -> an exactly-once Kafka event log -> live per-campaign and per-contact state.",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        needs = _USES_KAFKA_INTERNALS.get(args.command)
        if needs is not None:
            from mailpulse.streams.faust_internals import check_internals

            check_internals(needs)
        return int(args.func(args) or 0)
    except MailpulseError as exc:
        print(f"mailpulse {args.command}: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
