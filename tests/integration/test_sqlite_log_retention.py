"""What the SQLite log's retention removes from the file, beyond the shared contract."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hubbub.eventlog import retention
from hubbub.eventlog.retention import DAY_S, RetentionPolicy
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import POSTS, encode_many
from tests.conftest import post

Open = Callable[..., SqliteEventLog]


@pytest.fixture
async def open_log(tmp_path: Path) -> AsyncIterator[Open]:
    opened: list[SqliteEventLog] = []

    def open_sqlite(policy: RetentionPolicy, clock: FixedClock) -> SqliteEventLog:
        log = SqliteEventLog(
            tmp_path / "log.db",
            segment_size=100,
            retention=policy,
            retention_interval_s=0,
            clock=clock,
        )
        opened.append(log)
        return log

    yield open_sqlite
    for log in opened:
        await log.close()


def rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(count)


async def settle(log: SqliteEventLog) -> None:
    """Run the retention pass an append would run."""
    await log.apply_retention()


async def test_expired_segments_go_with_their_ids_and_the_file_stops_growing(
    open_log: Open, tmp_path: Path
) -> None:
    clock = FixedClock()
    log = open_log(retention.policy(firehose_days=1), clock)
    for day in range(5):
        await log.append([post(n) for n in range(day * 1000, day * 1000 + 1000)])
        clock.advance(DAY_S * 0.75)
        await settle(log)
    # Days 0..3 are older than a day; day 4's thousand posts are 0.75 days old.
    assert [r.position for r in await log.read(POSTS, 1, limit=5000)] == list(range(4001, 5001))
    assert rows(tmp_path / "log.db", "segments") == 10
    assert rows(tmp_path / "log.db", "event_ids") == 1000
    again = await log.append([post(0)])
    assert again.appended == 1, "an expired event's id is forgotten with its segment"
    assert [r.position for r in await log.read(POSTS, 5001)] == [5001]


async def test_a_size_cap_removes_the_oldest_segments_first(open_log: Open) -> None:
    clock = FixedClock()
    log = open_log(retention.policy(firehose_days=0, firehose_bytes=30_000), clock)
    await log.append([post(n, text="x" * 100) for n in range(1000)])
    await settle(log)
    kept = [r.position for r in await log.read(POSTS, 1, limit=5000)]
    assert kept == list(range(kept[0], 1001))
    assert 100 <= len(kept) <= 300


async def test_a_log_from_before_retention_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE segments (topic TEXT NOT NULL, first INTEGER NOT NULL,"
            " last INTEGER NOT NULL, payload BLOB NOT NULL);"
            "CREATE TABLE topics (topic TEXT PRIMARY KEY, last INTEGER NOT NULL);"
        )
        db.execute(
            "INSERT INTO segments VALUES ('posts', 1, 3, ?)",
            (encode_many([post(1), post(2), post(3)]),),
        )
        db.execute("INSERT INTO topics VALUES ('posts', 3)")
    clock = FixedClock()
    log = SqliteEventLog(
        path, retention=retention.policy(firehose_days=1), retention_interval_s=0, clock=clock
    )
    try:
        clock.advance(DAY_S / 2)
        await settle(log)
        assert [r.event for r in await log.read(POSTS)] == [post(1), post(2), post(3)]
        clock.advance(DAY_S)
        await settle(log)
        assert await log.read(POSTS) == []
        assert (await log.append([post(4)])).appended == 1
        assert [r.position for r in await log.read(POSTS)] == [4]
    finally:
        await log.close()
