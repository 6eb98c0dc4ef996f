"""Campaign and contact aggregates as a materialised view of message states.

Stage 1 (one per events partition) keeps, in memory, the sums of the
contributions of the messages that live in its partition (``PartitionView``):
when a message's state changes, the old contribution is subtracted and the new
one added; when the partition is assigned, the view is rebuilt from the
message-state table, so a replayed event can never be counted twice. The view
publishes each changed aggregate as an *absolute* partial, stamped with a
version ``(epoch, seq)``: ``epoch`` is the wall-clock ms at which this owner
rebuilt the partition, ``seq`` grows with every change.

Stage 2 (keyed by campaign / contact) keeps, per key, the latest partial of
every source partition (``merge_partial``: a higher version wins, so a stale or
replayed partial changes nothing) and sums them (``combine``).

Everything here is pure or in-memory; the Faust agents do the I/O. Partials
are ``Partial`` dicts with full field names in code; on the partials topics
and in the stage-2 tables they keep the compact keys of the deployed format,
converted in one place (the "Wire format" section at the end).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypedDict, TypeVar

import orjson

from mailpulse.streams.reducers import (
    COUNT_FIELDS,
    FLAG_FIELDS,
    Contribution,
    MessageState,
    contribution,
)
from mailpulse.streams.spill import SpillingDict

__all__ = [
    "WIRE_KEYS",
    "HOUR_MS",
    "CONTACT_HOURLY_RETENTION_MS",
    "HOURLY_RETENTION_MS",
    "STATE_CACHE_SIZE",
    "STATUSES",
    "Aggregate",
    "Combined",
    "Partial",
    "PartitionView",
    "Stage2Value",
    "combine",
    "decode_aggregate",
    "decode_bundle",
    "encode_aggregate",
    "decode_value",
    "encode_bundle",
    "encode_value",
    "merge_partial",
]

HOUR_MS = 3_600_000
#: Hourly campaign windows are kept for 48 h (by wall clock), then dropped.
HOURLY_RETENTION_MS = 48 * HOUR_MS
#: A contact's hourly rows serve only the mailbox-provider windows (the current hour back to 23 hours
#: before it): kept 25 h, so a contact carries, publishes and stage 2 sums no row nobody reads.
CONTACT_HOURLY_RETENTION_MS = 25 * HOUR_MS
STATUSES = ("active", "bounced", "complained", "unsubscribed")
_NO_STATUS = (None, None, None, None)
_NF = len(FLAG_FIELDS)
#: Decoded message states kept in memory per partition view (least recently
#: used dropped first), so a message seen again soon skips the RocksDB read, the
#: JSON decode and its old contribution. A cached state of a few events with its
#: contribution takes ~2.8 KB (tracemalloc, generated events), so a full cache
#: is ~5.6 MB per partition, ~46 MB for 8 (halved from 4,096 with the other
#: memory defaults; measured in docs/streams.md). The cache goes with the view (on
#: revoke), so no state outlives a rebalance.
STATE_CACHE_SIZE = 2048
#: Contacts whose expired hourly rows one publish tick drops (per partition).
CONTACT_SWEEP = 2000
_NC = len(COUNT_FIELDS)


class Partial(TypedDict, total=False):
    """One source partition's sums for one campaign or contact: what stage 1 publishes, stage 2 keeps."""

    #: The events partition whose messages these are.
    partition: int
    #: ``[epoch, seq]``: the newer partial of a partition wins (see the module docstring).
    version: list[int]
    provider: str
    #: Messages counted; 0 for an aggregate whose messages all moved away (a tombstone keeps only
    #: partition, version and messages).
    messages: int
    #: ``COUNT_FIELDS`` order.
    counts: list[int]
    first_at: int | None
    last_at: int | None
    #: Hour start (epoch ms, as a string: a JSON key) -> flag counts (``FLAG_FIELDS`` order): campaigns for
    #: the hourly answers, contacts for the mailbox-provider windows.
    hourly: dict[str, list[int]]
    #: Contacts only.
    last_opened_at: int | None
    last_clicked_at: int | None
    #: Latest time each of ``STATUSES`` applied.
    status_at: list[int | None]
    #: The contact's address where its events carried one (the mailbox-provider figures).
    email: str


