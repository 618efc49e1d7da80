"""The embedded rollup store: one DuckDB file, owned by the analytics worker.

Each batch of deltas is added to the rollup tables, and the consumer's log positions are
written, in one transaction: after a crash at any moment the file holds either the
whole batch and its positions or neither, so a restart neither loses nor repeats an
event.

The tiered tables (pages, hashtags and terms, by minute, hour, day and week) have no
primary key: a batch's deltas are appended as new rows (DuckDB's upserts into a large
ART index cost ten times a plain insert), and the reports sum whatever rows a bucket
has. `compact` then merges each bucket's rows into one, and lays the tables out for the
reads they serve, since DuckDB finds rows by the min/max statistics of each row group
of about 122,000 rows:

- minute and week tiers in time order: top lists read every key over a time range;
- hour and day tiers in key order (`h`, the key's hash, then time): a series reads one
  key over up to a year, which is then a few row groups instead of the whole table.

Rows appended since the last compaction sit at the end, in time order, and are found
by their time. The small tables (languages, totals, positions) are upserted.

What each post added (`Contribution`) is kept in a SQLite file beside this one
(`hubbub.analytics.post_records`), whose index stays on disk: a batch writes its records
there first, as versions numbered by the batch, then its rollups here with that number,
and records newer than the number found here are dropped when the store opens.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import importlib.abc
import importlib.util
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import duckdb
import pyarrow as pa
import structlog

from hubbub.analytics.ports import RejectedBatch, RollupStore, StalePositions
from hubbub.analytics.post_records import PostRecords, new_identity, record_files, records_path
from hubbub.analytics.rollups import (
    GLOBAL_COUNTERS,
    KEYED_TIERS,
    TIERED,
    TIERS,
    Contribution,
    Deltas,
    global_backfills,
    prune_statements,
    schema,
    tier_appends,
)
from hubbub.kernel.clock import Clock
from hubbub.kernel.copy_requests import serve_copies

log = structlog.get_logger("hubbub.analytics")


class _PandasAbsent(importlib.abc.MetaPathFinder):
    """Answers `import pandas` at once when pandas is not installed. DuckDB's Python
    client tries that import for every parameter it binds, and a failed import searches
    the whole path again each time (0.15 ms): half of a report's time went there."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def skip_pandas_lookups() -> None:
    """Install `_PandasAbsent` once, if pandas is not installed (DuckDB stores and any
    other DuckDB reader call this when they open)."""
    if any(isinstance(finder, _PandasAbsent) for finder in sys.meta_path):
        return
    if importlib.util.find_spec("pandas") is None:
        sys.meta_path.insert(0, _PandasAbsent())


SCHEMA = (
    *schema("BLOB", keyed=False),
    # Per tiered table: its rows right after the last compaction, and the earliest minute
    # appended to since (the tail to merge).
    "CREATE TABLE IF NOT EXISTS compacted (name TEXT PRIMARY KEY, rows BIGINT NOT NULL,"
    " tail_since BIGINT)",
    # Where each batch's appends to a tiered table begin: the fold appends a note, and
    # compaction merges a table's notes (written in `compacted.tail_since` before).
    "CREATE TABLE IF NOT EXISTS tail_note (name TEXT NOT NULL, since BIGINT NOT NULL)",
    # The post records' identity, and the last batch whose records they hold.
    "CREATE TABLE IF NOT EXISTS post_records (id TEXT NOT NULL, seq BIGINT NOT NULL)",
)
MOVE_CHUNK = 100_000
"""Post records moved per transaction out of a file made when DuckDB held them."""
COMPACT_TAIL_ROWS = 200_000
"""A time-ordered table merges its tail once this many rows were appended to it."""
COMPACT_TAIL_SHARE = 0.05
"""A key-ordered table, which compaction rewrites whole, waits until the rows appended
since are also this share of it: the rewrite's cost is then a few percent of the writes
however large the table grows, and a series reads a tail of at most that many rows."""


def _add_totals(table: str) -> str:
    return ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in GLOBAL_COUNTERS)


def _rollback(db: duckdb.DuckDBPyConnection) -> None:
    """Roll back the transaction, if one is still open: a COMMIT that failed has ended
    it already, and the error to raise is the commit's."""
    with contextlib.suppress(duckdb.Error):
        db.rollback()


