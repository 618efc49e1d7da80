"""The ingest service's state in its own SQLite file (refs and cursors).

Each ref records when it was last put (`seen`, seconds, indexed: inserts land at the
index's right edge). At most every `sweep_interval_s` an `apply_refs` also deletes,
a chunk per transaction, the refs older than `ref_ttl_s` (see `IngestState`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from hubbub.kernel.clock import Clock, SystemClock
from hubbub.kernel.sqlite import WriteLock, connect

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS refs (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, seen INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_KEYS_PER_QUERY = 10_000
_REFS_SWEPT_PER_STEP = 10_000


class SqliteIngestState:
    """IngestState on SQLite; see `hubbub.ingest.ports.IngestState` for the contract."""

    def __init__(
        self,
        path: Path,
        *,
        ref_ttl_s: float = 0.0,
        sweep_interval_s: float = 600.0,
        clock: Clock | None = None,
    ) -> None:
        """Open (or create) the state at `path`; refs expire `ref_ttl_s` after they were
        last put (0: never)."""
        self._db = connect(path)
        self._write_lock = WriteLock(path)
        self._ref_ttl_s = ref_ttl_s
        self._sweep_interval_s = sweep_interval_s
        self._next_sweep = 0.0
        self._clock = clock or SystemClock()
        self._db.executescript(_SCHEMA)
        self._date_old_refs()
        self._db.execute("CREATE INDEX IF NOT EXISTS refs_by_seen ON refs (seen)")
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ingest-state")

    def _now_s(self) -> int:
        return self._clock.now_us() // 1_000_000

    def _date_old_refs(self) -> None:
        """Give a state file made before refs expired its `seen` column, dated now: its
        refs start their lifetime today rather than expiring at once."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(refs)")}
        if "seen" not in columns:
            with self._write_lock:
                # A literal: SQLite wants a constant default for a NOT NULL column added.
                self._db.execute(
                    f"ALTER TABLE refs ADD COLUMN seen INTEGER NOT NULL DEFAULT {self._now_s()}"
                )

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
        if self._ref_ttl_s and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._sweep_interval_s
            await self._run(self._sweep_refs)

    def _apply_refs(self, put: Mapping[str, str], gone: list[tuple[str]]) -> None:
        # One multi-row statement per chunk, not executemany: executemany gives up the GIL
        # around every row and, with the ingest thread busy, waits to get it back each time.
        pairs = list(put.items())
        now = self._now_s()
        rows_per_statement = _KEYS_PER_QUERY // 3
        with self._write_lock, self._db:
            self._db.execute("BEGIN")
            for start in range(0, len(pairs), rows_per_statement):
                chunk = pairs[start : start + rows_per_statement]
                values = ",".join(["(?, ?, ?)"] * len(chunk))
                flat = [part for key, value in chunk for part in (key, value, now)]
                self._db.execute(
                    f"INSERT OR REPLACE INTO refs (key, value, seen) VALUES {values}", flat
                )
            self._db.executemany("DELETE FROM refs WHERE key = ?", gone)

    def _sweep_refs(self) -> int:
        """Delete the refs not put for `ref_ttl_s`, a chunk per transaction; how many."""
        cutoff = self._now_s() - self._ref_ttl_s
        swept = 0
        while True:
            with self._write_lock, self._db:
                self._db.execute("BEGIN")
                deleted = self._db.execute(
                    "DELETE FROM refs WHERE key IN "
                    "(SELECT key FROM refs WHERE seen < ? ORDER BY seen LIMIT ?)",
                    (cutoff, _REFS_SWEPT_PER_STEP),
                ).rowcount
            swept += deleted
            if deleted < _REFS_SWEPT_PER_STEP:
                return swept

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