class Stage2Value(TypedDict, total=False):
    """A campaign's or contact's value in the stage-2 table."""

    #: Source partition (as a string: a JSON key) -> its newest partial.
    partials: dict[str, Partial]
    #: Campaigns: ``name``, ``subject``, ``send_time`` from the campaigns topic; contacts: ``email``
    #: from the contacts topic (never served by the API).
    meta: dict[str, Any] | None


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a <= b else b


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


V = TypeVar("V")


def _dict_get_or_add(table: dict[str, V]) -> Callable[[str, Callable[[], V]], V]:
    """``SpillingDict.get_or_add`` for a plain dict."""

    def get_or_add(key: str, make: Callable[[], V]) -> V:
        value = table.get(key)
        if value is None:
            value = table[key] = make()
        return value

    return get_or_add


class Aggregate:
    """Sums of message contributions for one campaign or contact, in one partition."""

    __slots__ = (
        "provider",
        "messages",
        "counts",
        "first_at",
        "last_at",
        "last_opened_at",
        "last_clicked_at",
        "status_at",
        "hourly",
        "email",
    )

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.messages = 0
        self.counts = [0] * _NC
        # min/max fields only grow while a message keeps its key (its state only
        # gains facts); a message moving to another key leaves them as they were.
        self.first_at: int | None = None
        self.last_at: int | None = None
        self.last_opened_at: int | None = None
        self.last_clicked_at: int | None = None
        self.status_at: list[int | None] = [None, None, None, None]
        self.hourly: dict[int, list[int]] | None = None
        #: A contact's address, where its messages' events carried one (smallest seen; it never moves away).
        self.email: str | None = None

    def add(self, c: Contribution, sign: int, *, hourly: bool, horizon: int) -> None:
        self.messages += sign
        counts = self.counts
        for i, v in c.nonzero:
            counts[i] += sign * v
        if hourly:
            if self.hourly is None:
                self.hourly = {}
            h = self.hourly
            for i, hour in c.hours:
                if hour < horizon:
                    continue
                row = h.get(hour)
                if row is None:
                    if sign < 0:
                        continue  # the window expired since it was counted
                    row = h[hour] = [0] * _NF
                row[i] += sign
                if sign < 0 and not any(row):
                    del h[hour]
        if sign > 0:
            self._fold(c)

    def _fold(self, c: Contribution) -> None:
        # min/max fields only grow while a message keeps its key (its state only
        # gains facts), so folding in the new contribution is all a change needs.
        # (Written out: this runs for every changed message.)
        _, _, first_at, last_at, last_opened_at, last_clicked_at, status_at = c[:7]
        if first_at is not None and (self.first_at is None or first_at < self.first_at):
            self.first_at = first_at
        if last_at is not None and (self.last_at is None or last_at > self.last_at):
            self.last_at = last_at
        if last_opened_at is not None and (self.last_opened_at is None or last_opened_at > self.last_opened_at):
            self.last_opened_at = last_opened_at
        if last_clicked_at is not None and (self.last_clicked_at is None or last_clicked_at > self.last_clicked_at):
            self.last_clicked_at = last_clicked_at
        email = c.email
        if email is not None and (self.email is None or email < self.email):
            self.email = email
        if status_at != _NO_STATUS:
            sa = self.status_at
            for i, t in enumerate(status_at):
                if t is not None and (sa[i] is None or t > sa[i]):  # type: ignore[operator]
                    sa[i] = t

    def move(self, old: Contribution, new: Contribution, *, hourly: bool, horizon: int) -> None:
        """The same as ``add(old, -1)`` then ``add(new, +1)`` for a message that keeps this key.

        Only the counters and hourly cells whose value changed are touched:
        the message count is unchanged, and a flag whose time did not move
        would be taken out of its hour and put back.
        """
        counts = self.counts
        oc, nc = old.counts, new.counts
        if oc != nc:
            for i in range(_NC):
                d = nc[i] - oc[i]
                if d:
                    counts[i] += d
        if hourly:
            ot, nt = old.times, new.times
            if ot != nt:
                if self.hourly is None:
                    self.hourly = {}
                h = self.hourly
                for i in range(_NF):
                    t0, t1 = ot[i], nt[i]
                    if t0 == t1:
                        continue
                    if t0 is not None:
                        hour = t0 - t0 % HOUR_MS
                        if hour >= horizon:
                            row = h.get(hour)
                            if row is not None:
                                row[i] -= 1
                                if not any(row):
                                    del h[hour]
                    if t1 is not None:
                        hour = t1 - t1 % HOUR_MS
                        if hour >= horizon:
                            row = h.get(hour)
                            if row is None:
                                row = h[hour] = [0] * _NF
                            row[i] += 1
        self._fold(new)

    def expire(self, horizon: int) -> None:
        if self.hourly:
            for hour in [h for h in self.hourly if h < horizon]:
                del self.hourly[hour]

    def to_partial(self, partition: int, version: tuple[int, int], *, kind: str) -> Partial:
        out: Partial = {
            "partition": partition,
            "version": list(version),
            "provider": self.provider,
            "messages": self.messages,
            "counts": self.counts,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }
        out["hourly"] = {str(k): v for k, v in (self.hourly or {}).items()}
        if kind == "contact":
            out["last_opened_at"] = self.last_opened_at
            out["last_clicked_at"] = self.last_clicked_at
            out["status_at"] = self.status_at
            if self.email is not None:
                out["email"] = self.email
        return out


