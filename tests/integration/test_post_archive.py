"""The raw post archive: the log's posts and deletes as hourly Parquet files, read back
with DuckDB as an analyst would, exact after a crash, compacted and pruned by the hour."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hubbub.analytics.archive import PostArchive
from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.worker import archive_once, enforce_retention
from hubbub.bootstrap import build_platform
from hubbub.eventlog.ports import EventLog
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import DELETES, POSTS, PostDeleted, PostEdited, PostPublished
from hubbub.settings import Settings

PostEvent = PostPublished | PostDeleted
HOUR = datetime(2026, 3, 29, 10, tzinfo=UTC)


def at(hours: float) -> int:
    """Microseconds since the epoch, `hours` after HOUR."""
    return int((HOUR + timedelta(hours=hours)).timestamp() * 1_000_000)


def post(n: int, hours: float) -> PostPublished:
    return PostPublished(
        id=f"p{n}", key="alice", ts=at(hours), source="jetstream", post=f"post{n}",
        author="alice", text=f"post number {n}", tags=["rain"], langs=["en"],
    )  # fmt: skip


def delete(n: int, hours: float) -> PostDeleted:
    return PostDeleted(
        id=f"d{n}", key="alice", ts=at(hours), source="jetstream", post=f"post{n}", author="alice"
    )


def rows(archive: PostArchive, topic: str = POSTS) -> list[tuple[Any, ...]]:
    """`(post, hour)` of every archived row, sorted, as DuckDB reads the files."""
    return duckdb.sql(
        f"SELECT post, hour FROM read_parquet('{archive.pattern(topic)}', hive_partitioning = true)"
        " ORDER BY post, hour"
    ).fetchall()


def files(archive: PostArchive) -> list[str]:
    """The archive's files, but for its hidden lock file."""
    return sorted(
        str(p.relative_to(archive.root))
        for p in archive.root.rglob("*")
        if p.is_file() and p.name != ".lock"
    )


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    opened = SqliteEventLog(tmp_path / "eventlog.db")
    yield opened
    await opened.close()


async def test_the_sample_firehose_is_archived_once_as_hourly_parquet(
    tmp_path: Path, jetstream_lines: list[bytes]
) -> None:
    platform = await build_platform(Settings(data_dir=tmp_path / "data"), FixedClock())
    try:
        await (await platform.ingestor("jetstream")).ingest(jetstream_lines)
        log = platform.event_log
        in_log = {t: [r.event for r in await log.read(t, 1, 10_000)] for t in (POSTS, DELETES)}
        logged = {t: sorted(e.post for e in in_log[t] if isinstance(e, PostEvent)) for t in in_log}
        archive = PostArchive(tmp_path / "archive")

        written = await archive_once(archive, log)
        assert written == len(in_log[POSTS]) + len(in_log[DELETES]) > 0
        assert archive.hours(POSTS)
        assert archive.hours(DELETES)
        parquet = [n for n in files(archive) if n != "positions.json"]
        assert all(n.startswith(("posts/hour=", "deletes/hour=")) for n in parquet)
        assert all(n.endswith(".parquet") for n in parquet)
        for topic in (POSTS, DELETES):
            assert sorted(p for p, _ in rows(archive, topic)) == logged[topic]
        edited = duckdb.sql(
            f"SELECT count(*) FILTER (WHERE edited), count(*) FROM '{archive.pattern()}'"
        ).fetchone()
        assert edited == (
            sum(isinstance(e, PostEdited) for e in in_log[POSTS]),
            len(in_log[POSTS]),
        )
        last = {t.topic: t.last_position for t in (await log.stats()).topics}
        assert archive.positions() == {POSTS: last[POSTS], DELETES: last[DELETES]}

        before = files(archive)
        assert await archive_once(archive, log) == 0
        assert files(archive) == before
    finally:
        await platform.close()


