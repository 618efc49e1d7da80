"""Hubbub as the testnet's hosts run it: the wheel built from a checkout, installed in
a virtual environment of its own, never the checkout itself.

Installing the dependencies (numba, pyarrow, duckdb...) takes a minute and more even
from pip's cache, so they are installed once per set of requirements, in a venv under
the cache dir named by their hash. The wheel is installed alone (`--no-deps`) in a venv
of its own that sees those dependencies through a `.pth` file, named by the hash of the
wheel's contents (its RECORD: every file's digest), and the mentions kernels are
compiled there once: numba keeps what it compiled beside the installed sources, and
compiling them again in each new venv took two processes 150 s on two busy cores. A
testnet's `venv` is a link to it; a change to the code is a new wheel, so a new venv.
"""

from __future__ import annotations

import email.parser
import fcntl
import hashlib
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path
from typing import Final

UNUSED_DAYS: Final = 7


class InstallError(Exception):
    """Building or installing the wheel failed; the message has pip's output."""


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()[-20:]
        raise InstallError(f"{' '.join(argv[:4])}...: " + "\n".join(output))


def build_wheel(source: Path, into: Path) -> Path:
    """The wheel of the project at `source`, built into `into`."""
    into.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(into)])
    wheels = sorted(into.glob("hubbub-*.whl"))
    if not wheels:
        raise InstallError(f"pip built no hubbub wheel in {into}")
    return wheels[-1]


def requirements(wheel: Path) -> list[str]:
    """The wheel's own requirements (not its extras')."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.BytesParser().parsebytes(archive.read(name))
    return sorted(r for r in metadata.get_all("Requires-Dist", []) if "extra ==" not in r)


def dependencies_venv(wheel: Path, cache: Path) -> Path:
    """A venv with the wheel's requirements installed from PyPI, made once per set of
    them (and Python version) under `cache`; several callers at once wait for one."""
    needed = requirements(wheel)
    key = hashlib.sha256("\n".join([sys.version, *needed]).encode()).hexdigest()[:16]
    venv = cache / f"deps-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"deps-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "ready").exists():
            _run([sys.executable, "-m", "venv", "--clear", str(venv)])
            _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *needed])
            (venv / "ready").touch()
    return venv


def install(wheel: Path, link: Path, dependencies: Path, cache: Path) -> Path:
    """The venv of the wheel's contents under `cache` (made once: the wheel installed,
    `dependencies`' packages visible, the mentions kernels compiled), linked at `link`;
    its `hubbub` command."""
    with zipfile.ZipFile(wheel) as archive:
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        key = hashlib.sha256(archive.read(record) + dependencies.name.encode()).hexdigest()[:16]
    venv = cache / f"hubbub-{key}"
    with (cache / f"hubbub-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "ready").exists():
            _make_venv(wheel, venv, dependencies)
        (venv / "ready").touch()  # used now: kept a while longer
    link.symlink_to(venv, target_is_directory=True)
    _forget_unused(cache)
    return link / "bin" / "hubbub"


def _forget_unused(cache: Path) -> None:
    """Remove the wheels' venvs no testnet has used for `UNUSED_DAYS` (each is a
    wheel of an older checkout); the dependencies' venvs stay."""
    oldest = time.time() - UNUSED_DAYS * 86400
    for ready in cache.glob("hubbub-*/ready"):
        if ready.stat().st_mtime < oldest:
            shutil.rmtree(ready.parent, ignore_errors=True)


def _make_venv(wheel: Path, venv: Path, dependencies: Path) -> None:
    python = str(venv / "bin" / "python")
    _run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)])
    (_site_packages(venv) / "hubbub-testnet-deps.pth").write_text(
        f"{_site_packages(dependencies)}\n"
    )
    _run([
        sys.executable, "-m", "pip", "--python", python, "install",
        "-q", "--no-deps", "--no-index", str(wheel),
    ])  # fmt: skip
    _run([python, "-c", "from hubbub.mentions.store import warm_up; warm_up()"])
    (venv / "ready").touch()


def _site_packages(venv: Path) -> Path:
    relative = Path(sysconfig.get_path("purelib")).relative_to(sysconfig.get_path("data"))
    return venv / relative
