"""How every embedded SQLite file of Hubbub is opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# 64 MiB of page cache (the default is 2 MiB) keeps the right edge of the id and ref
# indexes, where inserts land, in memory as they grow.
CACHE_KIB = 64 * 1024


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, safe to share
    with other processes (they wait up to 30 s for the write lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=30000")
    connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return connection
