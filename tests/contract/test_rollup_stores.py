"""One contract for both rollup stores: DuckDB (embedded) and PostgreSQL (scale-out).

The PostgreSQL store runs against the real server, in a database made for each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest

from hubbub.analytics import reports
from hubbub.analytics.duckdb_store import DuckDBRollups
from hubbub.analytics.ports import StalePositions
from hubbub.analytics.postgres_store import PostgresRollups
from hubbub.analytics.reports import Window
from hubbub.analytics.rollups import Contribution, Deltas
from hubbub.analytics.worker import catch_up
from hubbub.eventlog.sqlite import SqliteEventLog
from tests.conftest import postgres_database
from tests.e2e.test_reports import EVENTS


class Store(Protocol):
    def positions(self) -> dict[str, int]: ...
    def contributions(self, posts: set[str]) -> dict[str, Contribution]: ...
    def apply(self, deltas: Deltas, positions: dict[str, int], since: dict[str, int]) -> None: ...
    def prune(self, horizons: dict[str, int]) -> int: ...
    def compact(self, *, force: bool = False) -> int: ...
    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]: ...
    def close(self) -> None: ...


@pytest.fixture(params=["duckdb", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "duckdb":
        built: Store = DuckDBRollups(tmp_path / "rollups.duckdb")
        yield built
        built.close()
        return
    with postgres_database("hubbub_rollups") as dsn:
        built = PostgresRollups(dsn)
        yield built
        built.close()


WINDOW = Window(
    datetime.fromisoformat("2026-03-29T00:00Z"), datetime.fromisoformat("2026-03-29T04:00Z")
)


async def fill(store: Store, tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        await log.append(EVENTS)
        assert await catch_up(store, log, batch=3) == len(EVENTS)
    finally:
        await log.close()


async def test_both_stores_answer_the_same_reports(store: Store, tmp_path: Path) -> None:
    await fill(store, tmp_path)
    assert store.positions() == {"posts": 5, "engagement": 4, "deletes": 1}
    assert reports.top(store.query, "hashtags", WINDOW, 10, 0) == [
        ("python", 3), ("rust", 2), ("duckdb", 1),
    ]  # fmt: skip
    assert reports.top(store.query, "engaged", WINDOW, 10, 0) == [("alice", 1), ("bob", 1)]
    assert reports.page_summary(store.query, "bob", WINDOW)["posts"] == 2
    series = reports.series(
        store.query, "hashtag", "python", WINDOW, "hour", ZoneInfo("Europe/Paris")
    )
    assert [(moment.isoformat(), n) for moment, n in series] == [
        ("2026-03-29T01:00:00+01:00", 2),
        ("2026-03-29T03:00:00+02:00", 1),
        ("2026-03-29T04:00:00+02:00", 0),
        ("2026-03-29T05:00:00+02:00", 0),
    ]


async def test_what_a_post_added_is_kept_for_its_delete(store: Store, tmp_path: Path) -> None:
    await fill(store, tmp_path)
    found = store.contributions({"post1", "post5", "missing"})
    assert set(found) == {"post1", "post5"}
    assert (found["post1"].tags, found["post1"].mentions) == (("python", "duckdb"), ("bob",))
    assert found["post5"].deleted


async def test_a_failed_batch_leaves_rollups_and_positions_as_they_were(
    store: Store, tmp_path: Path
) -> None:
    await fill(store, tmp_path)
    before = store.query("SELECT sum(posts) FROM global_minute")
    deltas = Deltas()
    deltas.totals[1]["posts"] += 1000
    with pytest.raises(Exception):  # noqa: B017, PT011 (each database raises its own error)
        store.apply(deltas, {"posts": None}, store.positions())  # type: ignore[dict-item]
    assert store.query("SELECT sum(posts) FROM global_minute") == before
    assert store.positions() == {"posts": 5, "engagement": 4, "deletes": 1}


async def test_a_batch_read_from_positions_that_moved_is_refused(
    store: Store, tmp_path: Path
) -> None:
    await fill(store, tmp_path)
    before = store.query("SELECT sum(posts) FROM global_minute")
    deltas = Deltas()
    deltas.totals[1]["posts"] += 1000
    with pytest.raises(StalePositions):
        store.apply(deltas, {"posts": 9}, {"posts": 2})  # the store is at 5, not 2
    assert store.query("SELECT sum(posts) FROM global_minute") == before
    assert store.positions()["posts"] == 5


async def test_tracked_terms_are_recorded_once_with_their_first_minute(store: Store) -> None:
    first, again = Deltas(), Deltas()
    first.tracked = {"climate change": 100}
    first.terms[("climate change", 100)] += 2
    store.apply(first, {"posts": 1}, {})
    again.tracked = {"climate change": 200}
    store.apply(again, {"posts": 2}, {"posts": 1})
    assert store.query("SELECT term, since FROM tracked_term") == [("climate change", 100)]
    assert store.query("SELECT sum(posts) FROM term_day") == [(2,)]


async def test_prune_drops_each_tier_before_its_horizon(store: Store) -> None:
    deltas = Deltas()
    for minute in (10, 2000, 5000):
        deltas.tags[("old", minute)] += 1
        deltas.totals[minute]["posts"] += 1
    deltas.contributions["p"] = Contribution(10, "a", "s", False)
    store.apply(deltas, {"posts": 1}, {})
    assert store.prune({"minute": 4000, "hour": 1900, "day": 0, "posts": 1000}) > 0
    assert sorted(store.query("SELECT minute FROM tag_minute")) == [(5000,)]
    assert sorted(store.query("SELECT minute FROM tag_hour")) == [(1980,), (4980,)]
    assert store.query("SELECT sum(posts) FROM tag_day") == [(3,)]
    assert store.query("SELECT count(*) FROM global_minute") == [(1,)]
    assert store.contributions({"p"}) == {}
