"""The Dockerfile's structure, read as text (no container engine runs in the tests).

tests/test_packaging.py proves the wheel the builder stage makes; here: a
multi-stage build whose final stage is a slim Python 3.11+, runs as a fixed
non-root uid (the one the Helm chart's securityContext names), holds no
compiler, declares the state volume and has ``mailpulse`` as its entrypoint.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
STATE_DIR = "/var/lib/mailpulse"
COMPILERS = ("build-essential", "gcc", "g++", "clang", "cc", "make", "python3-dev", "libc6-dev")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each a list of (INSTRUCTION, arguments)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif keyword == "ARG" and not stages:
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def _resolve(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def test_is_a_multi_stage_build_whose_builder_makes_the_wheel(dockerfile):
    _, stages = dockerfile
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    builder = stages[0]
    runs = " ".join(builder.all("RUN"))
    assert re.search(r"pip wheel\b[^&;]*--no-deps", runs), (
        "the builder builds mailpulse's wheel with pip wheel --no-deps"
    )
    final = stages[-1]
    copies_from_builder = [a for a in final.all("COPY") if f"--from={builder.name}" in a]
    mounts_from_builder = [a for a in final.all("RUN") if f"from={builder.name}" in a]
    assert copies_from_builder or mounts_from_builder, "the runtime stage installs what the builder built"


def test_final_stage_is_a_slim_python_3_11_or_newer(dockerfile):
    args, stages = dockerfile
    base = _resolve(stages[-1].base, args)
    m = re.fullmatch(r"(?:docker\.io/)?(?:library/)?python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", base)
    assert m, f"final stage base {base!r} is not a python:3.x-slim image"
    assert (int(m.group(1)), int(m.group(2))) >= (3, 11)


def test_final_stage_runs_as_a_fixed_non_root_user(dockerfile):
    _, stages = dockerfile
    users = stages[-1].all("USER")
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]!r}: a numeric, non-zero uid (runAsNonRoot checks it)"
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_final_stage_holds_no_compiler(dockerfile):
    _, stages = dockerfile
    for kind in ("RUN", "ENV", "COPY"):
        for args in stages[-1].all(kind):
            words = set(re.split(r"[\s;&|=]+", args))
            found = words.intersection(COMPILERS)
            assert not found, f"final stage {kind} installs {sorted(found)}: compilers belong in the builder only"


def test_entrypoint_is_mailpulse(dockerfile):
    _, stages = dockerfile
    entrypoints = stages[-1].all("ENTRYPOINT")
    assert entrypoints, "the final stage has an ENTRYPOINT"
    assert json.loads(entrypoints[-1]) == ["mailpulse"], "exec form, so signals reach mailpulse (a clean group leave)"


def test_state_directory_is_a_volume(dockerfile):
    _, stages = dockerfile
    volumes = stages[-1].all("VOLUME")
    declared = [v for args in volumes for v in (json.loads(args) if args.startswith("[") else args.split())]
    assert STATE_DIR in declared


def test_builder_copies_every_folder_the_wheel_is_built_from(dockerfile):
    _, stages = dockerfile
    copied: set[str] = set()
    for args in stages[0].all("COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        for src in words[:-1]:
            assert (ROOT / src).exists(), f"COPY {src}: no such path in the repository"
            copied.add(src.rstrip("/"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = set(project["tool"]["setuptools"]["package-dir"].values()) | {
        "pyproject.toml",
        project["project"]["readme"],
    }
    assert needed <= copied, f"the builder does not copy {sorted(needed - copied)}"


def test_dockerignore_keeps_the_local_venv_and_git_out():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var"} <= ignored
    copied = {"pyproject.toml", "README.md", "mailpulse", "topics", "connectors", "streams"}
    assert not copied & ignored, "a path the builder copies is ignored"


def test_helm_chart_runs_the_images_uid(dockerfile):
    _, stages = dockerfile
    uid, _, gid = stages[-1].all("USER")[-1].partition(":")
    values = yaml.safe_load((ROOT / "helm" / "mailpulse" / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["fsGroup"] == int(gid or uid)