@contextlib.contextmanager
def _rejecting_bad_values() -> Iterator[None]:
    """DuckDB's and Arrow's errors about a value (out of range, not convertible) as
    `RejectedBatch`: folded again, the batch would fail the same way."""
    try:
        yield
    except (duckdb.DataError, OverflowError, pa.ArrowInvalid) as error:
        raise RejectedBatch(f"{type(error).__name__}: {error}") from error


MEMORY_LIMIT: Final = "1GB"
"""DuckDB's buffer pool for the rollups (`HUBBUB_ANALYTICS_MEMORY_LIMIT`). DuckDB's own
default is 80% of the machine's memory, and it keeps what it read cached up to that:
under a steady firehose the analytics process grew without end (538 to 1,084 MB in five
minutes of the soak benchmark). What does not fit spills to disk."""


class DuckDBRollups:
    """Rollups in a DuckDB file; one writer process at a time (DuckDB's rule)."""

    def __init__(
        self,
        path: Path,
        *,
        compact_tail_rows: int = COMPACT_TAIL_ROWS,
        compact_tail_share: float = COMPACT_TAIL_SHARE,
        memory_limit: str = MEMORY_LIMIT,
        threads: int | None = None,
    ) -> None:
        """`threads` runs each statement on that many threads; None leaves DuckDB's
        default, one per core. A batch of the fold is a few dozen small statements: on a
        machine whose cores the other roles keep busy, their parallel parts wait for a
        thread the scheduler has not run yet. Six minutes of the soak benchmark on two
        cores, the same commit: one thread took the analytics role from 1.01 to 0.89
        cores, its largest lag from 1.9 to 0.7 s, reports' p99 from 156 to 130 ms (the
        role's `HUBBUB_ANALYTICS_THREADS` is 1 by default)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tail_rows, self._tail_share = compact_tail_rows, compact_tail_share
        skip_pandas_lookups()
        config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": memory_limit}
        if threads is not None:
            config["threads"] = str(threads)
        self._db = duckdb.connect(str(path), config=config)
        self._writing = threading.Lock()  # close() waits for a batch being applied
        self._compacting = threading.Lock()  # one compaction or prune at a time
        self._readers = _Readers()  # and for reads in other threads: DuckDB crashes else
        try:
            self._records = PostRecords(records_path(path))
        except BaseException:
            self._db.close()
            raise
        self._records_writer = concurrent.futures.ThreadPoolExecutor(1, "post-records")
        try:
            self._create_schema()
            self._seq = self._adopt_records()
            self._trim_pending = False
        except BaseException:
            self._records.close()
            self._db.close()
            raise

    def _create_schema(self) -> None:
        """The tables, in one transaction; those added since a database was made are
        added to it and filled from what it holds."""
        db = self._db
        existing = {
            name
            for (name,) in db.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            ).fetchall()
        }
        db.begin()
        try:
            for statement in (*SCHEMA, *global_backfills(existing)):
                db.execute(statement)
            db.execute(
                "INSERT INTO tail_note SELECT name, tail_since FROM compacted"
                " WHERE tail_since IS NOT NULL"
            )
            db.execute("UPDATE compacted SET tail_since = NULL WHERE tail_since IS NOT NULL")
            db.commit()
        except BaseException:
            _rollback(db)
            raise

    def _adopt_records(self) -> int:
        """Pair the records' file with this one (see `PostRecords.adopt`), after moving
        in the records of a file made when this one held them; returns the last batch."""
        db = self._db
        found = db.execute("SELECT id, seq FROM post_records").fetchall()
        if not found:
            db.execute("INSERT INTO post_records VALUES (?, 0)", [new_identity()])
            found = db.execute("SELECT id, seq FROM post_records").fetchall()
        ((identity, seq),) = found
        self._records.adopt(str(identity), int(seq))
        if db.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_name = 'post_contribution'"
        ).fetchall():
            self._move_records(int(seq))
        return int(seq)

    def _move_records(self, seq: int) -> None:
        """Move the records of a file made when DuckDB held them (keyed by the post, or
        by its hash with the post beside it) into the records' file, a chunk at a time;
        the table is dropped once all are there, so a crash midway moves them again."""
        db = self._db
        (total,) = db.execute("SELECT count(*) FROM post_contribution").fetchone() or (0,)
        log.info("moving the post records out of the rollups' file", records=total)
        moved = 0
        cursor = db.execute("SELECT post, minute, record FROM post_contribution")
        while rows := cursor.fetchmany(MOVE_CHUNK):
            moved += self._records.load(((str(p), int(m), bytes(r)) for p, m, r in rows), seq)
            log.info("post records moved", moved=moved, of=total)
        db.execute("DROP TABLE post_contribution")
        db.execute("CHECKPOINT")

    def positions(self) -> dict[str, int]:
        """The last log position folded, per topic."""
        rows = self.query("SELECT topic, position FROM consumer_position")
        return {topic: int(position) for topic, position in rows}

    def contributions(self, posts: set[str]) -> dict[str, Contribution]:
        """What these posts added so far (those never seen are left out)."""
        if not posts:
            return {}
        if self._trim_pending:
            with self._writing:
                self._settle_records()
        with self._readers.reading():
            return self._records.lookup(posts)

    def apply(self, deltas: Deltas, positions: dict[str, int], since: dict[str, int]) -> None:
        """Add the deltas and move the positions, all or nothing; `StalePositions` if the
        stored positions are no longer `since`."""
        with self._writing, _rejecting_bad_values():
            self._settle_records()
            self._apply(deltas, positions, since)

    def _apply(self, deltas: Deltas, positions: dict[str, int], since: dict[str, int]) -> None:
        db = self._db
        records: concurrent.futures.Future[None] | None = None
        db.begin()
        try:
            stored = dict(db.execute("SELECT topic, position FROM consumer_position").fetchall())
            if any(stored.get(topic, 0) != since.get(topic, 0) for topic in positions):
                raise StalePositions(f"positions moved to {stored}, the batch read after {since}")
            # The records commit first, as the next batch's versions (module docstring),
            # written in a thread while the rollups' statements run.
            if deltas.contributions:
                records = self._records_writer.submit(
                    self._records.write, self._seq + 1, deltas.contributions
                )
                db.execute("UPDATE post_records SET seq = ?", [self._seq + 1])
            for key in TIERED:
                columns = deltas.columns(key)
                if columns["minute"]:
                    db.register("delta_rows", pa.table(columns))
                    try:
                        for statement in tier_appends(key, "delta_rows"):
                            db.execute(statement)
                        self._note_tail(key, min(columns["minute"]))
                    finally:
                        db.unregister("delta_rows")
            self._upsert(
                "lang_minute",
                {
                    "lang": [lang for lang, _, _ in deltas.langs],
                    "source": [source for _, source, _ in deltas.langs],
                    "minute": [minute for _, _, minute in deltas.langs],
                    "posts": list(deltas.langs.values()),
                },
                "(lang, source, minute)",
                "posts = lang_minute.posts + excluded.posts",
            )
            self._upsert(
                "slot_halfhour",
                {
                    "scope": [scope for scope, _ in deltas.slots],
                    "half": [half for _, half in deltas.slots],
                    "posts": [posts for posts, _ in deltas.slots.values()],
                    "engagement": [engaged for _, engaged in deltas.slots.values()],
                },
                "(scope, half)",
                "posts = slot_halfhour.posts + excluded.posts,"
                " engagement = slot_halfhour.engagement + excluded.engagement",
            )
            for tier, minutes in TIERS:
                rows = deltas.total_rows(minutes)
                counts = {
                    name: [sums[i] for sums in rows.values()]
                    for i, name in enumerate(GLOBAL_COUNTERS)
                }
                self._upsert(
                    f"global_{tier}",
                    {"minute": list(rows), **counts},
                    "(minute)",
                    _add_totals(f"global_{tier}"),
                )
            for term, since_minute in deltas.tracked.items():
                db.execute(
                    "INSERT INTO tracked_term VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [term, since_minute],
                )
            for topic, position in positions.items():
                db.execute(
                    "INSERT OR REPLACE INTO consumer_position VALUES (?, ?)", [topic, position]
                )
            if records:
                records.result()
            db.commit()
        except BaseException:
            _rollback(db)
            if records:
                concurrent.futures.wait([records])
                self._trim_pending = True
                with contextlib.suppress(Exception):  # the error raised says what failed
                    self._settle_records()
            raise
        if records:
            self._seq += 1

    def _settle_records(self) -> None:
        """Drop the records of a batch the rollups refused, if that failed before (a
        full disk): until then, nothing is looked up or written (the error says why)."""
        if self._trim_pending:
            self._records.trim(self._seq)
            self._trim_pending = False

    def _upsert(self, table: str, columns: dict[str, list[Any]], key: str, update: str) -> None:
        if not next(iter(columns.values())):
            return
        self._db.register("delta_rows", pa.table(columns))
        try:
            names = ", ".join(columns)
            self._db.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM delta_rows"
                f" ON CONFLICT {key} DO UPDATE SET {update}"
            )
        finally:
            self._db.unregister("delta_rows")

    def prune(self, horizons: dict[str, int]) -> int:
        """Delete each tier's rows before its horizon, and older post records (a chunk
        at a time, so the fold goes on between them)."""
        rollups = {name: minute for name, minute in horizons.items() if name != "posts"}
        with self._compacting, self._writing:
            deleted = 0
            for statement, parameter in prune_statements(rollups):
                (row,) = self._db.execute(statement, [parameter]).fetchall()
                deleted += int(row[0])
        if "posts" in horizons:
            with self._readers.reading():  # close() waits for it
                deleted += self._records.prune(horizons["posts"])
        return deleted

    def _note_tail(self, key: str, first_minute: int) -> None:
        """Note the earliest bucket a batch appended to in each tier of `key` (appended
        rows: a compaction running beside the fold never writes the same rows)."""
        notes = [(f"{key}_{tier}", first_minute - first_minute % size) for tier, size in TIERS]
        self._db.execute(
            f"INSERT INTO tail_note VALUES {', '.join(['(?, ?)'] * len(notes))}",
            [value for pair in notes for value in pair],
        )

    def compact(self, *, force: bool = False) -> int:
        """Merge each bucket's rows and restore each table's order (see the module
        docstring); returns the tables rewritten. Sums are unchanged, so a crash in the
        middle leaves the rollups as right as before.

        Each table is compacted in a transaction of its own, beside the fold: it merges
        and deletes the rows it sees, while the fold only appends (rows, and notes of
        where its tail starts), so the two never write the same row, and the fold does
        not wait for a rewrite of the whole hour tier."""
        rewritten = 0
        with self._compacting, self._readers.reading():
            cursor = self._db.cursor()
            try:
                for key in TIERED:
                    for tier, _ in TIERS:
                        rewritten += self._compact(cursor, key, tier, force)
            finally:
                cursor.close()
        return rewritten

    def _compact(self, db: duckdb.DuckDBPyConnection, key: str, tier: str, force: bool) -> int:
        table = f"{key}_{tier}"
        db.begin()
        try:
            (total,) = db.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
            found = db.execute("SELECT rows FROM compacted WHERE name = ?", [table]).fetchall()
            before = found[0][0] if found else 0
            (tail_since, notes) = db.execute(
                "SELECT min(since), count(*) FROM tail_note WHERE name = ?", [table]
            ).fetchone() or (None, 0)
            tail = total - before
            keyed = tier in KEYED_TIERS
            due = max(self._tail_rows, self._tail_share * total if keyed else 0)
            if tail <= 0 or not (force or tail > due):
                if notes > 1:  # one note says as much as all of them
                    db.execute("DELETE FROM tail_note WHERE name = ?", [table])
                    db.execute("INSERT INTO tail_note VALUES (?, ?)", [table, tail_since])
                db.commit()
                return 0
            sums = ", ".join(f"sum({name}) AS {name}" for name in TIERED[key])
            # Key order needs the whole table rewritten; time order, the buckets of the tail.
            since = 0 if keyed or tail_since is None else tail_since
            db.execute(
                f"CREATE TEMPORARY TABLE merged AS SELECT h, {key}, minute, {sums} FROM {table}"
                f" WHERE minute >= ? GROUP BY h, {key}, minute"
                f" ORDER BY {'h, minute' if keyed else 'minute, h'}",
                [since],
            )
            db.execute(f"DELETE FROM {table} WHERE minute >= ?", [since])
            db.execute(f"INSERT INTO {table} SELECT * FROM merged")
            db.execute("DROP TABLE merged")
            (left,) = db.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
            db.execute("INSERT OR REPLACE INTO compacted VALUES (?, ?, NULL)", [table, left])
            db.execute("DELETE FROM tail_note WHERE name = ?", [table])
            db.commit()
        except BaseException:
            _rollback(db)
            raise
        return 1

    def copy_to(self, target: Path) -> None:
        """Write the rollups as of the last batch to the new DuckDB file `target` (the
        fold waits meanwhile), then their post records beside it (`records_path`; they
        may hold later batches, dropped when the copy opens): a backup."""
        quoted = str(target).replace("'", "''")
        with self._writing:
            (name,) = self._db.execute("SELECT current_database()").fetchone() or ("",)
            self._db.execute(f"ATTACH '{quoted}' AS hubbub_copy")
            try:
                self._db.execute(f'COPY FROM DATABASE "{name}" TO hubbub_copy')
            finally:
                self._db.execute("DETACH hubbub_copy")
        with self._readers.reading():
            self._records.copy_to(records_path(target))

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a read query (reports, checks), on a cursor of its own: reads may run
        in other threads while the worker writes, each seeing committed batches only."""
        with self._readers.reading():
            cursor = self._db.cursor()
            try:
                return cursor.execute(sql, parameters or []).fetchall()
            finally:
                cursor.close()

    def close(self) -> None:
        with self._writing:
            self._readers.close()
            self._db.close()
            self._records_writer.shutdown()
            self._records.close()


