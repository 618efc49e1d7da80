"""The StagedRollups contract, run against every adapter (see hubbub.analytics.ports).

Both are built through `bootstrap.open_staged_rollups` and `open_rollups` with the
settings that pick them: DuckDB files in the data dir, and PostgreSQL schemas on the
real server, in a database made for each test. Readers under a live worker during a
swap are tested in `tests/integration/test_rollup_rebuild.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from hubbub.analytics.ports import RollupStore
from hubbub.analytics.worker import catch_up
from hubbub.bootstrap import open_rollups, open_staged_rollups
from hubbub.eventlog.ports import EventLog
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import SystemClock
from hubbub.settings import Settings
from tests.conftest import postgres_database, until
from tests.support.reports import EVENTS

CLOCK = SystemClock()

ALL_POSITIONS = {"posts": 5, "engagement": 4, "deletes": 1}


@pytest.fixture(params=["duckdb", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "duckdb":
        yield Settings(data_dir=tmp_path, analytics_store="duckdb")
        return
    with postgres_database("hubbub_staged") as dsn:
        yield Settings(
            data_dir=tmp_path, analytics_store="postgres", analytics_postgres_url=SecretStr(dsn)
        )


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    opened = SqliteEventLog(tmp_path / "log.db")
    await opened.append(EVENTS)
    yield opened
    await opened.close()


@pytest.fixture
def live(settings: Settings) -> Iterator[RollupStore]:
    opened = open_rollups(settings, CLOCK)
    yield opened
    opened.close()


async def test_staged_rollups_start_empty(settings: Settings, live: RollupStore) -> None:
    staged = open_staged_rollups(settings)
    try:
        assert staged.store.positions() == {}
    finally:
        staged.discard()


async def test_staged_rollups_stay_unseen_until_promoted(
    settings: Settings, log: EventLog, live: RollupStore
) -> None:
    staged = open_staged_rollups(settings)
    await catch_up(staged.store, log, clock=CLOCK)
    assert staged.store.positions() == ALL_POSITIONS
    assert live.positions() == {}
    staged.discard()


async def test_promoted_rollups_become_the_live_ones(
    settings: Settings, log: EventLog, live: RollupStore
) -> None:
    staged = open_staged_rollups(settings)
    await catch_up(staged.store, log, clock=CLOCK)
    where = staged.promote()
    assert where  # where they now are, for the operator

    async def swapped_in() -> bool:
        return live.positions() == ALL_POSITIONS

    await until(swapped_in)  # a live store already open follows the swap
    reopened = open_rollups(settings, CLOCK)
    try:
        assert reopened.positions() == ALL_POSITIONS
    finally:
        reopened.close()


async def test_a_promotion_replaces_the_live_rollups_whole(
    settings: Settings, log: EventLog, live: RollupStore
) -> None:
    await catch_up(live, log, clock=CLOCK)
    staged = open_staged_rollups(settings)
    staged.promote()  # nothing folded: the live rollups are now empty ones

    async def swapped_in() -> bool:
        return live.positions() == {}

    await until(swapped_in)


async def test_discarded_rollups_leave_the_live_ones_as_they_were(
    settings: Settings, log: EventLog, live: RollupStore
) -> None:
    await catch_up(live, log, batch=3, clock=CLOCK)
    staged = open_staged_rollups(settings)
    await catch_up(staged.store, log, clock=CLOCK)
    staged.discard()
    assert live.positions() == ALL_POSITIONS
    again = open_staged_rollups(settings)
    try:
        assert again.store.positions() == {}  # nothing of the discarded ones is left
    finally:
        again.discard()