def encode_aggregate(agg: Aggregate) -> bytes:
    """An aggregate as the contact spill stores it (local and disposable: no compatibility promise)."""
    return orjson.dumps(
        [
            agg.provider,
            agg.messages,
            agg.counts,
            agg.first_at,
            agg.last_at,
            agg.last_opened_at,
            agg.last_clicked_at,
            agg.status_at,
            list(agg.hourly.items()) if agg.hourly else None,
            agg.email,
        ]
    )


def decode_aggregate(raw: bytes) -> Aggregate:
    provider, messages, counts, first_at, last_at, last_opened_at, last_clicked_at, status_at, hourly, email = (
        orjson.loads(raw)
    )
    agg = Aggregate(provider)
    agg.messages = messages
    agg.counts = counts
    agg.first_at, agg.last_at = first_at, last_at
    agg.last_opened_at, agg.last_clicked_at = last_opened_at, last_clicked_at
    agg.status_at = status_at
    agg.hourly = None if hourly is None else {hour: row for hour, row in hourly}
    agg.email = email
    return agg


ContactStore = dict[str, Aggregate] | SpillingDict[Aggregate]


class PartitionView:
    """Stage 1: the campaign and contact aggregates of one events partition."""

    def __init__(self, partition: int, epoch: int, contacts: ContactStore | None = None) -> None:
        self.partition = partition
        self.epoch = epoch
        self.seq = 0
        self.campaigns: dict[str, Aggregate] = {}
        #: A dict, or a ``SpillingDict`` that keeps the recently used contacts in memory and the
        #: rest on local disk (``worker.contact_cache_size``): contacts are many, campaigns few.
        self.contacts: ContactStore = {} if contacts is None else contacts
        self.dirty_campaigns: set[str] = set()
        self.dirty_contacts: set[str] = set()
        #: Message key -> its state as written to the message table (an LRU, see STATE_CACHE_SIZE).
        self.states: OrderedDict[bytes, MessageState] = OrderedDict()
        #: Contacts still to visit in the current expiry sweep.
        self._sweep: list[str] = []
        #: Whether the partition may hold sealed-message markers (stage 1 then looks for one
        #: before counting a message it has no state for; see mailpulse.streams.sealing).
        self.markers = False

    def cached_state(self, key: bytes) -> MessageState | None:
        """The message's state if it is in the cache (the table holds the same)."""
        state = self.states.get(key)
        if state is not None:
            self.states.move_to_end(key)
        return state

    def cache_state(self, key: bytes, state: MessageState) -> None:
        """Remember a state just read from or written to the message table."""
        states = self.states
        states[key] = state
        states.move_to_end(key)
        if len(states) > STATE_CACHE_SIZE:
            states.popitem(last=False)

    def apply(self, old: MessageState | None, new: MessageState, now_ms: int) -> None:
        """Move the aggregates from ``old`` (None: unseen) to ``new`` for one message."""
        new_c = contribution(new)
        if old is None:
            old_c = None
        else:
            old_c = contribution(old)
            if old_c == new_c:  # the keys are part of a contribution
                return  # a fact that changes no count, time or key (a second delivery report, a queued event)
        for table, dirty, nk, ok, horizon in (
            (
                self.campaigns,
                self.dirty_campaigns,
                new_c.campaign,
                None if old_c is None else old_c.campaign,
                now_ms - HOURLY_RETENTION_MS,
            ),
            # Contacts keep hourly windows too (a shorter span): the mailbox-provider windows are sums of them.
            (
                self.contacts,
                self.dirty_contacts,
                new_c.contact,
                None if old_c is None else old_c.contact,
                now_ms - CONTACT_HOURLY_RETENTION_MS,
            ),
        ):
            if old_c is not None and ok is not None:
                agg = table.get(ok)
                if agg is not None:
                    if ok == nk:
                        agg.move(old_c, new_c, hourly=True, horizon=horizon)
                        dirty.add(ok)
                        continue
                    agg.add(old_c, -1, hourly=True, horizon=horizon)
                    dirty.add(ok)
            if nk is not None:
                agg = table.get(nk)
                if agg is None:
                    agg = table[nk] = Aggregate(new.provider)
                agg.add(new_c, +1, hourly=True, horizon=horizon)
                dirty.add(nk)

    def rebuild(
        self,
        states: Iterable[MessageState],
        now_ms: int,
        bases: Iterable[tuple[str, str, Aggregate]] = (),
    ) -> None:
        """Recompute every aggregate from the message states (on assignment).

        ``bases``: (kind, key, aggregate) of the sealed messages' sums (``mailpulse.streams.sealing``),
        which the live messages' contributions are added to.
        """
        self.campaigns.clear()
        self.contacts.clear()
        for kind, key, base in bases:
            (self.campaigns if kind == "campaign" else self.contacts)[key] = base
        # apply(None, state) written out for a state new to the view: no old contribution to
        # compare or take back, and one lookup per key (a spilled contact is read once, not twice).
        campaigns = self.campaigns
        contacts = self.contacts
        get_contact = contacts.get_or_add if isinstance(contacts, SpillingDict) else _dict_get_or_add(contacts)
        campaign_horizon = now_ms - HOURLY_RETENTION_MS
        contact_horizon = now_ms - CONTACT_HOURLY_RETENTION_MS
        for st in states:
            c = contribution(st)
            if c.campaign is not None:
                agg = campaigns.get(c.campaign)
                if agg is None:
                    agg = campaigns[c.campaign] = Aggregate(st.provider)
                agg.add(c, +1, hourly=True, horizon=campaign_horizon)
            if c.contact is not None:
                get_contact(c.contact, functools.partial(Aggregate, st.provider)).add(
                    c, +1, hourly=True, horizon=contact_horizon
                )
        # After a rebuild every key is published once, so stage 2 holds this owner's view.
        self.dirty_campaigns = set(self.campaigns)
        self.dirty_contacts = set(self.contacts)

    def expire(self, now_ms: int) -> None:
        """Drop hourly rows older than the retention: every campaign, and a slice of the contacts.

        Contacts are many: each call sweeps the next ``CONTACT_SWEEP`` of them, so a
        row outlives the retention by at most one sweep of the partition's contacts.
        """
        horizon = now_ms - HOURLY_RETENTION_MS
        for agg in self.campaigns.values():
            agg.expire(horizon)
        horizon = now_ms - CONTACT_HOURLY_RETENTION_MS
        if not self._sweep:
            # Spilled contacts are not visited (that would read them all back): their expired rows
            # cost no memory, and stage 2 ignores rows past the retention when they are published.
            contacts_held = self.contacts
            self._sweep = (
                contacts_held.resident_keys() if isinstance(contacts_held, SpillingDict) else list(contacts_held)
            )
        batch, self._sweep = self._sweep[-CONTACT_SWEEP:], self._sweep[:-CONTACT_SWEEP]
        contacts = self.contacts
        for key in batch:
            contact = contacts.get(key)
            if contact is not None:
                contact.expire(horizon)

    def close(self) -> None:
        """The view is given up: free what it holds (a spill's files too)."""
        if isinstance(self.contacts, SpillingDict):
            self.contacts.close()
        else:
            self.contacts.clear()
        self.campaigns.clear()
        self.states.clear()

    def take_dirty(
        self, contact_limit: int | None = None
    ) -> tuple[list[tuple[str, Partial]], list[tuple[str, Partial]]]:
        """Partials of the aggregates changed since the last call; forgets empty aggregates.

        At most ``contact_limit`` contacts are taken (the others stay changed for the next
        call): after an assignment every contact of the partition is to be published, and
        one list of them all would cost memory in proportion to the contacts.
        """
        out: list[list[tuple[str, Partial]]] = [[], []]
        for i, (table, dirty, kind, limit) in enumerate(
            (
                (self.campaigns, self.dirty_campaigns, "campaign", None),
                (self.contacts, self.dirty_contacts, "contact", contact_limit),
            )
        ):
            if limit is None or len(dirty) <= limit:
                keys, remaining = list(dirty), set()
            else:
                # Popped, not copied: a view with 200,000 changed contacts is taken a slice at a time.
                keys, remaining = [dirty.pop() for _ in range(limit)], dirty
            for key in keys:
                agg = table.get(key)
                if agg is None:
                    continue
                self.seq += 1
                out[i].append((key, agg.to_partial(self.partition, (self.epoch, self.seq), kind=kind)))
                if agg.messages <= 0:
                    del table[key]
            if kind == "campaign":
                self.dirty_campaigns = remaining
            else:
                self.dirty_contacts = remaining
        return out[0], out[1]


