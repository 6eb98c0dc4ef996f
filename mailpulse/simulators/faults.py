"""Fault injection: seeded probability knobs per provider, scripted faults, revoked keys, bad records.

Two kinds of fault:

* HTTP-level, decided per request by the server middleware: 429 (with
  ``Retry-After``), 5xx, slow replies, malformed pages (invalid JSON or the
  wrong shape). Probabilities come from :class:`ProviderFaults`; draws come
  from one seeded ``random.Random`` per provider, so the same request sequence
  meets the same faults. ``script()`` queues faults that hit the next requests
  in order, whatever the probabilities say.
* Record-level: ``bad_record_rate`` corrupts a deterministic subset of records
  (missing id, unparsable timestamp, unknown status). Which records are bad is
  a pure function of the seed and the record, so ``Simulator.snapshot`` and
  ``Simulator.bad_records`` agree with what the API serves.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "ProviderFaults",
    "Faults",
    "FaultSpecError",
    "parse_fault_spec",
    "SCRIPT_TOKENS",
    "BAD_KINDS",
    "bad_kind",
]

PROVIDERS = ("smartcq", "smtpeter", "supersend", "smartersends")

#: What one scripted fault can be. ``429:N`` sets Retry-After to N seconds,
#: ``slow:MS`` delays by MS milliseconds, ``disconnect`` drops the connection
#: without a reply; ``ok`` lets one request through.
SCRIPT_TOKENS = (
    "429",
    "500",
    "502",
    "503",
    "504",
    "malformed",
    "invalid-json",
    "wrong-shape",
    "slow",
    "disconnect",
    "no-url",
    "ok",
)

#: The three ways a record is corrupted, picked per record from its seed.
BAD_KINDS = ("missing id", "unparsable timestamp", "unknown status")


class FaultSpecError(ValueError):
    """A fault spec or knob value that cannot be used; the message names it."""


@dataclass
class ProviderFaults:
    """Probability knobs for one provider (all 0 = a well-behaved API)."""

    rate_429: float = 0.0
    #: Seconds in the ``Retry-After`` header of a 429.
    retry_after: int = 1
    rate_5xx: float = 0.0
    #: How long a slow reply (drawn with ``slow_rate``, or scripted ``slow``) takes, in ms.
    slow_ms: int = 2000
    slow_rate: float = 0.0
    #: Added to every reply, in ms: a steady latency (``slow_ms`` alone slows nothing).
    latency_ms: int = 0
    malformed_page_rate: float = 0.0
    bad_record_rate: float = 0.0
    #: SmarterSends exports only: the reply without ``url`` ("no temporary URL could be created").
    no_url_rate: float = 0.0

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("rate") or f.name.startswith("rate"):
                if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                    raise FaultSpecError(f"{f.name}={value!r}: a probability must be between 0 and 1")
            elif not isinstance(value, int) or value < 0:
                raise FaultSpecError(f"{f.name}={value!r}: must be a non-negative integer")


def bad_kind(ubad: float, rate: float) -> str | None:
    """The corruption of a record whose seeded uniform draw is ``ubad``, or None if it is clean."""
    if ubad >= rate:
        return None
    return BAD_KINDS[int(ubad * 1_000_003) % 3]


class Faults:
    """``sim.faults``: per-provider knobs, scripts and revocations, all seeded."""

    def __init__(self, seed: int) -> None:
        self._knobs = {p: ProviderFaults() for p in PROVIDERS}
        self._rng = {p: random.Random(f"{seed}/{p}/faults") for p in PROVIDERS}
        self._scripts: dict[str, deque[str]] = {p: deque() for p in PROVIDERS}
        self._revoked: set[str] = set()

    # -- knobs ---------------------------------------------------------------
    def __getitem__(self, provider: str) -> ProviderFaults:
        return self._knobs[_check(provider)]

    def set(self, provider: str | None = None, **knobs: Any) -> None:
        """Set knobs on one provider, or on all when ``provider`` is None."""
        targets = PROVIDERS if provider is None else (_check(provider),)
        names = {f.name for f in fields(ProviderFaults)}
        for name in knobs:
            if name not in names:
                raise FaultSpecError(f"unknown fault knob {name!r}; known: {', '.join(sorted(names))}")
        for p in targets:
            candidate = ProviderFaults(**{**self._knobs[p].__dict__, **knobs})
            candidate.validate()
            self._knobs[p] = candidate

    def clear(self) -> None:
        """Back to a well-behaved API everywhere (knobs, scripts, revocations)."""
        for p in PROVIDERS:
            self._knobs[p] = ProviderFaults()
            self._scripts[p].clear()
        self._revoked.clear()

    # -- scripts -------------------------------------------------------------
    def script(self, provider: str, faults: Iterable[str]) -> None:
        """Make the next requests to ``provider`` fail in this order (appends to any pending script)."""
        tokens = [str(t) for t in faults]
        for token in tokens:
            head, _, arg = token.partition(":")
            if head not in SCRIPT_TOKENS or (arg and not (head in ("429", "slow") and arg.isdigit())):
                raise FaultSpecError(
                    f"unknown scripted fault {token!r}; use one of {', '.join(SCRIPT_TOKENS)} (429:SECONDS, slow:MS)"
                )
        self._scripts[_check(provider)].extend(tokens)

    def pending(self, provider: str) -> list[str]:
        return list(self._scripts[_check(provider)])

    def take_scripted(self, provider: str) -> str | None:
        """Pop the next scripted HTTP-level fault. ``no-url`` stays at the head until an export takes it."""
        queue = self._scripts[provider]
        if not queue or queue[0] == "no-url":
            return None
        return queue.popleft()

    def take_no_url(self, provider: str) -> bool:
        queue = self._scripts[provider]
        if queue and queue[0] == "no-url":
            queue.popleft()
            return True
        return self.draw(provider) < self._knobs[provider].no_url_rate

    # -- revocation ----------------------------------------------------------
    def revoke(self, provider: str) -> None:
        """The provider's key is refused (401) until :meth:`restore`."""
        self._revoked.add(_check(provider))

    def restore(self, provider: str) -> None:
        self._revoked.discard(_check(provider))

    def is_revoked(self, provider: str) -> bool:
        return provider in self._revoked

    # -- draws ---------------------------------------------------------------
    def draw(self, provider: str) -> float:
        return self._rng[provider].random()

    def choice(self, provider: str, options: tuple[Any, ...]) -> Any:
        return self._rng[provider].choice(options)

    def as_dict(self) -> dict[str, Any]:
        return {
            p: {**self._knobs[p].__dict__, "script": list(self._scripts[p]), "revoked": p in self._revoked}
            for p in PROVIDERS
        }


