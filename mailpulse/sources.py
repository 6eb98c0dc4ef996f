"""What every configured source has, whatever its provider: the base of each provider's config model.

Each provider module (``connectors/providers/<name>.py``) subclasses ``SourceBase``
with its own keys and a ``provider: Literal["<name>"]`` tag; ``mailpulse.config``
joins those models into one discriminated union. This module sits below both:
it imports neither ``mailpulse.config`` nor any provider, so a provider module
can import it while ``mailpulse.config`` is still importing the providers.
"""

from __future__ import annotations

import re
import types
import typing
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

__all__ = ["Model", "SourceBase", "Duration", "parse_duration", "secret_fields", "source_secrets"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """``"500ms"``, ``"60s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"2w"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(f"invalid duration {value!r}: use a number with a unit, e.g. 30s, 15m, 7d")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
_URL = re.compile(r"^https?://[^\s/?#]+(:\d+)?(/[^\s?#]*)?$")


class Model(BaseModel):
    """Every config section: unknown keys are errors, and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceBase(Model):
    #: Unique per file; the account part of every key, so no ':' or '/'.
    name: str = Field(max_length=64)
    base_url: str
    poll_interval: Duration = timedelta(seconds=60)
    lookback: Duration = timedelta(days=7)
    reconcile_interval: Duration = timedelta(minutes=15)
    #: HTTP request timeout.
    timeout: Duration = timedelta(seconds=30)
    #: Retries of one request on connect errors, timeouts, 408, 429 and 5xx.
    max_retries: int = Field(default=5, ge=0, le=20)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
            raise ValueError(
                f"{value!r} may hold only letters, digits, '.', '_' and '-' (it becomes part of every key)"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _URL.match(value):
            raise ValueError(f"expected an http(s) URL such as https://api.example.com, got {value!r}")
        return value.rstrip("/")

    @field_validator("poll_interval", "reconcile_interval", "timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be greater than zero")
        return value


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # SecretStr | None
        return SecretStr in typing.get_args(annotation)
    return False


def secret_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys a config model declares as ``SecretStr``: the values logs must never show."""
    return tuple(name for name, field in model.model_fields.items() if _is_secret(field.annotation))


def source_secrets(source: BaseModel) -> tuple[str, ...]:
    """The secret values of one configured source (for the log filter and error messages)."""
    values = (getattr(source, name) for name in secret_fields(type(source)))
    return tuple(v.get_secret_value() for v in values if v is not None)
