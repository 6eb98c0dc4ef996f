"""The built wheel is what a user installs: one top-level package, and it runs outside the checkout.

The wheel is built from this checkout and installed into a fresh virtualenv
(`--without-pip`, installed into with this venv's pip). Its dependencies are
borrowed from the test venv through a plain path in a ``.pth`` file (the test
venv's own ``.pth`` files, among them the editable install's finder, are not
processed that way), so the fresh venv resolves ``mailpulse`` only from the
wheel, and the test stays quick.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("mailpulse-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; returns its ``bin`` directory."""
    home = tmp_path_factory.mktemp("fresh-venv")
    venv.EnvBuilder(with_pip=False).create(home)
    python = home / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return home / "bin"


def _top_level(names: list[str]) -> set[str]:
    return {n.split("/", 1)[0] for n in names if "/" in n and ".dist-info/" not in n} | {
        n.removesuffix(".py") for n in names if "/" not in n and n.endswith(".py")
    }


def test_wheel_adds_mailpulse_as_its_only_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert _top_level(names) == {"mailpulse"}
    # What the worker and topics read at run time travels in the wheel.
    for data in ("mailpulse/streams/openapi.yaml", "mailpulse/topics/schemas/email-event.v1.json"):
        assert data in names, f"{data} is missing from the wheel"


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MAILPULSE_"))}
    return subprocess.run(
        [str(bin_dir / "mailpulse"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_installed_wheel_runs_its_commands_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    for args in (["--help"], ["worker", "--help"], ["connect", "--help"], ["topics", "create", "--help"]):
        done = _run(installed, *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "usage:" in done.stdout
    where = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import mailpulse.streams.schemas as s, mailpulse; print(mailpulse.__file__); s.load_openapi()",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    site = installed.parent / "lib"
    assert where.stdout.startswith(str(site)), f"mailpulse was imported from {where.stdout.strip()}, not the wheel"


def test_installed_wheel_validates_a_config_with_one_line(installed: Path, tmp_path: Path) -> None:
    bad = tmp_path / "mailpulse.yaml"
    bad.write_text("kafka:\n  bootstrap: 127.0.0.1:9092\n")
    done = _run(installed, "worker", "--config", str(bad), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"mailpulse worker: {bad}: kafka.bootstrap: unknown key"]
