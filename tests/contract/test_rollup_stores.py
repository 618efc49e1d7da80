"""One contract for both rollup stores: DuckDB (embedded) and PostgreSQL (scale-out).

The PostgreSQL store runs against the real server, in a database made for each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import psycopg
import pytest
from psycopg import sql

from hubbub.analytics import service
from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.ports import StalePositions
from hubbub.analytics.postgres import PostgresRollups
from hubbub.analytics.rollups import GLOBAL_TIERS, Contribution, Deltas
from hubbub.analytics.service import Window
from hubbub.analytics.worker import catch_up
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import SystemClock
from tests.conftest import postgres_database
from tests.support.reports import EVENTS
from tests.support.rollups import Store, activity, everything, rollup_store

CLOCK = SystemClock()


@pytest.fixture(params=["duckdb", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with rollup_store(request.param, tmp_path, "hubbub_rollups") as built:
        yield built


WINDOW = Window(
    datetime.fromisoformat("2026-03-29T00:00Z"), datetime.fromisoformat("2026-03-29T04:00Z")
)


async def fill(store: Store, tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        await log.append(EVENTS)
        assert await catch_up(store, log, batch=3, clock=CLOCK) == len(EVENTS)
    finally:
        await log.close()


async def test_both_stores_answer_the_same_reports(store: Store, tmp_path: Path) -> None:
    await fill(store, tmp_path)
    assert store.positions() == {"posts": 5, "engagement": 4, "deletes": 1}
    assert service.top(store.query, "hashtags", WINDOW, 10, 0) == [
        ("python", 3), ("rust", 2), ("duckdb", 1),
    ]  # fmt: skip
    assert service.top(store.query, "engaged", WINDOW, 10, 0) == [("alice", 1), ("bob", 1)]
    assert service.page_summary(store.query, "bob", WINDOW)["posts"] == 2
    series = service.series(
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


class Stores:
    """Opens stores of one kind by name (DuckDB files, or PostgreSQL schemas of one
    database), and changes their tables behind their back, as an older version would."""

    def __init__(self, directory: Path, dsn: str | None) -> None:
        self.directory, self.dsn = directory, dsn
        self.opened: list[Store] = []

    def open(self, name: str = "") -> Store:
        name = name or f"rollups{len(self.opened)}"
        if self.dsn is None:
            store: Store = DuckDBRollups(self.directory / f"{name}.duckdb")
        else:
            store = PostgresRollups(self.dsn, schema=name)
        self.opened.append(store)
        return store

    def alter(self, name: str, statement: str) -> None:
        if self.dsn is None:
            with duckdb.connect(str(self.directory / f"{name}.duckdb")) as db:
                db.execute(statement)
            return
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
            conn.execute(statement)  # type: ignore[arg-type]  # (the tests' own SQL)


@pytest.fixture(params=["duckdb", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "duckdb":
        made = Stores(tmp_path, None)
        yield made
    else:
        with postgres_database("hubbub_rollups") as dsn:
            made = Stores(tmp_path, dsn)
            yield made
    for store in made.opened:
        store.close()


async def test_deletes_read_before_their_posts_count_as_a_rebuild_does(
    stores: Stores, tmp_path: Path
) -> None:
    posts, others = activity()
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        live = stores.open()
        await log.append(others)  # the deletes and engagement topics are read first
        assert await catch_up(live, log, clock=CLOCK) == len(others)
        await log.append(posts)
        assert await catch_up(live, log, clock=CLOCK) == len(posts)
        rebuilt = stores.open()
        assert await catch_up(rebuilt, log, clock=CLOCK) == len(posts) + len(others)
    finally:
        await log.close()
    assert everything(live) == everything(rebuilt)
    (row,) = live.query("SELECT sum(posts), sum(deleted), sum(likes) FROM global_minute")
    assert tuple(map(int, row)) == (40, 20, 20)


def test_totals_by_hour_and_day_are_kept_beside_the_minutes(store: Store) -> None:
    deltas = Deltas()
    for minute, posts in ((10, 1), (70, 2), (1500, 4)):
        deltas.totals[minute]["posts"] += posts
        deltas.totals[minute]["deleted"] += 1
    store.apply(deltas, {"posts": 1}, {})
    store.prune({"minute": 2000})
    assert store.query("SELECT minute, posts, deleted FROM global_hour ORDER BY minute") == [
        (0, 1, 1), (60, 2, 1), (1500, 4, 1),
    ]  # fmt: skip
    assert store.query("SELECT minute, posts, deleted FROM global_day ORDER BY minute") == [
        (0, 3, 2), (1440, 4, 1),
    ]  # fmt: skip
    assert store.query("SELECT count(*) FROM global_minute") == [(0,)]


def test_a_database_from_before_the_total_tiers_gets_them_filled(stores: Stores) -> None:
    old = stores.open("old")
    deltas = Deltas()
    deltas.totals[10]["posts"] += 1
    deltas.totals[1500]["likes"] += 2
    old.apply(deltas, {"posts": 1}, {})
    old.close()
    for table in GLOBAL_TIERS:
        stores.alter("old", f"DROP TABLE {table}")
    reopened = stores.open("old")
    assert reopened.query("SELECT minute, posts, likes FROM global_day ORDER BY minute") == [
        (0, 1, 0), (1440, 0, 2),
    ]  # fmt: skip
    assert reopened.query("SELECT sum(posts), sum(likes) FROM global_fourweek") == [(1, 2)]
    stores.open("old").close()  # opened again, nothing is added twice
    assert reopened.query("SELECT sum(posts), sum(likes) FROM global_fourweek") == [(1, 2)]