def _check(provider: str) -> str:
    if provider not in PROVIDERS:
        raise FaultSpecError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    return provider


_SPEC_KEYS = {
    "429": "rate_429",
    "5xx": "rate_5xx",
    "slow": "slow_rate",
    "malformed": "malformed_page_rate",
    "bad": "bad_record_rate",
    "no-url": "no_url_rate",
    "retry-after": "retry_after",
    "slow-ms": "slow_ms",
    "latency-ms": "latency_ms",
}


def parse_fault_spec(spec: str) -> dict[str, Any]:
    """``"429=0.05,5xx=0.02,slow=0.01,malformed=0.01,bad=0.001"`` -> ProviderFaults knobs.

    Also ``retry-after=SECONDS``, ``slow-ms=MS`` (a slow reply's duration),
    ``latency-ms=MS`` (added to every reply) and ``no-url=P``. Raises
    :class:`FaultSpecError` naming the bad item.
    """
    knobs: dict[str, Any] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in _SPEC_KEYS:
            raise FaultSpecError(f"fault {item!r}: expected KEY=VALUE with KEY one of {', '.join(_SPEC_KEYS)}")
        name = _SPEC_KEYS[key]
        try:
            value: Any = int(raw) if name in ("retry_after", "slow_ms", "latency_ms") else float(raw)
        except ValueError:
            raise FaultSpecError(f"fault {item!r}: {raw.strip()!r} is not a number") from None
        knobs[name] = value
    ProviderFaults(**knobs).validate()
    return knobs
