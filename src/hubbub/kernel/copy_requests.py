"""Copies of a file another process owns, made by that process when asked.

The process that holds a database open for writing (DuckDB allows one) is the one that
can copy it as of one committed transaction, however often it writes. A backup asks it
through the data directory: it writes a request (`.copy-requests/<owner>-<id>.json`,
naming the target) and waits. The owner looks for requests every `POLL_S`, claims one by
renaming it, makes the copy, and answers with `<owner>-<id>.done`, which holds what went
wrong, if anything. No port is opened for this: whoever can write the data directory can
read every file in it already.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final

import structlog

log = structlog.get_logger("hubbub.copies")

REQUESTS: Final = ".copy-requests"
POLL_S: Final = 0.5
"""How often an owner looks for requests."""
STALE_S: Final = 60.0
"""A request older than this was left by one who no longer waits (killed): dropped."""


class CopyRefused(RuntimeError):
    """The owner could not make the copy; the message says why."""


def _check_target(target: Path) -> None:
    """A copy goes to a new file, named by an absolute path, in a directory that exists."""
    if not target.is_absolute():
        raise CopyRefused(f"{target}: not an absolute path")
    if target.exists() or target.is_symlink():
        raise CopyRefused(f"{target}: exists already")
    if not target.parent.is_dir():
        raise CopyRefused(f"{target.parent}: no such directory")


def _write_atomically(path: Path, content: dict[str, str | None]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(content))
    os.replace(temporary, path)


def request_copy(
    data_dir: Path,
    owner: str,
    target: Path,
    *,
    claim_s: float = 3 * POLL_S,
    finish_s: float = 3600.0,
) -> bool:
    """Ask the process `owner` (running on `data_dir`) to copy its file to `target`:
    True once it is made; False when no owner claimed the request within `claim_s` (none
    runs, or one too old to serve copies); `CopyRefused` with the owner's reason, or
    when the copy took longer than `finish_s`."""
    requests = data_dir / REQUESTS
    requests.mkdir(mode=0o700, exist_ok=True)
    name = f"{owner}-{uuid.uuid4().hex}"
    request, taken = requests / f"{name}.json", requests / f"{name}.taken"
    done = requests / f"{name}.done"
    _write_atomically(request, {"target": str(target.resolve())})
    try:
        return _await(owner, request, taken, done, claim_s, finish_s)
    finally:  # answered, refused, or interrupted: nothing of it is left to serve
        request.unlink(missing_ok=True)
        done.unlink(missing_ok=True)


def _await(
    owner: str, request: Path, taken: Path, done: Path, claim_s: float, finish_s: float
) -> bool:
    started = time.monotonic()
    claimed = False
    while not done.exists():
        waited = time.monotonic() - started
        if not claimed and waited > claim_s:
            try:
                request.unlink()
            except FileNotFoundError:
                claimed = True  # the owner took it just now
            else:
                return False
        if claimed and not _alive(taken) and not done.exists():  # done comes before
            # the claim goes: a claim gone and no answer after it is a dropped claim
            raise CopyRefused(f"the {owner} role stopped while it made the copy")
        if waited > finish_s:
            raise CopyRefused(f"the {owner} role did not finish the copy in {finish_s:.0f} s")
        time.sleep(0.05)
    answer = json.loads(done.read_text())
    if answer.get("error"):
        raise CopyRefused(f"the {owner} role could not copy its file: {answer['error']}")
    return True


def _alive(taken: Path) -> bool:
    """Whether the process that claimed a request (its pid in the claim) still runs."""
    try:
        pid = int(json.loads(taken.read_text()).get("pid", 0))
    except FileNotFoundError:
        return False  # answered (the answer is written first), or dropped as stale
    except (OSError, ValueError):
        return True  # being written: look again
    if pid <= 0:
        return True
    return _running(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def serve_copies(
    data_dir: Path, owner: str, copy: Callable[[Path], object], poll_s: float = POLL_S
) -> None:
    """Make the copies asked of `owner` with `copy(target)`, until cancelled."""
    while True:
        await asyncio.to_thread(serve_pending, data_dir / REQUESTS, owner, copy)
        await asyncio.sleep(poll_s)


def _sweep_claim(claim: Path) -> None:
    """Drop a claim whose owner died: its pid no longer runs, or is this process's (a
    restarted container's owner often gets its predecessor's pid, and this process
    serves one request at a time, none now), or it never noted one and was left for
    `STALE_S` (killed between claiming and noting its pid)."""
    try:
        age_s = time.time() - claim.stat().st_mtime
        pid = int(json.loads(claim.read_text()).get("pid", 0))
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        pid = 0
    if (pid > 0 and (pid == os.getpid() or not _running(pid))) or (pid <= 0 and age_s > STALE_S):
        claim.unlink(missing_ok=True)
        log.info("a claim left by a stopped owner was dropped", claim=claim.name)


def serve_pending(requests: Path, owner: str, copy: Callable[[Path], object]) -> int:
    """Make the copies asked of `owner` now; returns how many were asked."""
    served = 0
    for answer in requests.glob(f"{owner}-*.done"):  # for one who stopped waiting
        with contextlib.suppress(FileNotFoundError):
            if time.time() - answer.stat().st_mtime > STALE_S:
                answer.unlink()
    for claim in requests.glob(f"{owner}-*.taken"):
        _sweep_claim(claim)
    for request in sorted(requests.glob(f"{owner}-*.json")):
        taken = request.with_suffix(".taken")
        try:
            if time.time() - request.stat().st_mtime > STALE_S:
                request.unlink()  # its asker is gone
                continue
            request.rename(taken)
        except FileNotFoundError:
            continue  # withdrawn, or taken by another process
        served += 1
        error: str | None = None
        try:
            target = Path(json.loads(taken.read_text())["target"])
            _write_atomically(taken, {"target": str(target), "pid": str(os.getpid())})
            _check_target(target)
            started = time.monotonic()
            copy(target)
            log.info("a copy was made", target=str(target), seconds=time.monotonic() - started)
        except Exception as failure:  # answered to the one who asked, whatever it was
            error = f"{type(failure).__name__}: {failure}"
            log.warning("a copy could not be made", why=error)
        _write_atomically(taken.with_suffix(".done"), {"error": error})
        taken.unlink(missing_ok=True)
    return served
