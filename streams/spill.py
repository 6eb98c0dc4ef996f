"""A mapping that keeps its most recently used values in memory and the rest in a local RocksDB.

Stage 1 keeps one aggregate per contact of each owned partition. Contacts are
many (a sender's whole list), so holding them all in memory makes a worker's
memory grow with the list. ``SpillingDict`` holds at most ``capacity`` values
as objects (least recently used first out); an evicted value is encoded and
written to a RocksDB of its own, and read back (decoded) when it is used again.

The spill is disposable: a partition's views are rebuilt from the message
table whenever the partition is assigned, so the spill has no changelog, no
write-ahead log, and is deleted with its view (and at start, what a killed
worker left behind). Values are handed out by reference and mutated in place
by the caller; that is safe because a value only leaves memory when another
key is read or written, and by then the caller is done with it (it is written
back as it is at eviction).
"""

from __future__ import annotations

import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

import rocksdict

from mailpulse.streams.rocksdb_memory import MemoryBudget

__all__ = ["SpillingDict"]

V = TypeVar("V")


class SpillingDict(Generic[V]):
    """``str`` keys -> values: the ``capacity`` most recently used in memory, the others in ``path``."""

    def __init__(
        self,
        path: Path,
        capacity: int,
        encode: Callable[[V], bytes],
        decode: Callable[[bytes], V],
        *,
        options: Callable[[], rocksdict.Options] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.path = path
        self.capacity = capacity
        self._encode = encode
        self._decode = decode
        #: The worker's shared budget (streams/rocksdb_memory.py); alone, a small one of its own.
        self._options = options or MemoryBudget(16, 4).options
        self._resident: OrderedDict[str, V] = OrderedDict()
        # Every key is either resident or in the spill, never both (a value read back is deleted
        # from the spill), so the spill needs no in-memory key set (which would grow with the keys).
        self._spilled = 0
        self.spills = 0  # values written out
        self.loads = 0  # values read back
        self._db = self._open()

    def _open(self) -> rocksdict.Rdict:
        shutil.rmtree(self.path, ignore_errors=True)
        options = self._options()
        db = rocksdict.Rdict(str(self.path), options=options)
        write_options = rocksdict.WriteOptions()
        write_options.disable_wal = True  # disposable: rebuilt from the message table on assignment
        db.set_write_options(write_options)
        return db

    # -- mapping -----------------------------------------------------------

    def get(self, key: str) -> V | None:
        value = self._resident.get(key)
        if value is not None:
            self._resident.move_to_end(key)
            return value
        if not self._spilled:
            return None
        raw = self._unspill(key)
        if raw is None:
            return None
        value = self._decode(raw)
        self.loads += 1
        self._hold(key, value)
        return value

    def get_or_add(self, key: str, make: Callable[[], V]) -> V:
        """``key``'s value, or ``make()`` stored under it: one lookup in the spill, not two."""
        value = self.get(key)  # read back (and out of the spill) if it was there
        if value is None:
            value = make()
            self._hold(key, value)
        return value

    def __setitem__(self, key: str, value: V) -> None:
        if key not in self._resident and self._spilled:
            self._unspill(key)
        self._hold(key, value)

    def __delitem__(self, key: str) -> None:
        if self._resident.pop(key, None) is None and (not self._spilled or self._unspill(key) is None):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if key in self._resident:
            return True
        return bool(self._spilled) and isinstance(key, str) and self._db.get(key.encode()) is not None

    def __len__(self) -> int:
        return len(self._resident) + self._spilled

    def __iter__(self) -> Iterator[str]:
        """Every key (a snapshot: safe to change the mapping while iterating)."""
        spilled = [k.decode() for k in self._db.keys()] if self._spilled else []
        return iter([*self._resident, *spilled])

    def resident_keys(self) -> list[str]:
        """The keys held in memory (what an in-memory sweep can visit without reading the spill)."""
        return list(self._resident)

    def clear(self) -> None:
        self._resident.clear()
        if self._spilled:
            self._db.close()
            self._spilled = 0
            self._db = self._open()

    def close(self) -> None:
        """Drop everything, memory and disk (the view is gone)."""
        self._resident.clear()
        self._spilled = 0
        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)

    # -- internals ---------------------------------------------------------

    def _hold(self, key: str, value: V) -> None:
        resident = self._resident
        resident[key] = value
        resident.move_to_end(key)
        while len(resident) > self.capacity:
            old_key, old_value = resident.popitem(last=False)
            self._db.put(old_key.encode(), self._encode(old_value))
            self._spilled += 1
            self.spills += 1

    def _unspill(self, key: str) -> bytes | None:
        """Take ``key``'s value out of the spill (None: it is not there)."""
        raw_key = key.encode()
        raw = self._db.get(raw_key)
        if raw is not None:
            self._db.delete(raw_key)
            self._spilled -= 1
        return raw
