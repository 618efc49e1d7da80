"""A DuckDB rollups file made when post records were keyed by the post's text opens with
its records kept: a delete read after the upgrade still takes its post's counts away."""

from __future__ import annotations

from pathlib import Path

import duckdb
import msgspec

from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.rollups import Contribution

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