# ---------------------------------------------------------------------------
# Stage 2


def merge_partial(value: Stage2Value | None, partial: Partial) -> Stage2Value | None:
    """The stage-2 value with ``partial`` merged in, or None when it is not newer than what is held.

    A partial of an empty aggregate (no messages) leaves a tombstone in place
    of that partition's entry.
    """
    partials: Mapping[str, Partial] = (value or {}).get("partials") or {}
    p = str(partial["partition"])
    held = partials.get(p)
    if held is not None and tuple(held["version"]) >= tuple(partial["version"]):
        return None
    new_partials = dict(partials)
    if partial["messages"] <= 0:
        # Keep a tombstone with the version so an older partial cannot resurrect it.
        new_partials[p] = {"partition": partial["partition"], "version": partial["version"], "messages": 0}
    else:
        new_partials[p] = Partial(**partial)
    out = Stage2Value(**(value or {}))
    out["partials"] = new_partials
    return out


class Combined:
    """The sum of a key's partials (what the API answers)."""

    __slots__ = (
        "provider",
        "messages",
        "counts",
        "first_at",
        "last_at",
        "last_opened_at",
        "last_clicked_at",
        "status_at",
        "hourly",
    )

    def __init__(self) -> None:
        self.provider: str | None = None
        self.messages = 0
        self.counts = [0] * _NC
        self.first_at: int | None = None
        self.last_at: int | None = None
        self.last_opened_at: int | None = None
        self.last_clicked_at: int | None = None
        self.status_at: list[int | None] = [None, None, None, None]
        self.hourly: dict[int, list[int]] = {}

    @property
    def status(self) -> str:
        """The latest status that applies; on a tie the more severe one."""
        best, best_t = "active", None
        for name, t in zip(STATUSES, self.status_at, strict=True):
            if t is not None and (best_t is None or t >= best_t):
                best, best_t = name, t
        return best


