"""The worker's glibc malloc settings (mailpulse.streams.malloc)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from mailpulse.streams.malloc import WORKER_MALLOC, tune_malloc

on_glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt"
)


@on_glibc
def test_glibc_accepts_every_worker_setting() -> None:
    # In a process of its own: the settings would otherwise stay with the test session.
    code = "import json; from mailpulse.streams.malloc import tune_malloc; print(json.dumps(tune_malloc(environ={})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"M_TRIM_THRESHOLD": 128 * 1024, "M_MMAP_THRESHOLD": 128 * 1024, "M_ARENA_MAX": 2}


def test_a_malloc_environment_variable_wins_over_the_worker_setting() -> None:
    calls: list[tuple[int, int]] = []

    def mallopt(param: int, value: int) -> int:
        calls.append((param, value))
        return 1

    applied = tune_malloc(environ={"MALLOC_ARENA_MAX": "4"}, mallopt=mallopt)
    assert "M_ARENA_MAX" not in applied
    assert calls == [(s.param, s.value) for s in WORKER_MALLOC if s.name != "M_ARENA_MAX"]


def test_a_refused_setting_is_an_error_naming_it() -> None:
    with pytest.raises(OSError, match="M_TRIM_THRESHOLD"):
        tune_malloc(environ={}, mallopt=lambda param, value: 0)
