"""Provider simulators: SmartCQ, SMTPeter, SuperSend and SmarterSends served from a seeded dataset.

    sim = Simulator(SimulatorConfig(seed=7, size=2000))
    sim.advance(timedelta(hours=1))          # records mutate, new ones arrive
    sim.snapshot("smartcq")                  # ground truth, as the API would list it now
    async with serve_simulators(sim) as urls:
        ...                                  # {"smartcq": "http://127.0.0.1:PORT", ...}

See docs/simulators.md.
"""

from __future__ import annotations

from mailpulse.simulators.faults import Faults, FaultSpecError, ProviderFaults, parse_fault_spec
from mailpulse.simulators.server import make_app, serve_simulators
from mailpulse.simulators.simulator import (
    CREDENTIALS,
    PROVIDERS,
    LoggedRequest,
    Settings,
    Simulator,
    SimulatorConfig,
)

__all__ = [
    "PROVIDERS",
    "CREDENTIALS",
    "Simulator",
    "SimulatorConfig",
    "Settings",
    "LoggedRequest",
    "Faults",
    "ProviderFaults",
    "FaultSpecError",
    "parse_fault_spec",
    "serve_simulators",
    "make_app",
]
