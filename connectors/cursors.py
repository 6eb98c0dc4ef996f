"""Where a pass starts, and how a stream's cursor is stored: one rule for every stream.

``pass_start`` is the single place that turns a stored cursor into the first provider
time a pass reads; the streams only say how their cursor holds a time. ``LiveCursor``
and ``BackfillCursor`` are the two ways a ``StreamRunner`` stores that cursor in the
checkpoints topic: as is (``connect``), or inside the backfill's window (``backfill``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from mailpulse.topics.events import format_timestamp

__all__ = ["PassKind", "pass_start", "CursorForm", "LiveCursor", "BackfillCursor"]

_NO_OVERLAP = timedelta(0)


class PassKind(StrEnum):
    #: From the stored cursor onwards, every ``poll_interval``.
    POLL = "poll"
    #: The trailing ``lookback`` again (records that change after creation), every ``reconcile_interval``.
    RECONCILE = "reconcile"
    #: An explicit ``--since``/``--until`` window, with its own checkpoint and transactional id.
    BACKFILL = "backfill"


def pass_start(
    kind: PassKind,
    stored: datetime | None,
    window_start: datetime,
    *,
    overlap: timedelta = _NO_OVERLAP,
    floor_at_window: bool = False,
) -> datetime:
    """The first provider time a pass reads.

    ``stored``: the time the committed cursor stands at (None: never read).
    ``window_start``: where the pass's window begins (poll and reconcile: ``now - lookback``;
    backfill: ``--since``); a stream that never stored a cursor starts there.

    - poll: resume at the cursor, ``overlap`` earlier (rows that land a little after their
      timestamp); ``floor_at_window`` keeps it inside the lookback for APIs that are read
      one request per day, where catching up a long outage would cost a request per day.
    - reconcile: the whole window, or from the cursor if it lags behind the window.
    - backfill: resume at its own cursor (a resumed backfill re-reads nothing).
    """
    if stored is None:
        return window_start
    if kind is PassKind.POLL:
        start = stored - overlap
        return max(start, window_start) if floor_at_window else start
    if kind is PassKind.RECONCILE:
        return min(window_start, stored)
    return stored


class CursorForm(Protocol):
    """How a stream's cursor is kept in its checkpoint."""

    def adopt(self, stored: Any) -> Any:
        """The checkpoint read back at start, or None when it belongs to another run (start afresh)."""

    def unwrap(self, stored: Any) -> Any:
        """The stream's own cursor inside the checkpoint."""

    def wrap(self, cursor: Any, done: bool = False) -> Any:
        """The checkpoint for the stream's cursor (``done``: the pass read its whole window)."""

    def is_done(self, stored: Any) -> bool:
        """Whether the checkpoint marks a finished run, with nothing left to read."""


class LiveCursor:
    """``connect``: the checkpoint is the stream's cursor itself; a live stream is never done."""

    def adopt(self, stored: Any) -> Any:
        return stored

    def unwrap(self, stored: Any) -> Any:
        return stored

    def wrap(self, cursor: Any, done: bool = False) -> Any:
        return cursor

    def is_done(self, stored: Any) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class BackfillCursor:
    """``backfill``: ``{"since", "until", "cursor", "done"}`` under the stream's own ``.backfill`` key.

    A checkpoint of another window is ignored: backfilling a new window starts afresh, and
    running the same window again resumes it (or does nothing once it is done).
    """

    since: datetime | None
    until: datetime | None

    def _window(self) -> tuple[str | None, str | None]:
        return _iso(self.since), _iso(self.until)

    def _mine(self, stored: Any) -> bool:
        return isinstance(stored, dict) and (stored.get("since"), stored.get("until")) == self._window()

    def adopt(self, stored: Any) -> Any:
        return stored if self._mine(stored) else None

    def unwrap(self, stored: Any) -> Any:
        return stored.get("cursor") if self._mine(stored) else None

    def wrap(self, cursor: Any, done: bool = False) -> Any:
        since, until = self._window()
        return {"since": since, "until": until, "cursor": cursor, "done": done}

    def is_done(self, stored: Any) -> bool:
        return self._mine(stored) and bool(stored.get("done"))


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else format_timestamp(dt)
