"""Totals of a worker's stage-2 keys by group: per source (from campaigns) and per mailbox provider (from contacts).

Stage 2 holds, per campaign and per contact, the latest partial of every
events partition; a key's figures are the sum of its partials. A ``Rollup``
keeps, for one stage-2 partition, the sum of those partials by group:

* campaigns by ``(provider, source)``: the source's figures are the sum of its
  campaigns' (what ``GET /v1/campaigns`` lists), as Prometheus gauges;
* contacts by ``(provider, source, mailbox_provider)``: the mailbox provider of
  a contact's address (``MailboxClassifier``). The address comes from
  ``mailpulse.contacts.v1`` (joined in stage 2: the topic is keyed and
  partitioned like the contact partials), else from the events (``email`` of
  a partial), else from a key that is an address; ``unknown`` until one is known.
  When it arrives later, the contact's whole figures move from ``unknown`` to
  its group, so late metadata is counted once it comes, and never twice.

A replaced partial is taken out and the new one put in, so a replayed or stale
partial (which stage 2 ignores) changes nothing here either; each stage-2
partition belongs to exactly one worker, so the workers' shares add up to the
whole without overlap. A rollup is rebuilt from the table when its partition
is assigned and dropped when it is revoked. Pure and in-memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from operator import add, sub
from typing import Any

from mailpulse.streams.aggregates import HOUR_MS, HOURLY_RETENTION_MS
from mailpulse.streams.reducers import COUNT_FIELDS, FLAG_FIELDS

__all__ = ["UNKNOWN", "Group", "GroupTotals", "Rollup", "campaign_group", "contact_group", "windows_of"]

UNKNOWN = "unknown"
_NC = len(COUNT_FIELDS)
_NF = len(FLAG_FIELDS)

Group = tuple[str, ...]
#: A key's group, from its key and its stage-2 value (None: the key counts nowhere).
GroupOf = Callable[[str, Mapping[str, Any]], "Group | None"]


class GroupTotals:
    __slots__ = ("counts", "hourly")

    def __init__(self) -> None:
        self.counts = [0] * _NC
        #: Hour (epoch ms) -> FLAG_FIELDS counts of the flags that became true in it.
        self.hourly: dict[int, list[int]] = {}


def _live(value: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return [p for p in ((value or {}).get("partials") or {}).values() if p.get("messages", 0) > 0]


def _any_live(partials: Mapping[str, Mapping[str, Any]]) -> bool:
    return any(p.get("messages", 0) > 0 for p in partials.values())


def _provider(value: Mapping[str, Any] | None) -> str | None:
    for part in _live(value):
        provider = part.get("provider")
        if provider:
            return str(provider)
    return None


def _same_addresses(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(old.get(p, {}).get("email") == part.get("email") for p, part in new.items()) and old.keys() <= new.keys()


def campaign_group(key: str, value: Mapping[str, Any]) -> Group | None:
    provider = _provider(value)
    return None if provider is None else (provider, key.partition(":")[0])


def _provider_and_address(key: str, value: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The provider of the first live partial, and the contact's address (see ``contact_address``).

    One pass over the partials: this runs for every change of a contact.
    """
    provider = address = None
    for part in (value.get("partials") or {}).values():
        if part.get("messages", 0) > 0:
            if provider is None and part.get("provider"):
                provider = str(part["provider"])
            email = part.get("email")
            if isinstance(email, str) and (address is None or email < address):
                address = email
    meta = value.get("meta") or {}
    if isinstance(meta, Mapping) and isinstance(meta.get("email"), str) and meta["email"]:
        address = meta["email"]
    elif address is None:
        rest = key.partition(":")[2]
        address = rest if "@" in rest else None
    return provider, address


def contact_address(key: str, value: Mapping[str, Any]) -> str | None:
    """The contact's address: its metadata's, else the events' (smallest), else the key's when it is one."""
    return _provider_and_address(key, value)[1]


def contact_group(classify: Callable[[str | None], str]) -> GroupOf:
    def group(key: str, value: Mapping[str, Any]) -> Group | None:
        provider, address = _provider_and_address(key, value)
        if provider is None:
            return None
        return (provider, key.partition(":")[0], UNKNOWN if address is None else classify(address))

    return group


