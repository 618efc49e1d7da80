"""The ingest service's state in its own SQLite file (refs and cursors).

Refs expire by generation (see `IngestState`): puts go to `refs`, the current
generation; `refs_previous` holds the one before. When the current generation is
`ref_ttl_s / 2` old, an `apply_refs` drops the previous one, which becomes the current,
and starts an empty `refs`. A ref not put again is so forgotten between half its
lifetime and its lifetime after it was last put. A time column with an index would
date each ref exactly, but maintaining that index on every put cost a third more time
to save a million refs (1.6 s to 2.2 s measured), and the ingest benchmark lost about
a tenth; dropping a table costs nothing per ref. Lookups (only for the undo of a like,
repost or follow) read both generations, the current one winning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from hubbub.kernel.clock import Clock, SystemClock
from hubbub.kernel.sqlite import WriteLock, connect

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS refs (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs_previous (
    key TEXT PRIMARY KEY, value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS generations (name TEXT PRIMARY KEY, started INTEGER NOT NULL);
"""
_KEYS_PER_QUERY = 10_000


class SqliteIngestState:
    """IngestState on SQLite; see `hubbub.ingest.ports.IngestState` for the contract."""

    def __init__(self, path: Path, *, ref_ttl_s: float = 0.0, clock: Clock | None = None) -> None:
        """Open (or create) the state at `path`; refs not put again are forgotten between
        `ref_ttl_s / 2` and `ref_ttl_s` after they were last put (0: never)."""
        self._db = connect(path)
        self._write_lock = WriteLock(path)
        self._ref_ttl_s = ref_ttl_s
        self._clock = clock or SystemClock()
        self._db.executescript(_SCHEMA)
        # A file from before refs expired starts its first generation now.
        self._db.execute("INSERT OR IGNORE INTO generations VALUES ('refs', ?)", (self._now_s(),))
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ingest-state")

    def _now_s(self) -> int:
        return self._clock.now_us() // 1_000_000

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def get_refs(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(keys)
        return await self._run(lambda: self._get_refs(wanted)) if wanted else {}

    def _get_refs(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for table in ("refs_previous", "refs"):  # the current generation wins
            for start in range(0, len(keys), _KEYS_PER_QUERY):
                chunk = keys[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                found.update(
                    self._db.execute(
                        f"SELECT key, value FROM {table} WHERE key IN ({marks})", chunk
                    )
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
            self._rotate_when_due()
            for start in range(0, len(pairs), _KEYS_PER_QUERY // 2):
                chunk = pairs[start : start + _KEYS_PER_QUERY // 2]
                values = ",".join(["(?, ?)"] * len(chunk))
                flat = [part for pair in chunk for part in pair]
                self._db.execute(f"INSERT OR REPLACE INTO refs VALUES {values}", flat)
            self._db.executemany("DELETE FROM refs WHERE key = ?", gone)
            self._db.executemany("DELETE FROM refs_previous WHERE key = ?", gone)

    def _rotate_when_due(self) -> None:
        """Forget the previous generation once the current one is half a lifetime old.

        Runs inside the write transaction, so two processes sharing the file rotate once.
        """
        if not self._ref_ttl_s:
            return
        now = self._now_s()
        (started,) = self._db.execute(
            "SELECT started FROM generations WHERE name = 'refs'"
        ).fetchone()
        if now - started < self._ref_ttl_s / 2:
            return
        self._db.execute("DROP TABLE refs_previous")
        self._db.execute("ALTER TABLE refs RENAME TO refs_previous")
        self._db.execute(
            "CREATE TABLE refs (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
        )
        self._db.execute("UPDATE generations SET started = ? WHERE name = 'refs'", (now,))

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
