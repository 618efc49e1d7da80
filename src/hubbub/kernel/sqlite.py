"""How every embedded SQLite file of Hubbub is opened."""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path

# 64 MiB of page cache (the default is 2 MiB) keeps the right edge of the id and ref
# indexes, where inserts land, in memory as they grow.
CACHE_KIB = 64 * 1024
READ_CACHE_KIB = 2 * 1024
"""The page cache of a connection that reads the log on (SQLite's default): it reads
each page once, so a larger cache only holds what it will not read again. Reading 6.1M
records of the posts, engagement and deletes topics in batches of 150,000 went as fast
with 2 MiB as with 64 MiB (298,000 against 300,000 records/s, two runs each), and the
process ended 72 MB smaller."""


def connect(path: Path, cache_kib: int = CACHE_KIB) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, safe to share
    with other processes (they wait up to 30 s for the write lock), with `cache_kib` of
    page cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk when it returns. With NORMAL a power cut may undo the
    # last commits of one file and not of another, so a saved cursor could outlive the
    # events it stands for. Commits carry thousands of events, so the fsync costs little.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=30000")
    connection.execute(f"PRAGMA cache_size=-{cache_kib}")
    return connection


class WriteLock:
    """An exclusive lock on a file beside the database, held around write transactions.

    SQLite's own busy handler sleeps in growing steps (up to 100 ms) while another
    process writes, and oversleeps the release; two ingest workers sharing a file spent
    a good part of their time asleep that way. A kernel file lock wakes the waiter the
    moment it is released (and gives up the GIL while it waits).
    """

    def __init__(self, database: Path) -> None:
        self._file = open(database.with_name(database.name + ".lock"), "a+b")  # noqa: SIM115

    def __enter__(self) -> None:
        fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc_info: object) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)

    def close(self) -> None:
        self._file.close()