class Rollup:
    """The totals of one stage-2 partition's keys, by group."""

    def __init__(self, group_of: GroupOf, retention_ms: int = HOURLY_RETENTION_MS) -> None:
        self.group_of = group_of
        #: Hourly rows older than this are dropped (as stage 1 drops them from its aggregates).
        self.retention_ms = retention_ms
        self.groups: dict[Group, GroupTotals] = {}

    def _apply(self, group: Group, part: Mapping[str, Any] | None, sign: int, horizon: int) -> None:
        if part is None or part.get("messages", 0) <= 0:
            return
        totals = self.groups.get(group)
        if totals is None:
            if sign < 0:
                return
            totals = self.groups[group] = GroupTotals()
        # Element-wise at C speed (map over the fixed-length count lists): this runs for every new key.
        op = add if sign > 0 else sub
        counts = totals.counts
        counts[:] = map(op, counts, part["counts"])
        hourly = totals.hourly
        for hour_s, row in (part.get("hourly") or {}).items():
            hour = int(hour_s)
            if hour < horizon:
                continue  # expired: never added, or already dropped
            acc = hourly.get(hour)
            if acc is None:
                if sign < 0:
                    continue
                hourly[hour] = list(row)
                continue
            acc[:] = map(op, acc, row)
            if sign < 0 and not any(acc):
                del hourly[hour]
        if sign < 0 and not hourly and not any(counts):
            del self.groups[group]  # nothing left in it (its contacts moved to their group): no series

    def _move(
        self, group: Group, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, horizon: int
    ) -> None:
        """``_apply(before, -1)`` then ``_apply(after, +1)``, touching only what differs.

        A partial is replaced every time its events partition publishes the key again, and
        usually only the counters and the current hour's row moved: the rows that are equal
        in both (compared at C speed) are skipped instead of taken out and put back.
        """
        if before is None or after is None or before.get("messages", 0) <= 0 or after.get("messages", 0) <= 0:
            self._apply(group, before, -1, horizon)
            self._apply(group, after, +1, horizon)
            return
        totals = self.groups.get(group)
        if totals is None:  # not held (cannot happen while before is live): count after alone
            self._apply(group, after, +1, horizon)
            return
        old_counts, new_counts = before["counts"], after["counts"]
        if old_counts != new_counts:
            counts = totals.counts
            counts[:] = map(add, counts, map(sub, new_counts, old_counts))
        old_rows, new_rows = before.get("hourly") or {}, after.get("hourly") or {}
        if old_rows == new_rows:
            return
        hourly = totals.hourly
        for hour_s in old_rows.keys() | new_rows.keys():
            old_row, new_row = old_rows.get(hour_s), new_rows.get(hour_s)
            if old_row == new_row:
                continue
            hour = int(hour_s)
            if hour < horizon:
                continue  # expired: never added, or already dropped
            acc = hourly.get(hour)
            if acc is None:
                if new_row is None:
                    continue
                acc = hourly[hour] = [0] * _NF
                old_row = None  # as _apply: nothing held to take out
            if new_row is not None:
                acc[:] = map(add, acc, new_row)
            if old_row is not None:
                acc[:] = map(sub, acc, old_row)
            if not any(acc):
                del hourly[hour]

    def replace(self, key: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, now_ms: int) -> None:
        """Move the totals from ``key``'s old stage-2 value to its new one."""
        horizon = now_ms - self.retention_ms
        old_parts = (old or {}).get("partials") or {}
        new_parts = (new or {}).get("partials") or {}
        new_group = None if new is None else self.group_of(key, new)
        # The group only changes with what decides it (metadata, addresses, the first live partial):
        # most changes are one partition's new counts, and skip the second lookup.
        if old is not None and old.get("meta") == new.get("meta") and _same_addresses(old_parts, new_parts):  # type: ignore[union-attr]
            old_group = new_group if _any_live(old_parts) and _any_live(new_parts) else self.group_of(key, old)
        else:
            old_group = None if old is None else self.group_of(key, old)
        if old_group == new_group and old_group is not None:
            for p in old_parts.keys() | new_parts.keys():
                before, after = old_parts.get(p), new_parts.get(p)
                if before is not after:
                    self._move(old_group, before, after, horizon)
            return
        # The group changed (an address became known): move the key's whole figures.
        if old_group is not None:
            for part in old_parts.values():
                self._apply(old_group, part, -1, horizon)
        if new_group is not None:
            for part in new_parts.values():
                self._apply(new_group, part, +1, horizon)

    def rebuild(self, items: Iterable[tuple[str, Mapping[str, Any]]], now_ms: int) -> None:
        self.groups.clear()
        for key, value in items:
            self.replace(key, None, value, now_ms)

    def expire(self, now_ms: int) -> None:
        horizon = now_ms - self.retention_ms
        for totals in self.groups.values():
            for hour in [h for h in totals.hourly if h < horizon]:
                del totals.hourly[hour]


#: The exported windows: name -> hours back from the current one (0: the current hour).
WINDOWS: Mapping[str, range] = {"current_hour": range(0, 1), "previous_hour": range(1, 2), "last_24h": range(0, 24)}


def windows_of(hourly: Mapping[int, list[int]], now_ms: int, names: Iterable[str] = WINDOWS) -> dict[str, list[int]]:
    """FLAG_FIELDS sums of the hourly rows in each window (hours of event time, UTC)."""
    current = now_ms - now_ms % HOUR_MS
    out = {}
    for name in names:
        acc = [0] * _NF
        for back in WINDOWS[name]:
            row = hourly.get(current - back * HOUR_MS)
            if row is not None:
                for i, v in enumerate(row):
                    acc[i] += v
        out[name] = acc
    return out
