"""The embedded event log: one SQLite file in WAL mode.

Events are stored packed, a segment of up to `segment_size` events of one topic per row
(positions `first`..`last`), because one row per event costs a B-tree insert and a
Python round trip each, several times the cost of decoding the event. Every id goes
into `event_ids`, whose primary key makes append idempotent forever; ids begin with
the source's own time-sortable part, so that index grows at its right edge.

Writes go through one thread and reads through another, each with its own connection,
so the event loop never blocks on disk and a reader never waits behind a writer (WAL).
Several processes may share the file: positions are assigned inside `BEGIN IMMEDIATE`.

Retention (`hubbub.eventlog.retention`, settings `HUBBUB_RETAIN_*`): each segment
records when it was appended. At most every `retention_interval_s` (default 60 s,
`HUBBUB_RETENTION_INTERVAL_S`) an append also queues, behind itself in the write thread,
a pass that deletes whole expired segments and their ids (firehose topics keep 30 days
by default; `usage` 90, `deadletter`, `deliveries` and `alerts` 30) and compacts
`control` to the latest event of each key; `pages` is kept whole. So the process that
appends does the removing, and a log nobody appends to keeps what it has. `topics.last`
survives the segments it counted, so positions never restart. A read at a position
retention removed raises `PositionExpired` (see `hubbub.eventlog.ports`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from hubbub.eventlog import sqlite_retention
from hubbub.eventlog.ports import (
    AppendResult,
    GroupStats,
    LogStats,
    LogUnavailable,
    Record,
    TopicStats,
)
from hubbub.eventlog.retention import RetentionPolicy, check_not_expired
from hubbub.kernel.clock import Clock, SystemClock
from hubbub.kernel.events import Event, decode_many, encode_many, topic_of
from hubbub.kernel.sqlite import READ_CACHE_KIB, WriteLock, connect

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    topic TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    payload BLOB NOT NULL,
    appended REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS segments_by_last ON segments (topic, last);
CREATE TABLE IF NOT EXISTS event_ids (id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS consumer_groups (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (grp, topic)
);
"""

# SQLite's default limit on host parameters in one statement is 32766.
_IDS_PER_STATEMENT = 30_000
_POLL_INTERVAL_S = 0.05

_log = structlog.get_logger("hubbub.eventlog.sqlite")


