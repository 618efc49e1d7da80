"""The testnet's processes: started detached inside a host, found again by pid and
start time (so a pid the system has since given to another process is never
signalled), and stopped with their whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_children: dict[int, subprocess.Popen[bytes]] = {}
"""The processes this one started, kept so that each is waited for (not left a zombie,
nor warned about as still running when collected)."""


@dataclass(frozen=True)
class Process:
    """A process of the testnet: which host, what it is, and how to find it again."""

    host: str
    name: str
    pid: int
    started: int
    """Its start time in clock ticks since boot (/proc/PID/stat), with the pid its identity."""
    log: str


def start(
    host: str, name: str, argv: Sequence[str], *, log: Path, env: Mapping[str, str]
) -> Process:
    """Start `argv` in a session of its own, its output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        child = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            env=dict(env), start_new_session=True,
        )  # fmt: skip
    _children[child.pid] = child
    return Process(host, name, child.pid, _start_time(child.pid) or 0, str(log))


def running(process: Process) -> bool:
    """Whether the process is the one started, and has not exited."""
    _reap(process.pid)
    return _start_time(process.pid) == process.started and not _exited(process.pid)


def signal_group(process: Process, signum: int) -> None:
    """Send `signum` to the process's group (itself and what it started), unless its
    pid is another process's now."""
    if _start_time(process.pid) == process.started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)


def stop(processes: Sequence[Process], grace_s: float = 5.0) -> list[Process]:
    """SIGTERM to each, SIGKILL to those still running after `grace_s`; those that
    outlived even that."""
    for process in processes:
        signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(running(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in processes:
        signal_group(process, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(running(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in processes if running(p)]


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the name


def _exited(pid: int) -> bool:
    """Whether the process is gone or a zombie. A process whose main thread has ended
    shows as a zombie while its other threads still run: it has not exited."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state == "Z" and len(os.listdir(f"/proc/{pid}/task")) <= 1
    except OSError:
        return True


def _reap(pid: int) -> None:
    """Collect the exit status of a child of this process, so it is gone for good."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
