"""Small pure helpers shared by the provider modules' ``normalise`` functions."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mailpulse.connectors.errors import MalformedPage, NormalisationError

__all__ = [
    "event_id_prefix",
    "require_str",
    "timestamp",
    "utc_timestamp",
    "optional_timestamp",
    "require_mapping",
    "body_list",
    "body_dict",
]

_fromiso = datetime.fromisoformat
_blake2b = hashlib.blake2b


def event_id_prefix(provider: str, source: str, part: object) -> Any:
    """The BLAKE2b state of ``make_event_id(provider, source, part, fact)`` up to the fact.

    BLAKE2b is streamed, so a normaliser hashes the shared prefix once per record and, per fact,
    copies the state, feeds the fact's bytes and finalises (inline: a helper call per event
    costs more than the copy on the hot path). A test holds the result equal to ``make_event_id``.
    """
    return _blake2b(f"{provider}\x1f{source}\x1f{part}\x1f".encode(), digest_size=16)


_UTC = UTC
_SEPARATORS = frozenset("T ")


def require_mapping(raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise NormalisationError("$", f"record must be a JSON object, got {type(raw).__name__}")
    return raw


def require_str(raw: Mapping[str, Any], name: str, shown: str | None = None) -> str:
    value = raw.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise NormalisationError(
            shown or name, "missing" if value is None else f"must be a non-empty string, got {value!r:.40}"
        )
    return value


def timestamp(value: Any, name: str) -> datetime:
    """An aware UTC datetime from ISO 8601 (naive = UTC, as every provider documents)."""
    if not isinstance(value, str):
        raise NormalisationError(
            name, "missing timestamp" if value is None else f"timestamp must be a string, got {value!r:.40}"
        )
    if len(value) == 19 and value[10] in _SEPARATORS:
        # 'YYYY-MM-DD hh:mm:ss' (SMTPeter, SmarterSends): parsing it with a 'Z' is 4x cheaper than
        # datetime.replace(tzinfo=...); anything that does not parse takes the general path below.
        try:
            return _fromiso(value + "Z")
        except ValueError:
            pass
    try:
        dt = _fromiso(value)
    except ValueError:
        raise NormalisationError(name, f"unparsable timestamp {value[:40]!r}") from None
    tz = dt.tzinfo
    if tz is _UTC:  # '...Z' and '+00:00' (SmartCQ, SuperSend): already the UTC singleton
        return dt
    return dt.replace(tzinfo=_UTC) if tz is None else dt.astimezone(_UTC)


def utc_timestamp(value: Any, name: str) -> datetime:
    """``timestamp(value, name)``, one parse cheaper for texts that carry a UTC offset ('...Z', '+00:00').

    SmartCQ and SuperSend send only those: one ``fromisoformat`` call settles them. Everything else
    (naive, other offsets, bad values) takes ``timestamp`` itself, so results and errors are its own.
    A text that already ends in an offset cannot also parse with a 'Z' appended, so ``timestamp``'s
    19-character path would have returned this same value.
    """
    try:
        dt = _fromiso(value)
    except (TypeError, ValueError):
        return timestamp(value, name)
    return dt if dt.tzinfo is _UTC else timestamp(value, name)


def optional_timestamp(value: Any, name: str) -> datetime | None:
    return None if value is None or value == "" else timestamp(value, name)


def body_dict(body: Any, *required: str) -> dict[str, Any]:
    """A page body that must be an object with ``required`` keys, else ``MalformedPage`` (retried)."""
    if not isinstance(body, dict):
        raise MalformedPage(f"expected a JSON object, got {type(body).__name__}")
    missing = [k for k in required if k not in body]
    if missing:
        raise MalformedPage(f"page lacks {', '.join(missing)}")
    return body


def body_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedPage(f"{where} must be a JSON array, got {type(value).__name__}")
    return value
