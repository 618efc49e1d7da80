"""The embedded rollups' post records, kept in SQLite beside the DuckDB file: a file made
when DuckDB held them opens with them moved; records of batches the rollups lack are
dropped; and they hold millions of posts under a small DuckDB memory limit."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import msgspec
import pytest

from hubbub.analytics.duckdb import DuckDBRollups, DuckDBStaging, LiveDuckDB, sweep_leftovers
from hubbub.analytics.ports import RejectedBatch
from hubbub.analytics.post_records import records_path
from hubbub.analytics.rollups import Contribution, Deltas
from hubbub.kernel.clock import SystemClock

POST = "at://did:plc:abc/app.bsky.feed.post/3kabc"


def test_records_keyed_by_text_are_found_after_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    old = duckdb.connect(str(path))
    old.execute(
        "CREATE TABLE post_contribution (post TEXT PRIMARY KEY, minute BIGINT NOT NULL,"
        " record BLOB)"
    )
    before = Contribution(5, "did:plc:abc", "jetstream", False, tags=("duckdb",))
    old.execute(
        "INSERT INTO post_contribution VALUES (?, ?, ?)",
        [POST, 5, msgspec.msgpack.encode(before)],
    )
    old.close()

    store = DuckDBRollups(path)
    try:
        assert store.contributions({POST, "at://did:plc:abc/app.bsky.feed.post/other"}) == {
            POST: before
        }
    finally:
        store.close()
    store = DuckDBRollups(path)  # opened again: nothing left to convert
    try:
        assert store.contributions({POST}) == {POST: before}
    finally:
        store.close()


def _posted(n: int) -> Contribution:
    return Contribution(n, f"did:plc:{n}", "jetstream", False, tags=("duckdb",))


CLOCK = SystemClock()


def _batch(store: DuckDBRollups, first: int, count: int, since: int) -> int:
    """Apply the records of posts `first` .. `first + count - 1` as one batch of the
    `posts` topic read after `since`; returns the position reached."""
    deltas = Deltas()
    deltas.contributions.update({f"{POST}/{n}": _posted(n) for n in range(first, first + count)})
    store.apply(deltas, {"posts": since + count}, {"posts": since})
    return since + count


def test_records_of_a_batch_the_rollups_refused_are_not_kept(tmp_path: Path) -> None:
    store = DuckDBRollups(tmp_path / "analytics.duckdb")
    try:
        reached = _batch(store, 0, 10, 0)
        deltas = Deltas()
        deltas.contributions[f"{POST}/new"] = _posted(10)
        deltas.langs[("en", "jetstream", 2**70)] = 1  # too large for a BIGINT
        with pytest.raises(RejectedBatch):
            store.apply(deltas, {"posts": reached + 1}, {"posts": reached})
        assert store.contributions({f"{POST}/new", f"{POST}/3"}) == {f"{POST}/3": _posted(3)}
        assert _batch(store, 20, 5, reached) == reached + 5
        assert len(store.contributions({f"{POST}/{n}" for n in range(30)})) == 15
    finally:
        store.close()


def test_records_copied_after_their_rollups_are_cut_back_to_the_rollups_batch(
    tmp_path: Path,
) -> None:
    """A backup copies the rollups, then the records while the worker goes on: restored,
    the records the rollups never counted are gone, so those posts count when folded."""
    live, copy = tmp_path / "live", tmp_path / "copy"
    store = DuckDBRollups(live / "analytics.duckdb")
    try:
        reached = _batch(store, 0, 100, 0)
        store.query("CHECKPOINT")
        copy.mkdir()
        shutil.copy(live / "analytics.duckdb", copy / "analytics.duckdb")
        for batch in range(1, 4):  # the worker folds on while the backup runs
            reached = _batch(store, batch * 100, 100, reached)
    finally:
        store.close()
    shutil.copy(records_path(live / "analytics.duckdb"), records_path(copy / "analytics.duckdb"))

    restored = DuckDBRollups(copy / "analytics.duckdb")
    try:
        assert restored.positions() == {"posts": 100}
        known = restored.contributions({f"{POST}/{n}" for n in range(400)})
        assert set(known) == {f"{POST}/{n}" for n in range(100)}
        assert _batch(restored, 100, 100, 100) == 200  # folded again, they are recorded
        assert len(restored.contributions({f"{POST}/{n}" for n in range(400)})) == 200
    finally:
        restored.close()


def test_records_beside_rollups_made_anew_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    store = DuckDBRollups(path)
    _batch(store, 0, 10, 0)
    store.close()
    path.unlink()  # the rollups are deleted to start again; their records stay
    store = DuckDBRollups(path)
    try:
        assert store.contributions({f"{POST}/{n}" for n in range(10)}) == {}
    finally:
        store.close()


def test_a_killed_rebuilds_files_are_removed_when_the_role_starts(tmp_path: Path) -> None:
    killed = DuckDBStaging(tmp_path)
    _batch(killed.store, 0, 10, 0)
    killed.store.close()
    killed._running.close()  # as the kernel does when the rebuild's process is killed
    orphan = tmp_path / "analytics-gone.posts.db"  # records whose rollups were removed
    orphan.write_bytes(b"")
    before = {p.name for p in tmp_path.iterdir()}
    live = LiveDuckDB(tmp_path, CLOCK)  # the analytics role starts
    try:
        gone = sorted(before - {p.name for p in tmp_path.iterdir()})
        assert [name.rsplit(".", 1)[-1] for name in gone] == ["building", "db", "db"]
        assert orphan.name in gone
        assert records_path(live.path).exists()  # the live rollups keep theirs
    finally:
        live.close()


def test_while_a_rebuild_runs_no_leftover_is_touched(tmp_path: Path) -> None:
    killed = DuckDBStaging(tmp_path)
    killed.store.close()
    killed._running.close()
    running = DuckDBStaging(tmp_path)  # its lock is what another process would hold
    _batch(running.store, 0, 10, 0)
    before = sorted(p.name for p in tmp_path.iterdir())
    live = LiveDuckDB(tmp_path, CLOCK)
    try:
        assert sorted(p.name for p in tmp_path.iterdir() if p.name in before) == before
        promoted = Path(running.promote())  # the rebuild ends, and is swapped in
        assert promoted.exists()
        assert records_path(promoted).exists()
    finally:
        live.close()
    removed = sweep_leftovers(tmp_path)  # no rebuild runs now: the killed one's files
    assert sorted(p.name.rsplit(".", 1)[-1] for p in removed) == ["building", "db"]
    assert not list(tmp_path.glob("*.building"))


def test_records_do_not_count_against_duckdbs_memory_limit(tmp_path: Path) -> None:
    """Kept in DuckDB, a primary key's index of a million posts needs about 60 MB that
    DuckDB cannot spill: at a 32 MB limit, writes failed with an out-of-memory error."""
    store = DuckDBRollups(tmp_path / "analytics.duckdb", memory_limit="32MB")
    try:
        reached = 0
        for first in range(0, 1_000_000, 50_000):
            reached = _batch(store, first, 50_000, reached)
        wanted = {f"{POST}/{n}" for n in (0, 499_999, 999_999, 1_000_000)}
        assert set(store.contributions(wanted)) == wanted - {f"{POST}/1000000"}
    finally:
        store.close()
