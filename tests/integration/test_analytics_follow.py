"""The live fold (`follow`) ends a step at the first batch that reached the log's heads,
so that under a steady firehose it waits its interval between steps instead of folding
the few records that arrived meanwhile, for ever; a rebuild folds to the head."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.rollups import Deltas
from hubbub.analytics.worker import catch_up
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import POSTS, Event
from tests.support.rollups import posts

CLOCK = SystemClock()


class Log(SqliteEventLog):
    """The embedded log, appending what `appending` holds before each read."""

    appending: list[list[Event]]

    async def read(self, topic: str, position: int = 1, limit: int = 1000):  # type: ignore[no-untyped-def]
        while self.appending:
            await self.append(self.appending.pop(0))
        return await super().read(topic, position, limit)


class ArrivingStore(DuckDBRollups):
    """The rollups, with posts arriving in the log while each batch is stored, as they do
    under a firehose."""

    def __init__(self, path: Path, log: Log, arriving: int) -> None:
        super().__init__(path)
        self.log, self.arriving, self.batches = log, arriving, 0

    def apply(self, deltas: Deltas, positions: dict[str, int], since: dict[str, int]) -> None:
        super().apply(deltas, positions, since)
        self.batches += 1
        if self.batches < 50:  # enough for any step, never endless
            self.log.appending.append(posts(1000 * self.batches, self.arriving))


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Log]:
    opened = Log(tmp_path / "log.db")
    opened.appending = []
    yield opened
    await opened.close()


@pytest.fixture
def store(tmp_path: Path, log: Log) -> Iterator[ArrivingStore]:
    opened = ArrivingStore(tmp_path / "rollups.duckdb", log, arriving=3)
    yield opened
    opened.close()


def posts_counted(store: DuckDBRollups) -> int:
    ((total,),) = store.query("SELECT coalesce(sum(posts), 0) FROM global_minute")
    return int(total)


async def test_a_live_step_ends_at_the_first_batch_short_of_a_whole_one(
    store: ArrivingStore, log: Log
) -> None:
    await log.append(posts(0, 25))
    # 3 posts arrive while each batch is stored: batches of 10, 10 and 10 are whole,
    # and the fourth (4) is short, so the step ends though 3 more arrived meanwhile.
    assert await catch_up(store, log, batch=10, clock=CLOCK, to_head=False) == 34
    assert store.batches == 4
    assert posts_counted(store) == 34
    assert store.positions()[POSTS] == 34
    # The next step folds what arrived.
    assert await catch_up(store, log, batch=10, clock=CLOCK, to_head=False) == 3
    assert posts_counted(store) == 37


async def test_a_fold_to_the_head_goes_on_while_records_arrive(
    store: ArrivingStore, log: Log
) -> None:
    await log.append(posts(0, 25))
    folded = await catch_up(store, log, batch=10, clock=CLOCK)
    # Every batch brought 3 more, until the store stopped adding them: all are counted.
    assert folded == 25 + 3 * 49
    assert posts_counted(store) == folded