async def test_the_columns_hold_the_post_as_it_was_logged(tmp_path: Path, log: EventLog) -> None:
    await log.append([post(1, 0.5)])
    archive = PostArchive(tmp_path / "archive")
    await archive_once(archive, log)
    (row,) = duckdb.sql(
        "SELECT post, author, epoch_us(ts), minute, source, text, langs, tags, mentions,"
        " reply_parent, edited, hour"
        f" FROM read_parquet('{archive.pattern()}', hive_partitioning = true)"
    ).fetchall()
    assert row == (
        "post1", "alice", at(0.5), at(0.5) // 60_000_000, "jetstream",
        "post number 1", ["en"], ["rain"], [], None, False, "2026-03-29T10",
    )  # fmt: skip
    assert files(archive) == ["positions.json", "posts/hour=2026-03-29T10/1-1.parquet"]


async def test_files_written_past_the_positions_are_dropped_and_written_again_once(
    tmp_path: Path, log: EventLog
) -> None:
    archive = PostArchive(tmp_path / "archive")
    await log.append([post(n, n / 10) for n in range(1, 11)])  # 10:00 to 11:00
    await archive_once(archive, log)
    committed = files(archive)
    positions = (archive.root / "positions.json").read_bytes()

    await log.append([post(n, n / 10) for n in range(11, 21)] + [delete(n, 2) for n in (2, 3)])
    records = [r for t in (POSTS, DELETES) for r in await log.read(t, 1, 100)]
    archive.write(records)  # the batch's files are written...
    (archive.root / "positions.json").write_bytes(positions)  # ...the process dies before this
    stray = archive.root / "posts" / "hour=2026-03-29T09" / "999-1000.parquet"
    stray.parent.mkdir()
    stray.write_bytes(b"half a file")
    (archive.root / "posts" / "hour=2026-03-29T10" / ".11-20.parquet.tmp").write_bytes(b"")
    assert len(files(archive)) > len(committed)

    reopened = PostArchive(archive.root)
    assert files(reopened) == committed
    assert await archive_once(reopened, log) == 10 + 2
    posts = rows(reopened)
    assert len(posts) == len({p for p, _ in posts}) == 20
    assert [p for p, _ in rows(reopened, DELETES)] == ["post2", "post3"]
    assert reopened.positions() == {POSTS: 20, DELETES: 2}


async def test_compact_merges_a_finished_hours_files_into_one_with_the_same_rows(
    tmp_path: Path, log: EventLog
) -> None:
    archive = PostArchive(tmp_path / "archive")
    for batch in range(4):  # four cuts, each with posts in hour 10 and in hour 11
        await log.append([post(10 * batch + n, n / 5) for n in range(1, 10)])
        await archive_once(archive, log)
    before = rows(archive)
    assert len(list((archive.root / "posts" / "hour=2026-03-29T10").iterdir())) == 4

    assert archive.compact(before=HOUR + timedelta(hours=1)) == 1  # hour 11 is not over
    assert rows(archive) == before
    assert sorted(p.name for p in (archive.root / "posts" / "hour=2026-03-29T10").iterdir()) == [
        "1-36.parquet"
    ]
    assert len(list((archive.root / "posts" / "hour=2026-03-29T11").iterdir())) == 4
    assert archive.compact(before=HOUR + timedelta(hours=2)) == 1
    assert rows(archive) == before


async def test_parts_a_compaction_had_already_merged_are_dropped_on_opening(
    tmp_path: Path, log: EventLog
) -> None:
    archive = PostArchive(tmp_path / "archive")
    folder = archive.root / "posts" / "hour=2026-03-29T10"
    for batch in range(3):
        await log.append([post(batch * 10 + n, 0.1 * n) for n in range(1, 4)])
        await archive_once(archive, log)
    parts = {path.name: path.read_bytes() for path in folder.iterdir()}
    before = rows(archive)
    archive.compact(before=HOUR + timedelta(hours=1))
    for name, content in parts.items():  # the compaction died before deleting its parts
        (folder / name).write_bytes(content)

    reopened = PostArchive(archive.root)
    assert sorted(p.name for p in folder.iterdir()) == ["1-9.parquet"]
    assert rows(reopened) == before