def combine(value: Stage2Value | None, now_ms: int, *, hourly: bool = True) -> Combined | None:
    """Sum the partials of a stage-2 value; None when no partition holds a message of the key.

    ``hourly=False`` leaves the hourly rows out (a contact's answer shows none).
    """
    if not value:
        return None
    out = Combined()
    horizon = now_ms - HOURLY_RETENTION_MS
    for part in (value.get("partials") or {}).values():
        if part.get("messages", 0) <= 0:
            continue
        out.provider = out.provider or part.get("provider")
        out.messages += part["messages"]
        for i, v in enumerate(part["counts"]):
            out.counts[i] += v
        out.first_at = _min(out.first_at, part.get("first_at"))
        out.last_at = _max(out.last_at, part.get("last_at"))
        out.last_opened_at = _max(out.last_opened_at, part.get("last_opened_at"))
        out.last_clicked_at = _max(out.last_clicked_at, part.get("last_clicked_at"))
        for i, t in enumerate(part.get("status_at") or ()):
            out.status_at[i] = _max(out.status_at[i], t)
        if not hourly:
            continue
        for hour_s, row in (part.get("hourly") or {}).items():
            hour = int(hour_s)
            if hour < horizon:
                continue
            acc = out.hourly.get(hour)
            if acc is None:
                out.hourly[hour] = list(row)
            else:
                for i, v in enumerate(row):
                    acc[i] += v
    if out.messages <= 0:
        return None
    return out


