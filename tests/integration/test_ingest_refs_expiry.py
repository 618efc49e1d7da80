"""The ingest state forgets refs (likes, reposts, follows) after their lifetime."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hubbub.ingest.sqlite import SqliteIngestState
from hubbub.kernel.clock import FixedClock

DAY_S = 86_400.0


async def test_refs_not_put_again_within_their_lifetime_are_forgotten(tmp_path: Path) -> None:
    clock = FixedClock()
    state = SqliteIngestState(tmp_path / "ingest.db", ref_ttl_s=30 * DAY_S, clock=clock)
    try:
        await state.apply_refs({"like/old": "post-1", "follow/kept": "page-1"}, ())
        clock.advance(16 * DAY_S)
        await state.apply_refs({"follow/kept": "page-1", "like/new": "post-2"}, ())
        assert await state.get_refs(["like/old", "follow/kept"]) == {
            "like/old": "post-1",
            "follow/kept": "page-1",
        }
        clock.advance(16 * DAY_S)
        await state.apply_refs({"repost/newest": "post-3"}, ())
        found = await state.get_refs(["like/old", "follow/kept", "like/new", "repost/newest"])
        assert found == {"follow/kept": "page-1", "like/new": "post-2", "repost/newest": "post-3"}
        await state.apply_refs({}, ["like/new"])
        assert await state.get_refs(["like/new"]) == {}
        await state.save_cursor("jetstream", 42)
        clock.advance(365 * DAY_S)
        await state.apply_refs({"like/latest": "post-4"}, ())
        clock.advance(16 * DAY_S)
        await state.apply_refs({"like/last": "post-5"}, ())
        assert await state.load_cursor("jetstream") == 42
    finally:
        await state.close()
    with sqlite3.connect(tmp_path / "ingest.db") as db:
        kept = db.execute("SELECT key FROM refs UNION ALL SELECT key FROM refs_previous")
        assert sorted(kept.fetchall()) == [("like/last",), ("like/latest",)]


async def test_refs_from_before_expiry_start_their_lifetime_when_first_opened(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ingest.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE refs (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
        db.execute("INSERT INTO refs VALUES ('like/old', 'post-1')")
    clock = FixedClock()
    state = SqliteIngestState(path, ref_ttl_s=30 * DAY_S, clock=clock)
    try:
        clock.advance(20 * DAY_S)
        await state.apply_refs({"like/new": "post-2"}, ())
        assert await state.get_refs(["like/old"]) == {"like/old": "post-1"}
        clock.advance(20 * DAY_S)
        await state.apply_refs({"like/newer": "post-3"}, ())
        assert await state.get_refs(["like/old", "like/new"]) == {"like/new": "post-2"}
    finally:
        await state.close()