class SqliteEventLog:
    """EventLog on a SQLite file; see `hubbub.eventlog.ports` for the contract."""

    backend = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        segment_size: int = 1000,
        retention: RetentionPolicy | None = None,
        retention_interval_s: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        """Open (or create) the log at `path`. Without a `retention` policy every topic
        is kept whole except `control`, which is compacted."""
        self._path = path
        self._segment_size = segment_size
        self._retention = retention or RetentionPolicy()
        self._retention_interval_s = retention_interval_s
        self._clock = clock or SystemClock()
        self._next_retention = 0.0
        self._retention_pass: asyncio.Future[None] | None = None
        self._compacted: dict[str, int] = {}
        self._writer = connect(path)
        self._write_lock = WriteLock(path)
        self._writer.executescript(_SCHEMA)
        self._add_appended_column()
        self._reader = connect(path, READ_CACHE_KIB)
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="eventlog-write")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="eventlog-read")
        self._cursors: dict[tuple[str, str], int] = {}
        self._appended = asyncio.Event()

    def _add_appended_column(self) -> None:
        """Give a log made before retention its `appended` column, dated now: its
        segments start their life today rather than expiring at once."""
        columns = {row[1] for row in self._writer.execute("PRAGMA table_info(segments)")}
        if "appended" in columns:
            return
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            self._writer.execute("ALTER TABLE segments ADD COLUMN appended REAL")
            self._writer.execute("UPDATE segments SET appended = ?", (self._now_s(),))
            self._writer.execute("COMMIT")

    def _now_s(self) -> float:
        return self._clock.now_us() / 1e6

    async def _run(self, pool: ThreadPoolExecutor, work: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, work)
        except sqlite3.Error as error:
            raise LogUnavailable(f"event log {self._path}: {error}") from error

    async def append(self, events: Sequence[Event]) -> AppendResult:
        if not events:
            return AppendResult()
        result = await self._run(self._write_thread, lambda: self._append(events))
        if result.appended:
            self._appended.set()
            self._schedule_retention()
        return result

    def _schedule_retention(self) -> None:
        """Queue a retention pass in the write thread when one is due; not awaited, so
        the append that triggers it returns at once."""
        now = time.monotonic()
        if now < self._next_retention or self._retention_pass is not None:
            return
        self._next_retention = now + self._retention_interval_s
        future = asyncio.get_running_loop().run_in_executor(
            self._write_thread, self._enforce_retention
        )
        self._retention_pass = future
        future.add_done_callback(self._retention_done)

    async def apply_retention(self) -> None:
        """Run a retention pass now, after the one in flight if any (appends run them
        on their own; this is for operators' tools and tests)."""
        if self._retention_pass is not None:
            with contextlib.suppress(Exception):
                await self._retention_pass
        await self._run(self._write_thread, self._enforce_retention)

    def _retention_done(self, future: asyncio.Future[None]) -> None:
        self._retention_pass = None
        if not future.cancelled() and future.exception() is not None:
            # The next pass retries; appends go on meanwhile.
            _log.error(
                "event log retention failed", path=str(self._path), error=str(future.exception())
            )

    def _enforce_retention(self) -> None:
        """Expire and compact every topic as its rule says (runs in the write thread)."""
        lasts = dict(self._writer.execute("SELECT topic, last FROM topics").fetchall())
        for topic, last in lasts.items():
            rule = self._retention.of(topic)
            if rule.compacted and self._compacted.get(topic) != last:
                removed = sqlite_retention.compact(self._writer, self._write_lock, topic)
                self._compacted[topic] = last
                if removed:  # routine, and run by every command that opens the log
                    _log.debug("event log compacted", topic=topic, removed=removed)
            elif rule.expires:
                removed = sqlite_retention.expire(
                    self._writer, self._write_lock, topic, rule, self._now_s()
                )
                if removed:
                    _log.info("event log retention", topic=topic, removed=removed)

    def _append(self, events: Sequence[Event]) -> AppendResult:
        # Few statements per batch, each covering many rows: a statement gives the GIL
        # up while SQLite works, and with the ingest thread busy, getting it back costs
        # up to a switch interval (5 ms), so per-row statements would wait per row.
        db = self._writer
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                fresh, skipped = self._without_known_ids(events)
                by_topic: dict[str, list[Event]] = {}
                for event in fresh:
                    by_topic.setdefault(topic_of(event), []).append(event)
                self._write_segments(by_topic)
                db.execute("COMMIT")
            except BaseException:
                # A full disk (SQLITE_FULL) has SQLite roll the transaction back itself;
                # a ROLLBACK then would fail and hide why.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return AppendResult(len(fresh), len(skipped), skipped)

    def _without_known_ids(self, events: Sequence[Event]) -> tuple[list[Event], list[str]]:
        """Record the ids of the batch; return the events to write and the duplicate ids.

        Duplicates are rare, so the common case costs one lookup and one insert statement
        per chunk and no Python work per event.
        """
        ids = [event.id for event in events]
        known = self._known_ids(ids)
        if not known and len(set(ids)) == len(ids):
            self._insert_ids(ids)
            return list(events), []
        fresh: list[Event] = []
        skipped: list[str] = []
        seen = set(known)
        for event in events:
            if event.id in seen:
                skipped.append(event.id)
            else:
                seen.add(event.id)
                fresh.append(event)
        self._insert_ids([event.id for event in fresh])
        return fresh, skipped

    def _known_ids(self, ids: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(ids), _IDS_PER_STATEMENT):
            chunk = ids[start : start + _IDS_PER_STATEMENT]
            marks = ",".join("?" * len(chunk))
            rows = self._writer.execute(f"SELECT id FROM event_ids WHERE id IN ({marks})", chunk)
            known.update(row[0] for row in rows)
        return known

    def _insert_ids(self, ids: list[str]) -> None:
        for start in range(0, len(ids), _IDS_PER_STATEMENT):
            chunk = ids[start : start + _IDS_PER_STATEMENT]
            values = ",".join(["(?)"] * len(chunk))
            self._writer.execute(f"INSERT INTO event_ids (id) VALUES {values}", chunk)

    def _write_segments(self, by_topic: dict[str, list[Event]]) -> None:
        if not by_topic:
            return
        (positions,) = self._writer.execute(
            "SELECT json_group_object(topic, last) FROM topics"
        ).fetchone()
        last_of: dict[str, int] = json.loads(positions)
        segments: list[object] = []
        now = self._now_s()
        for topic, events in by_topic.items():
            last = last_of.get(topic, 0)
            for start in range(0, len(events), self._segment_size):
                segment = events[start : start + self._segment_size]
                segments += (topic, last + 1, last + len(segment), encode_many(segment), now)
                last += len(segment)
            last_of[topic] = last
        step = _IDS_PER_STATEMENT // 5 * 5
        for start in range(0, len(segments), step):
            chunk = segments[start : start + step]
            rows = ",".join(["(?, ?, ?, ?, ?)"] * (len(chunk) // 5))
            self._writer.execute(
                f"INSERT INTO segments (topic, first, last, payload, appended) VALUES {rows}",
                chunk,
            )
        upserts = ",".join(["(?, ?)"] * len(by_topic))
        self._writer.execute(
            f"INSERT INTO topics VALUES {upserts} "
            "ON CONFLICT (topic) DO UPDATE SET last = excluded.last",
            [value for topic in by_topic for value in (topic, last_of[topic])],
        )

    async def read(self, topic: str, position: int = 1, limit: int = 1000) -> list[Record]:
        return await self._run(self._read_thread, lambda: self._read(topic, position, limit))

    def _read(self, topic: str, position: int, limit: int) -> list[Record]:
        position = max(position, 1)
        records: list[Record] = []
        rows = self._reader.execute(
            "SELECT first, payload FROM segments WHERE topic = ? AND last >= ? ORDER BY last",
            (topic, position),
        )
        for first, payload in rows:
            if not records and first > position:
                check_not_expired(topic, position, first, self._retention.of(topic))
            for offset, event in enumerate(decode_many(payload)):
                if first + offset >= position:
                    records.append(Record(topic, first + offset, event))
                    if len(records) >= limit:
                        return records
        return records

    async def fetch(
        self, group: str, topic: str, limit: int = 1000, wait: float = 0.0
    ) -> list[Record]:
        cursor = self._cursors.get((group, topic))
        if cursor is None:
            cursor = await self.committed(group, topic) + 1
        deadline = time.monotonic() + wait
        while True:
            self._appended.clear()
            records = await self.read(topic, cursor, limit)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                break
            # Woken at once by appends from this process, by polling for other processes.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, _POLL_INTERVAL_S)):
                    await self._appended.wait()
        self._cursors[(group, topic)] = records[-1].position + 1 if records else cursor
        return records

    async def commit(self, group: str, topic: str, position: int) -> None:
        await self._run(
            self._write_thread,
            lambda: self._writer.execute(
                "INSERT INTO consumer_groups VALUES (?, ?, ?) "
                "ON CONFLICT (grp, topic) DO UPDATE SET position = excluded.position",
                (group, topic, position),
            ),
        )

    async def committed(self, group: str, topic: str) -> int:
        row = await self._run(
            self._read_thread,
            lambda: self._reader.execute(
                "SELECT position FROM consumer_groups WHERE grp = ? AND topic = ?", (group, topic)
            ).fetchone(),
        )
        return int(row[0]) if row else 0

    async def stats(self) -> LogStats:
        return await self._run(self._read_thread, self._stats)

    def _stats(self) -> LogStats:
        last = dict(self._reader.execute("SELECT topic, last FROM topics").fetchall())
        topics = [
            TopicStats(topic, self._kept(topic, end), end) for topic, end in sorted(last.items())
        ]
        groups = [
            GroupStats(group, topic, position, max(last.get(topic, 0) - position, 0))
            for group, topic, position in self._reader.execute(
                "SELECT grp, topic, position FROM consumer_groups ORDER BY grp, topic"
            )
        ]
        return LogStats(self.backend, topics, groups)

    def _kept(self, topic: str, last: int) -> int:
        """How many events of the topic retention has kept."""
        if self._retention.of(topic).compacted:
            (count,) = self._reader.execute(
                "SELECT count(*) FROM segments WHERE topic = ?", (topic,)
            ).fetchone()
            return int(count)
        row = self._reader.execute(
            "SELECT first FROM segments WHERE topic = ? ORDER BY last LIMIT 1", (topic,)
        ).fetchone()
        return last - int(row[0]) + 1 if row else 0

    async def close(self) -> None:
        self._write_thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)
        self._writer.close()
        self._reader.close()
        self._write_lock.close()