class RollupsClosed(RuntimeError):
    """The rollups were closed (the process is stopping); nothing more can be read."""


class _Readers:
    """Reads in flight in other threads: closing waits for them, and refuses new ones,
    since DuckDB closed under a running cursor crashes the process."""

    def __init__(self) -> None:
        self._idle = threading.Condition()
        self._count = 0
        self._closed = False

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self._idle:
            if self._closed:
                raise RollupsClosed("the rollups are closed: the process is stopping")
            self._count += 1
        try:
            yield
        finally:
            with self._idle:
                self._count -= 1
                self._idle.notify_all()

    def close(self) -> None:
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: self._count == 0)


COPY_OWNER: Final = "analytics"
"""The name a backup asks the live rollups' owner for a copy by."""
POINTER = "analytics.current"
"""In the data directory: the name of the DuckDB file that holds the live rollups. A
rebuild writes a new file, then replaces this one (a rename, so atomically)."""


def live_path(data_dir: Path) -> Path:
    """The live rollups' file: the one the pointer names, else `analytics.duckdb`."""
    pointer = data_dir / POINTER
    if pointer.exists():
        return data_dir / pointer.read_text().strip()
    return data_dir / "analytics.duckdb"


class LiveDuckDB:
    """The live DuckDB rollups, following the pointer: when a rebuild replaces it, the
    next call opens the new file and answers from it, while reads already running
    finish on the old one (unlinked at once, closed a little later)."""

    CHECK_EVERY_S = 0.5
    RETIRE_AFTER_S = 30.0

    def __init__(
        self,
        data_dir: Path,
        clock: Clock,
        memory_limit: str = MEMORY_LIMIT,
        *,
        threads: int | None = None,
    ) -> None:
        self._data_dir = data_dir
        self._clock = clock
        self._memory_limit, self._threads = memory_limit, threads
        self._path = live_path(data_dir)
        sweep_leftovers(data_dir)
        self._store = DuckDBRollups(self._path, memory_limit=memory_limit, threads=threads)
        self._checked = clock.monotonic_s()
        self._retired: list[tuple[float, DuckDBRollups]] = []
        self._swapping = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def current(self) -> DuckDBRollups:
        """The store to use now, after a swap if the pointer moved."""
        now = self._clock.monotonic_s()
        if now - self._checked >= self.CHECK_EVERY_S:
            self._checked = now
            retiring = []
            with self._swapping:  # the fold, the readers and the copies all call this
                if live_path(self._data_dir) != self._path:
                    self._swap(now)
                while self._retired and now - self._retired[0][0] > self.RETIRE_AFTER_S:
                    retiring.append(self._retired.pop(0)[1])
            for old in retiring:  # waits for its reads and copies; nobody else does
                old.close()
        return self._store

    def _swap(self, now: float) -> None:
        path = live_path(self._data_dir)
        if path == self._path:
            return
        old, old_path = self._store, self._path
        self._store = DuckDBRollups(path, memory_limit=self._memory_limit, threads=self._threads)
        self._path = path
        self._retired.append((now, old))
        for leftover in (old_path, old_path.with_name(old_path.name + ".wal")):
            leftover.unlink(missing_ok=True)
        for leftover in record_files(old_path):
            leftover.unlink(missing_ok=True)

    def __call__(self) -> RollupStore:
        return self.current()

    def positions(self) -> dict[str, int]:
        return self.current().positions()

    def contributions(self, posts: set[str]) -> dict[str, Contribution]:
        return self.current().contributions(posts)

    def apply(self, deltas: Deltas, positions: dict[str, int], since: dict[str, int]) -> None:
        self.current().apply(deltas, positions, since)

    def prune(self, horizons: dict[str, int]) -> int:
        return self.current().prune(horizons)

    def compact(self, *, force: bool = False) -> int:
        return self.current().compact(force=force)

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.current().query(sql, parameters)

    def copy_to(self, target: Path) -> None:
        self.current().copy_to(target)

    async def serve_copies(self) -> None:
        """Make the copies a backup asks of this process (`hubbub.kernel.copy_requests`)
        until cancelled: another process cannot copy the file while the fold writes it."""
        await serve_copies(self._data_dir, COPY_OWNER, self.copy_to)

    def close(self) -> None:
        for _, store in self._retired:
            store.close()
        self._store.close()


