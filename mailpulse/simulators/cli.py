"""``mailpulse simulate``: serve the four provider simulators until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import UTC, datetime

from mailpulse.errors import MailpulseError
from mailpulse.simulators.faults import PROVIDERS, FaultSpecError, parse_fault_spec
from mailpulse.simulators.server import serve_simulators
from mailpulse.simulators.simulator import Simulator, SimulatorConfig

__all__ = ["register", "SimulateError", "build_config"]


class SimulateError(MailpulseError):
    """A bad ``mailpulse simulate`` flag or a port that cannot be bound."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "simulate",
        help="serve simulated SmartCQ, SMTPeter, SuperSend and SmarterSends APIs on 127.0.0.1",
        description="Serve the four provider APIs from a seeded dataset whose clock runs by itself. "
        "Ports: smartcq = port-base, smtpeter +1, supersend +2, smartersends +3.",
    )
    # Values are checked by build_config, so that a bad one is one clear line, not a usage dump.
    p.add_argument("--seed", default="1", help="dataset seed (default 1)")
    p.add_argument("--size", default="2000", help="messages per provider, roughly (default 2000)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port-base", default="8701", help="first of four consecutive ports (default 8701)")
    # The pollers compare provider times with their own wall clock (windows up to "now", lookback
    # from "now"), so by default the simulated clock starts at the real time and runs at its pace.
    p.add_argument(
        "--clock-speed",
        default="1",
        help="simulated seconds per real second (default 1: the wall clock's pace; 0 = frozen; "
        "faster clocks run ahead of the pollers' wall clock)",
    )
    p.add_argument(
        "--start",
        default="now",
        help="simulated start of the history, ISO date/time, or 'now' (default): the history ends, "
        "and the clock starts, at the current time",
    )
    p.add_argument(
        "--faults",
        default="",
        help='fault probabilities for every provider, e.g. "429=0.05,5xx=0.02,slow=0.01,malformed=0.01,bad=0.001" '
        "(also retry-after=S, slow-ms=MS, latency-ms=MS, no-url=P)",
    )
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> tuple[SimulatorConfig, dict[str, object], int]:
    """Flags -> (config, fault knobs, port base); raises SimulateError naming the bad flag."""

    def number(flag: str, raw: str, kind: type, low: float, high: float | None = None) -> float:
        try:
            value = kind(raw)
        except ValueError:
            raise SimulateError(f"--{flag}: {raw!r} is not a{'n integer' if kind is int else ' number'}") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise SimulateError(f"--{flag}: {raw} is out of range (must be {bound})")
        return value

    seed = int(number("seed", args.seed, int, -(2**63)))
    size = int(number("size", args.size, int, 1, 5_000_000))
    port_base = int(number("port-base", args.port_base, int, 0, 65532))
    speed = number("clock-speed", args.clock_speed, float, 0)
    kw: dict[str, object] = {}
    if args.start == "now":
        history = SimulatorConfig.__dataclass_fields__["history"].default
        kw["start"] = datetime.now(UTC).replace(microsecond=0) - history  # type: ignore[operator]
    elif args.start:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            raise SimulateError(f"--start: {args.start!r} is not an ISO date or date-time") from None
        kw["start"] = start if start.tzinfo else start.replace(tzinfo=UTC)
    try:
        knobs = parse_fault_spec(args.faults or "")
    except FaultSpecError as exc:
        raise SimulateError(f"--faults: {exc}") from None
    return SimulatorConfig(seed=seed, size=size, clock_speed=speed, **kw), knobs, port_base  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    config, knobs, port_base = build_config(args)
    try:
        return asyncio.run(_serve(config, knobs, args.host, port_base))
    except OSError as exc:
        raise SimulateError(
            f"cannot listen on {args.host} ports {port_base}-{port_base + 3}: {exc.strerror or exc}"
        ) from None


async def _serve(config: SimulatorConfig, knobs: dict[str, object], host: str, port_base: int) -> int:
    sim = Simulator(config)
    if knobs:
        sim.faults.set(None, **knobs)
    for provider in PROVIDERS:
        sim.data(provider)  # generate before listening: "ready" means ready
    sim.sync_clock()  # the running clock starts now, not during generation
    ports = {p: (port_base + i if port_base else 0) for i, p in enumerate(PROVIDERS)}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve_simulators(sim, host=host, ports=ports) as urls:
        for provider, url in urls.items():
            print(f"{provider:<13} {url}", flush=True)
        print(
            f"simulated clock at {sim.now.isoformat()} running x{config.clock_speed:g}; seed {config.seed}, size {config.size}"
            + (f"; faults {', '.join(f'{k}={v}' for k, v in knobs.items())}" if knobs else ""),
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    return 0
