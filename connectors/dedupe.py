"""What is already on the topics, so that re-reads publish only new facts.

``EventIndex``: event ids published within the lookback window (with their
``occurred_at``), bounded by evicting what no re-read can return any more.
``ChangeIndex``: a short digest of the latest value per key of a compacted
topic (contacts, campaigns, calendar, usage), so unchanged records are not
republished. Both are rebuilt from Kafka at start (``mailpulse.connectors.state``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

__all__ = ["EventIndex", "ChangeIndex", "content_digest"]


class EventIndex:
    """event_id -> occurred_at (unix seconds)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, event_id: str, occurred_at: float) -> None:
        self._seen[event_id] = occurred_at

    def update(self, items: Iterable[tuple[str, float]]) -> None:
        self._seen.update(items)

    def evict_before(self, horizon: float) -> int:
        """Forget facts that occurred before ``horizon``: no re-read can return them."""
        old = [k for k, t in self._seen.items() if t < horizon]
        for k in old:
            del self._seen[k]
        return len(old)


def content_digest(value: Mapping[str, Any]) -> bytes:
    """8-byte digest of a record's JSON form without ``observed_at`` (which changes on every read)."""
    body = {k: v for k, v in value.items() if k != "observed_at"}
    return hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=8).digest()


class ChangeIndex:
    """key -> digest of the latest value on a compacted topic."""

    __slots__ = ("_digests",)

    def __init__(self) -> None:
        self._digests: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._digests)

    def __contains__(self, key: object) -> bool:
        return key in self._digests

    def changed(self, key: str, digest: bytes) -> bool:
        return self._digests.get(key) != digest

    def set(self, key: str, digest: bytes | None) -> None:
        if digest is None:
            self._digests.pop(key, None)
        else:
            self._digests[key] = digest

    def keys(self) -> Iterator[str]:
        return iter(self._digests)
