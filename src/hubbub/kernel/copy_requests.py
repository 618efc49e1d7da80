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


class CopyRefused(RuntimeError):
    """The owner could not make the copy; the message says why."""


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
    request, done = requests / f"{name}.json", requests / f"{name}.done"
    _write_atomically(request, {"target": str(target.resolve())})
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
        if waited > finish_s:
            raise CopyRefused(f"the {owner} role did not finish the copy in {finish_s:.0f} s")
        time.sleep(0.05)
    answer = json.loads(done.read_text())
    done.unlink(missing_ok=True)
    if answer.get("error"):
        raise CopyRefused(f"the {owner} role could not copy its file: {answer['error']}")
    return True


async def serve_copies(
    data_dir: Path, owner: str, copy: Callable[[Path], None], poll_s: float = POLL_S
) -> None:
    """Make the copies asked of `owner` with `copy(target)`, until cancelled."""
    while True:
        await asyncio.to_thread(serve_pending, data_dir / REQUESTS, owner, copy)
        await asyncio.sleep(poll_s)


def serve_pending(requests: Path, owner: str, copy: Callable[[Path], None]) -> int:
    """Make the copies asked of `owner` now; returns how many were asked."""
    served = 0
    for request in sorted(requests.glob(f"{owner}-*.json")):
        taken = request.with_suffix(".taken")
        try:
            request.rename(taken)
        except FileNotFoundError:
            continue  # withdrawn, or taken by another process
        served += 1
        error: str | None = None
        try:
            target = Path(json.loads(taken.read_text())["target"])
            started = time.monotonic()
            copy(target)
            log.info("a copy was made", target=str(target), seconds=time.monotonic() - started)
        except Exception as failure:  # answered to the one who asked, whatever it was
            error = f"{type(failure).__name__}: {failure}"
            log.warning("a copy could not be made", why=error)
        _write_atomically(taken.with_suffix(".done"), {"error": error})
        taken.unlink(missing_ok=True)
    return served
