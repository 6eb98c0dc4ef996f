"""The simulator: a seeded dataset per provider, a simulated clock, faults, settings and a request log.

Datasets are generated lazily, one provider at a time, each from its own
``random.Random(f"{seed}/{provider}")``: the same seed gives the same records
whatever is asked first. Records hold their whole timeline; the API shows them
as of ``sim.now``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, Literal

from mailpulse.simulators import smartcq, smartersends, smtpeter, supersend
from mailpulse.simulators._util import from_ms, td_ms, to_ms
from mailpulse.simulators.faults import PROVIDERS, Faults

__all__ = ["PROVIDERS", "CREDENTIALS", "SimulatorConfig", "Settings", "LoggedRequest", "Simulator"]

#: The keys each simulated API accepts (examples/dev.yaml uses them as defaults).
CREDENTIALS = {
    "smartcq": "sim-smartcq-key",
    "smtpeter": "sim-smtpeter-token",
    "supersend": "sim-supersend-key",
    "smartersends": "sim-smartersends-key",
}

#: Requests kept in ``request_log`` (far more than any test makes).
MAX_LOG = 200_000

_MODULES: dict[str, ModuleType] = {
    "smartcq": smartcq,
    "smtpeter": smtpeter,
    "supersend": supersend,
    "smartersends": smartersends,
}


@dataclass(frozen=True)
class SimulatorConfig:
    seed: int = 1
    #: Messages (sends) per provider, roughly, history and future together.
    size: int = 2000
    #: Simulated time at which the dataset's history begins.
    start: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    #: The clock starts at ``start + history``.
    history: timedelta = timedelta(days=3)
    #: Records keep being created (and mutating) this long after the clock start.
    horizon: timedelta = timedelta(days=7)
    #: Share of ``size`` created after the clock start (arrives as the clock advances).
    future_fraction: float = 0.2
    #: Simulated seconds per real second; 0 = the clock moves only with ``advance()``.
    clock_speed: float = 0.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("SimulatorConfig.start must be an aware (UTC) datetime")
        if self.size < 1:
            raise ValueError(f"SimulatorConfig.size must be at least 1, got {self.size}")
        if self.history <= timedelta(0) or self.horizon < timedelta(0):
            raise ValueError("SimulatorConfig.history must be positive and horizon non-negative")
        if not 0.0 <= self.future_fraction < 1.0:
            raise ValueError("SimulatorConfig.future_fraction must be in [0, 1)")
        if self.clock_speed < 0:
            raise ValueError("SimulatorConfig.clock_speed must be >= 0")


@dataclass
class Settings:
    """Behaviour switches that are not faults."""

    #: Which campaign-export route answers: "POST" (/api/usage/campaign/export),
    #: "GET" (/api/usage/campaigns/export) or "both"; the other answers 405.
    smartersends_export_method: Literal["POST", "GET", "both"] = "POST"
    #: Lifetime of SmarterSends' temporary download URLs, in simulated time.
    smartersends_url_ttl: timedelta = timedelta(minutes=60)


class LoggedRequest(tuple):  # type: ignore[type-arg]
    """``(provider, method, path, query, status)``, plus ``.at`` (monotonic seconds) and ``.sim_time``."""

    at: float
    sim_time: datetime

    def __new__(
        cls, provider: str, method: str, path: str, query: dict[str, str], status: int, at: float, sim_time: datetime
    ) -> LoggedRequest:
        obj = super().__new__(cls, (provider, method, path, query, status))
        obj.at = at
        obj.sim_time = sim_time
        return obj

    provider = property(lambda self: self[0])
    method = property(lambda self: self[1])
    path = property(lambda self: self[2])
    query = property(lambda self: self[3])
    status = property(lambda self: self[4])


class Simulator:
    """See the package docstring for the whole API."""

    def __init__(self, config: SimulatorConfig | None = None, *, share_data: bool = True) -> None:
        """``share_data=False`` generates this simulator's own datasets instead of reusing the
        process-wide ones built from an equal config (only a determinism test needs that)."""
        self.config = config or SimulatorConfig()
        self._share_data = share_data
        self._base_ms = to_ms(self.config.start) + td_ms(self.config.history)
        self._real0 = time.monotonic()
        self.credentials: dict[str, str] = dict(CREDENTIALS)
        self.faults = Faults(self.config.seed)
        self.settings = Settings()
        self.request_log: list[LoggedRequest] = []
        self._data: dict[str, Any] = {}
        #: SmarterSends' generated export files: token -> (expires_ms, content_type, body).
        self.exports: dict[str, tuple[int, str, bytes]] = {}
        self.export_count = 0
        self.requests_served = 0

    def __repr__(self) -> str:
        return f"Simulator(seed={self.config.seed}, size={self.config.size}, now={self.now.isoformat()})"

    # -- clock ---------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        if self.config.clock_speed:
            return self._base_ms + int((time.monotonic() - self._real0) * 1000 * self.config.clock_speed)
        return self._base_ms

    @property
    def now(self) -> datetime:
        return from_ms(self.now_ms)

    def sync_clock(self) -> None:
        """Restart a running clock from its current reading (e.g. once generation is over)."""
        self._base_ms, self._real0 = self.now_ms, time.monotonic()

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward: scheduled mutations and new records become visible."""
        if delta < timedelta(0):
            raise ValueError("the simulated clock only moves forward")
        self._base_ms += td_ms(delta)
        return self.now

    # -- data ----------------------------------------------------------------
    def data(self, provider: str) -> Any:
        if provider not in self._data:
            if self._share_data:
                self._data[provider] = _generate(provider, self.config)
            else:
                self._data[provider] = _module(provider).generate(self.config)
        return self._data[provider]

    def snapshot(self, provider: str, **kw: Any) -> Any:
        """The full, unpaginated records the provider's API would return right now (faulty records included)."""
        return _module(provider).snapshot(self.data(provider), self.now_ms, self.faults[provider].bad_record_rate, **kw)

    def bad_records(self, provider: str) -> list[dict[str, Any]]:
        """Records currently corrupted by ``bad_record_rate``: ``{kind, id, reason, payload}`` each."""
        return _module(provider).bad_records(self.data(provider), self.now_ms, self.faults[provider].bad_record_rate)

    def log(self, provider: str, method: str, path: str, query: dict[str, str], status: int) -> None:
        # The access token travels in SMTPeter's query string: never keep a secret in the log.
        if "access_token" in query:
            query = {**query, "access_token": "***"}
        self.requests_served += 1
        self.request_log.append(LoggedRequest(provider, method, path, query, status, time.monotonic(), self.now))
        if len(self.request_log) > MAX_LOG:
            # A long `mailpulse simulate` run: keep the newest half.
            del self.request_log[: MAX_LOG // 2]


# Generated data never changes after generation (what moves is the clock), so simulators
# built from the same config share it: a test suite pays for each dataset once.
_DATASETS: OrderedDict[tuple[str, SimulatorConfig], Any] = OrderedDict()
_DATASETS_KEPT = 8


def _generate(provider: str, config: SimulatorConfig) -> Any:
    key = (provider, replace(config, clock_speed=0.0))
    data = _DATASETS.get(key)
    if data is None:
        data = _DATASETS[key] = _module(provider).generate(config)
        while len(_DATASETS) > _DATASETS_KEPT:
            _DATASETS.popitem(last=False)
    else:
        _DATASETS.move_to_end(key)
    return data


def _module(provider: str) -> ModuleType:
    try:
        return _MODULES[provider]
    except KeyError:
        raise ValueError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}") from None