async def test_prune_drops_the_hours_that_ended_before_the_horizon(
    tmp_path: Path, log: EventLog
) -> None:
    archive = PostArchive(tmp_path / "archive")
    await log.append([post(n, n) for n in range(5)] + [delete(0, 0.5), delete(4, 4.5)])
    await archive_once(archive, log)
    assert archive.hours() == [f"2026-03-29T{h}" for h in range(10, 15)]

    # Hours 10 and 11 of posts and hour 10 of deletes ended before 12:30.
    assert archive.prune(before=HOUR + timedelta(hours=2, minutes=30)) == 3
    assert archive.hours() == ["2026-03-29T12", "2026-03-29T13", "2026-03-29T14"]
    assert archive.hours(DELETES) == ["2026-03-29T14"]
    assert [p for p, _ in rows(archive)] == ["post2", "post3", "post4"]


async def test_retention_merges_and_drops_archived_hours_with_the_rollups(
    tmp_path: Path, log: EventLog
) -> None:
    archive = PostArchive(tmp_path / "archive")
    for hours in (0, 0.5, 25, 25.5):  # two files in each of two hours, a day apart
        await log.append([post(int(hours * 10), hours)])
        await archive_once(archive, log)
    store = DuckDBRollups(tmp_path / "rollups.duckdb")
    try:
        done = enforce_retention(
            store, archive, {"minute": 0}, HOUR + timedelta(days=1), datetime.now(UTC)
        )
    finally:
        store.close()
    assert (done["hours_merged"], done["hours_dropped"]) == (2, 1)
    assert archive.hours() == ["2026-03-30T11"]
    assert [p.name for p in (archive.root / "posts" / "hour=2026-03-30T11").iterdir()] == [
        "3-4.parquet"
    ]
    assert [p for p, _ in rows(archive)] == ["post250", "post255"]


def archived(archive: PostArchive, topic: str) -> list[str]:
    """Every row's post id in the topic's files, duplicates included."""
    if not list((archive.root / topic).glob("*/*.parquet")):
        return []
    query = f"SELECT post FROM '{archive.pattern(topic)}'"
    return [row[0] for row in duckdb.sql(query).fetchall()]


def last_committed(journal: Path) -> tuple[int, int]:
    """The positions of posts and deletes the writer last saw committed (0, 0: none)."""
    # A line cut short by the kill is not a commit the writer reported.
    text = journal.read_text()
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    whole = [line.split() for line in lines]
    return (int(whole[-1][0]), int(whole[-1][1])) if whole else (0, 0)


@pytest.mark.parametrize("seed", range(5))
def test_a_writer_killed_at_random_moments_loses_and_doubles_no_committed_row(
    tmp_path: Path, seed: int
) -> None:
    """A process writes and compacts from two threads, as the worker does, and is killed
    with SIGKILL at random moments, eight times; after each kill the reopened archive
    holds every row up to its positions exactly once, and its positions never fall
    behind what the writer was told was committed."""
    rng = random.Random(seed)
    root, journal = tmp_path / "archive", tmp_path / "journal"
    journal.touch()
    repo = Path(__file__).parents[2]
    for _ in range(8):
        committed_before = last_committed(journal)
        writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.archive_writer",
                str(root),
                str(journal),
                str(rng.randrange(2**32)),
            ],
            cwd=repo,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 20
            while last_committed(journal) == committed_before and writer.poll() is None:
                assert time.monotonic() < deadline, "the writer committed nothing in 20 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            writer.kill()
            _, errors = writer.communicate()
        assert writer.returncode == -signal.SIGKILL, errors.decode()
        assert b"Traceback" not in errors, errors.decode()

        posts, deletes = last_committed(journal)
        reopened = PostArchive(root)
        stored = reopened.positions()
        assert stored[POSTS] >= posts  # nothing the writer was told is committed is lost
        assert stored[DELETES] >= deletes
        expected_posts = [f"p{n}" for n in range(1, stored[POSTS] + 1)]
        expected_deletes = [f"d{n}" for n in range(1, stored[DELETES] + 1)]
        assert sorted(archived(reopened, POSTS)) == sorted(expected_posts)
        assert sorted(archived(reopened, DELETES)) == sorted(expected_deletes)
