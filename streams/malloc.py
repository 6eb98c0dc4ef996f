"""glibc malloc settings for the worker: large, short-lived buffers go back to the system.

The worker's largest allocations live for one batch: fetched record sets, encoded
partials, merge buffers, changelog batches, most of them above 128 KiB. glibc serves
such a block with mmap at first, but raises its mmap threshold each time one is freed
(up to 32 MiB), after which they come from the heap; freeing them there leaves holes
that the process's RSS keeps. Fixing the mmap and trim thresholds at 128 KiB returns
every such block to the system when it is freed, and two arenas keep the threads
(RocksDB's, the executor's) from holding freed memory in arenas of their own.

Opt-in (``worker.malloc_tuning``): peak RSS is ~10% lower, at no measurable cost up to a
million events, but at the scale volume (a million contacts) the worker was 13-17% slower
and took 124-129 s instead of 83-87 s to recover from an empty data_dir (two runs each).
See docs/streams.md, *State, memory and retention*.

A ``MALLOC_*_`` environment variable that glibc reads itself (``MALLOC_ARENA_MAX``,
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) wins over the setting here.
On a C library other than glibc (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["MallocSetting", "WORKER_MALLOC", "tune_malloc"]

KIB = 1024


@dataclass(frozen=True)
class MallocSetting:
    """One ``mallopt`` parameter: its number in glibc's malloc.h, the value, the env var that overrides it."""

    name: str
    param: int
    value: int
    env: str


#: What the worker sets at start (glibc's numbers from malloc.h).
WORKER_MALLOC = (
    MallocSetting("M_TRIM_THRESHOLD", -1, 128 * KIB, "MALLOC_TRIM_THRESHOLD_"),
    MallocSetting("M_MMAP_THRESHOLD", -3, 128 * KIB, "MALLOC_MMAP_THRESHOLD_"),
    MallocSetting("M_ARENA_MAX", -8, 2, "MALLOC_ARENA_MAX"),
)


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def tune_malloc(
    settings: tuple[MallocSetting, ...] = WORKER_MALLOC,
    environ: Mapping[str, str] = os.environ,
    mallopt: Callable[[int, int], int] | None = None,
) -> dict[str, int]:
    """Apply ``settings`` not overridden in ``environ``; the names and values applied ({} off glibc).

    Raises ``OSError`` if glibc refuses one (``mallopt`` returns 0): a value out of range.
    """
    mallopt = mallopt or _glibc_mallopt()
    if mallopt is None:
        return {}
    applied = {}
    for s in settings:
        if s.env in environ:
            continue  # the operator's own setting, which glibc read at start
        if mallopt(s.param, s.value) != 1:
            raise OSError(f"glibc refused mallopt({s.name}, {s.value})")
        applied[s.name] = s.value
    return applied