class DuckDBStaging:
    """A rebuild's fresh DuckDB file beside the live one, and its promotion: the file is
    closed (checkpointed), then the pointer is replaced, and the live process swaps."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        # Held until promoted or discarded: `sweep_leftovers` leaves this rebuild be.
        self._running = _rebuild_lock(data_dir)
        fcntl.flock(self._running, fcntl.LOCK_SH)
        # A fresh name per rebuild (the file's own time says when it was made).
        self._final = data_dir / f"analytics-{uuid.uuid4().hex[:12]}.duckdb"
        self._building = self._final.with_suffix(".building")
        try:
            self.store = DuckDBRollups(self._building)
        except BaseException:
            self._running.close()
            raise

    def promote(self) -> str:
        try:
            self.store.close()
            os.replace(self._building, self._final)
            replaced = live_path(self._data_dir)
            temporary = self._data_dir / f".{POINTER}.tmp"
            temporary.write_text(self._final.name)
            os.replace(temporary, self._data_dir / POINTER)
            _remove_if_unowned(replaced)
        finally:
            self._running.close()
        return str(self._final)

    def discard(self) -> None:
        try:
            self.store.close()
            for leftover in (
                self._building,
                self._building.with_name(self._building.name + ".wal"),
                *record_files(self._building),
            ):
                leftover.unlink(missing_ok=True)
        finally:
            self._running.close()


REBUILDING: Final = ".analytics-rebuilding.lock"
"""Each rebuild holds this file locked (shared) from its start to its promotion or
discard; a sweep of leftovers takes it exclusively, or leaves everything be."""


def _rebuild_lock(data_dir: Path) -> BinaryIO:
    data_dir.mkdir(parents=True, exist_ok=True)
    return (data_dir / REBUILDING).open("ab")


def sweep_leftovers(data_dir: Path) -> list[Path]:
    """Remove what a rebuild killed before its end left (its `.building` file and the
    post records beside it), and records whose rollups are gone; while any rebuild runs
    (its promotion included), nothing. Returns what was removed."""
    with _rebuild_lock(data_dir) as running:
        try:
            fcntl.flock(running, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("a rebuild is running: leftovers of others are left for later")
            return []
        return _sweep(data_dir)  # closing the file lets rebuilds start again


def _sweep(data_dir: Path) -> list[Path]:
    removed: list[Path] = []
    for building in sorted(data_dir.glob("analytics-*.building")):
        for leftover in (
            building,
            building.with_name(building.name + ".wal"),
            *record_files(building),
        ):
            if leftover.exists():
                leftover.unlink(missing_ok=True)
                removed.append(leftover)
    for records in sorted(data_dir.glob("analytics*.posts.db")):
        stem = records.name.removesuffix(".posts.db")
        if any((data_dir / f"{stem}{suffix}").exists() for suffix in (".building", ".duckdb")):
            continue
        for leftover in (records, *(records.with_name(records.name + s) for s in ("-wal", "-shm"))):
            if leftover.exists():
                leftover.unlink(missing_ok=True)
                removed.append(leftover)
    if removed:
        log.info("a rebuild's leftovers removed", files=[p.name for p in removed])
    return removed


def _remove_if_unowned(path: Path) -> None:
    """Delete a replaced rollups file, unless a live process holds it (that process
    deletes it when it swaps), or it cannot be opened to tell: then it is left."""
    try:
        duckdb.connect(str(path)).close()
    except duckdb.Error:
        return  # held by the analytics process (another, or this one), or unreadable
    for leftover in (path, *record_files(path)):
        leftover.unlink(missing_ok=True)
