"""A secret kept in a file of the data directory, made on first use, owner-only.

One machine, where every process shares the data directory, then needs no
configuration; a deployment of many machines sets the secret in the environment instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def kept_secret(path: Path, make: Callable[[], bytes], *, least: int = 16) -> bytes:
    """The secret in `path`, made with `make` (readable by its owner only) if there is
    none yet. Processes starting together agree: one makes it, the others read it, once
    it holds at least `least` bytes."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return _whole(path, least)
        with os.fdopen(descriptor, "wb") as out:
            out.write(make())
    return _whole(path, least)


def _whole(path: Path, least: int) -> bytes:
    """A file another process may be writing: wait until it holds a whole secret."""
    for _ in range(100):
        found = path.read_bytes().strip()
        if len(found) >= least:
            return found
        time.sleep(0.01)
    raise ValueError(f"{path} does not hold a secret: delete it to make a new one")
