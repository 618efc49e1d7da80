"""A batch the rollups cannot take, however often it is folded, does not stop the
analytics worker: after `poison_retries` failures the records that fail alone go to the
dead-letter topic with the reason, and every other record is counted. Both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hubbub.analytics.duckdb import DuckDBRollups, RollupsClosed
from hubbub.analytics.ports import RollupStore
from hubbub.analytics.worker import catch_up
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import (
    DEADLETTER,
    EngagementRecorded,
    InputRejected,
    decode,
)
from tests.support.reports import at
from tests.support.rollups import Store, posts, rollup_store

CLOCK = SystemClock()

TOO_BIG = 2**63  # a valid event (msgspec carries it), but no BIGINT holds it


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.services)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with rollup_store(request.param, tmp_path, "hubbub_poison") as opened:
        yield opened


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SqliteEventLog]:
    opened = SqliteEventLog(tmp_path / "log.db")
    yield opened
    await opened.close()


def like(n: int, delta: int = 1) -> EngagementRecorded:
    return EngagementRecorded(
        id=f"l{n}", key="alice", ts=at(1, n % 60), source="jetstream", kind="like",
        post=f"post{n}", post_author="alice", actor=f"fan{n}", delta=delta,
    )  # fmt: skip


def counted(store: RollupStore) -> tuple[int, int]:
    (row,) = store.query("SELECT coalesce(sum(posts), 0), coalesce(sum(likes), 0) FROM global_day")
    return int(row[0]), int(row[1])


async def test_an_unfoldable_record_is_dead_lettered_and_the_rest_counted(
    store: RollupStore, log: SqliteEventLog
) -> None:
    await log.append([*posts(0, 40), *map(like, range(20)), like(99, TOO_BIG), like(20)])
    await log.append([*posts(40, 10), like(21)])

    assert await catch_up(store, log, batch=1000, poison_retries=2, clock=CLOCK) == 50 + 23

    assert counted(store) == (50, 22)
    (rejected,) = await log.read(DEADLETTER, 1, 10)
    event = rejected.event
    assert isinstance(event, InputRejected)
    assert decode(event.raw) == like(99, TOO_BIG)
    assert "cannot fold engagement record 21 (EngagementRecorded l99)" in event.reason
    assert event.detail == "engagement#21"
    assert store.positions() == {"posts": 50, "engagement": 23}

    await log.append([*posts(50, 5), like(22)])  # the worker goes on
    assert await catch_up(store, log, batch=1000, poison_retries=2, clock=CLOCK) == 6
    assert counted(store) == (55, 23)
    assert len(await log.read(DEADLETTER, 1, 10)) == 1


async def test_a_store_that_cannot_be_reached_is_never_a_reason_to_dead_letter(
    tmp_path: Path, log: SqliteEventLog
) -> None:
    store = DuckDBRollups(tmp_path / "rollups.duckdb")
    await log.append(posts(0, 5))
    store.close()  # every call now fails: the store is closed, not the batch bad
    with pytest.raises(RollupsClosed):
        await catch_up(store, log, poison_retries=1, clock=CLOCK)
    assert await log.read(DEADLETTER, 1, 10) == []