# ---------------------------------------------------------------------------
# Wire format: the one place partials change names
#
# On the partials topics and in the stage-2 tables (and their changelogs) a
# partial keeps the compact keys it has always had there: every partial
# crosses a topic and is stored once per source partition, and running
# deployments hold these records. Code sees ``Partial``'s full names; the four
# functions below convert at the edges (stage 1's publication, stage 2's
# reading of a bundle, the stage-2 table's reads and writes).

#: ``Partial`` field -> its key on the wire.
WIRE_KEYS: dict[str, str] = {
    "partition": "p",
    "version": "v",
    "provider": "provider",
    "messages": "n",
    "counts": "c",
    "first_at": "f",
    "last_at": "l",
    "hourly": "h",
    "last_opened_at": "lo",
    "last_clicked_at": "lc",
    "status_at": "s",
    "email": "e",
}
_FROM_WIRE = {wire: name for name, wire in WIRE_KEYS.items()}


def _to_wire(partial: Partial) -> dict[str, Any]:
    return {WIRE_KEYS.get(name, name): v for name, v in partial.items()}


def _from_wire(wire: Any) -> Partial:
    if type(wire) is not dict:
        return wire  # malformed: merge_partial rejects it (and the record's other partials still count)
    return {_FROM_WIRE.get(k, k): v for k, v in wire.items()}  # type: ignore[return-value]


def encode_bundle(items: Iterable[tuple[str, Partial]]) -> bytes:
    """A partials-topic record value: ``[[key, partial], ...]``."""
    return orjson.dumps([(key, _to_wire(partial)) for key, partial in items])


def decode_bundle(raw: bytes) -> Iterator[tuple[str, Partial]]:
    """The ``(key, partial)`` pairs of a partials-topic record value (a malformed pair raises when reached)."""
    for key, partial in orjson.loads(raw):
        yield key, _from_wire(partial)


def encode_value(value: Stage2Value) -> bytes:
    """A stage-2 table value."""
    partials = value.get("partials")
    if not partials:
        return orjson.dumps(value)
    return orjson.dumps({**value, "partials": {p: _to_wire(partial) for p, partial in partials.items()}})


def decode_value(raw: bytes | None) -> Stage2Value | None:
    """A stage-2 table value (None for none)."""
    if raw is None:
        return None
    value = orjson.loads(raw)
    partials = value.get("partials")
    if partials:
        value["partials"] = {p: _from_wire(wire) for p, wire in partials.items()}
    return value
