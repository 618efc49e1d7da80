"""The ingest service's state in its own SQLite file (refs and cursors)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from hubbub.kernel.sqlite import WriteLock, connect

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS refs (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_KEYS_PER_QUERY = 10_000


class SqliteIngestState:
    """IngestState on SQLite; see `hubbub.ingest.ports.IngestState` for the contract."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path)
        self._write_lock = WriteLock(path)
        self._db.executescript(_SCHEMA)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ingest-state")

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def get_refs(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(keys)
        return await self._run(lambda: self._get_refs(wanted)) if wanted else {}

    def _get_refs(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = keys[start : start + _KEYS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            found.update(
                self._db.execute(f"SELECT key, value FROM refs WHERE key IN ({marks})", chunk)
            )
        return found

    async def apply_refs(self, put: Mapping[str, str], deleted: Iterable[str]) -> None:
        gone = [(key,) for key in deleted]
        if put or gone:
            await self._run(lambda: self._apply_refs(put, gone))

    def _apply_refs(self, put: Mapping[str, str], gone: list[tuple[str]]) -> None:
        # One multi-row statement per chunk, not executemany: executemany gives up the GIL
        # around every row and, with the ingest thread busy, waits to get it back each time.
        pairs = list(put.items())
        with self._write_lock, self._db:
            self._db.execute("BEGIN")
            for start in range(0, len(pairs), _KEYS_PER_QUERY // 2):
                chunk = pairs[start : start + _KEYS_PER_QUERY // 2]
                values = ",".join(["(?, ?)"] * len(chunk))
                flat = [part for pair in chunk for part in pair]
                self._db.execute(f"INSERT OR REPLACE INTO refs VALUES {values}", flat)
            self._db.executemany("DELETE FROM refs WHERE key = ?", gone)

    async def load_cursor(self, name: str) -> int | None:
        row = await self._run(
            lambda: self._db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        )
        return int(row[0]) if row else None

    async def save_cursor(self, name: str, value: int) -> None:
        await self._run(
            lambda: self._db.execute(
                "INSERT INTO cursors VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )
        )

    async def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._db.close()
        self._write_lock.close()
