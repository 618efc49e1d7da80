"""`rebuild` replays the log into fresh rollups and swaps them in under live readers and a
live worker: reports never fail nor see a half-built store, nothing is counted twice,
and watched terms are counted over the whole log. Both stores: a DuckDB file behind a
pointer, a PostgreSQL schema renamed."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from typer.testing import CliRunner

from hubbub.analytics import service
from hubbub.analytics.duckdb import POINTER, LiveDuckDB
from hubbub.analytics.ports import RollupStore, StalePositions
from hubbub.analytics.post_records import record_files
from hubbub.analytics.rollups import fold, posts_to_look_up
from hubbub.analytics.service import Window
from hubbub.analytics.worker import TOPICS, catch_up, rebuild
from hubbub.bootstrap import open_rollups, open_staged_rollups
from hubbub.cli import app
from hubbub.eventlog.ports import EventLog
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import EngagementRecorded, Event, PostDeleted, PostPublished
from hubbub.settings import Settings
from tests.conftest import FIXTURES, postgres_database, until
from tests.support.cli import cli

CLOCK = SystemClock()

DAY = datetime(2026, 11, 20, tzinfo=UTC)
Totals = tuple[int, int, int]


def at(minute: int) -> int:
    return int((DAY + timedelta(minutes=minute)).timestamp() * 1_000_000)


def activity(first: int, count: int) -> tuple[list[Event], Totals]:
    """Posts `first` to `first + count` over the day, a like on every third, every tenth
    deleted; and the (posts, likes, deleted) totals they leave."""
    events: list[Event] = []
    for n in range(first, first + count):
        author = f"page{n % 13}"
        events.append(
            PostPublished(
                id=f"p{n}", key=author, ts=at(n % 1440), source="jetstream", post=f"post{n}",
                author=author, text=f"post {n}", tags=[f"tag{n % 5}"],
            )
        )  # fmt: skip
        if n % 3 == 0:
            events.append(
                EngagementRecorded(
                    id=f"l{n}", key=author, ts=at(n % 1440 + 1), source="jetstream", kind="like",
                    post=f"post{n}", post_author=author, actor=f"fan{n}", delta=1,
                )
            )  # fmt: skip
        if n % 10 == 0:
            events.append(
                PostDeleted(
                    id=f"d{n}", key=author, ts=at(n % 1440 + 2), source="jetstream",
                    post=f"post{n}", author=author,
                )
            )  # fmt: skip
    deleted = len(range(first + (-first) % 10, first + count, 10))
    likes = len(range(first + (-first) % 3, first + count, 3))
    return events, (count - deleted, likes, deleted)


def add(*totals: Totals) -> Totals:
    posts, likes, deleted = zip(*totals, strict=True)
    return sum(posts), sum(likes), sum(deleted)


def totals(store: RollupStore) -> Totals:
    (row,) = store.query(
        "SELECT coalesce(sum(posts), 0), coalesce(sum(likes), 0), coalesce(sum(deleted), 0)"
        " FROM global_minute"
    )
    posts, likes, deleted = map(int, row)
    return posts, likes, deleted


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.services)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    data_dir = tmp_path / "data"
    if request.param == "duckdb":
        yield Settings(data_dir=data_dir)
        return
    with postgres_database("hubbub_rebuild") as dsn:
        yield Settings(data_dir=data_dir, analytics_store="postgres", analytics_postgres_url=dsn)


@pytest.fixture
async def log(settings: Settings) -> AsyncIterator[EventLog]:
    opened = SqliteEventLog(settings.log_path)
    yield opened
    await opened.close()


@pytest.fixture
def live(settings: Settings) -> Iterator[RollupStore]:
    """The live rollups, as the analytics role opens them."""
    store = open_rollups(settings, CLOCK)
    yield store
    store.close()


class Reader(threading.Thread):
    """A report reader, asking the live rollups for their totals over and over."""

    def __init__(self, store: RollupStore) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.answers: list[Totals] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.answers.append(totals(self.store))
            except BaseException as error:  # every failure is a finding
                self.errors.append(error)

    def __enter__(self) -> Reader:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.join(timeout=10)


async def swapped_in(live: RollupStore, positions: dict[str, int]) -> None:
    """Wait until the live rollups are the rebuilt ones (at their positions); a DuckDB
    reader looks for a new file every half second."""

    async def there() -> bool:
        return live.positions() == positions

    await until(there)


async def test_reports_answer_through_a_rebuild_then_from_the_rebuilt_rollups(
    settings: Settings, log: EventLog, live: RollupStore
) -> None:
    first, first_totals = activity(0, 3000)
    await log.append(first)
    await catch_up(live, log, clock=CLOCK)
    later, later_totals = activity(3000, 500)  # logged, not yet folded by the live worker
    await log.append(later)
    everything = add(first_totals, later_totals)
    old_file = live.path if isinstance(live, LiveDuckDB) else None

    with Reader(live) as reader:
        folded, where = await rebuild(open_staged_rollups(settings), log, CLOCK)
        rebuilt = {t.topic: t.last_position for t in (await log.stats()).topics}
        await swapped_in(live, {topic: rebuilt[topic] for topic in TOPICS})
        seen = len(reader.answers)

        async def read_on() -> bool:
            return len(reader.answers) > seen + 5

        await until(read_on)

    assert folded == len(first) + len(later)
    assert reader.errors == []
    assert reader.answers[0] == first_totals  # the old rollups, up to the swap
    assert reader.answers[-1] == everything  # the rebuilt ones after it
    assert set(reader.answers) == {first_totals, everything}
    assert reader.answers == sorted(reader.answers)  # never back to the old ones
    assert totals(live) == everything
    if isinstance(live, LiveDuckDB):
        assert old_file is not None
        assert where == str(live.path) != str(old_file)
        assert (settings.data_dir / POINTER).read_text() == live.path.name
        assert not old_file.exists()
        assert {p.name for p in settings.data_dir.glob("analytics*")} == {
            POINTER, live.path.name, *(p.name for p in record_files(live.path)),
        }  # fmt: skip
    else:
        assert where == "schema rollups"

    more, more_totals = activity(3500, 200)
    await log.append(more)
    assert await catch_up(live, log, clock=CLOCK) == len(more)
    assert totals(live) == add(everything, more_totals)


async def test_a_batch_read_before_the_swap_is_refused_and_the_worker_folds_on(
    settings: Settings, log: EventLog, live: RollupStore
) -> None:
    first, first_totals = activity(0, 2000)
    await log.append(first)
    await catch_up(live, log, clock=CLOCK)
    later, later_totals = activity(2000, 300)
    await log.append(later)

    # The live worker reads its next batch, and folds it...
    since = live.positions()
    batch = [r for t in TOPICS for r in await log.read(t, since.get(t, 0) + 1, 10_000)]
    reached = {r.topic: r.position for r in batch}  # each topic's last, in order
    deltas = fold(batch, live.contributions(posts_to_look_up(batch)))
    # ...while the rebuild, which folded the same records, is swapped in.
    await rebuild(open_staged_rollups(settings), log, CLOCK)
    await swapped_in(live, reached)

    with pytest.raises(StalePositions):
        live.apply(deltas, reached, since)
    assert totals(live) == add(first_totals, later_totals)
    assert await catch_up(live, log, clock=CLOCK) == 0

    more, more_totals = activity(2300, 100)
    await log.append(more)
    assert await catch_up(live, log, clock=CLOCK) == len(more)
    assert totals(live) == add(first_totals, later_totals, more_totals)


CLIMATE = "climate change"
WINDOW = Window(DAY, DAY + timedelta(hours=4))


def said(n: int, minute: int, text: str) -> PostPublished:
    return PostPublished(
        id=f"t{n}", key="alice", ts=at(minute), source="jetstream", post=f"talk{n}",
        author="alice", text=text,
    )  # fmt: skip


def climate_series(store: RollupStore) -> list[int]:
    rows = service.series(store.query, "term", CLIMATE, WINDOW, "hour", ZoneInfo("UTC"), "posts")
    return [n for _, n in rows]


async def test_a_rebuild_counts_a_watched_term_over_the_whole_log(
    settings: Settings, log: EventLog, live: RollupStore
) -> None:
    await log.append(
        [
            said(1, 10, "The Climate-Change summit opens"),
            said(2, 70, "climate change, again"),
            said(3, 75, "climates changed"),
            said(4, 130, "on climate change: a thread"),
        ]
    )
    await catch_up(live, log, clock=CLOCK)
    assert service.tracked_since(live.query, CLIMATE) is None

    watch = await cli(settings.data_dir, "watch", "add", "--term", "Climate  Change!")
    watches = json.loads(await cli(settings.data_dir, "watch", "list", "--json"))
    assert [(w["watch"], w["kind"], w["target"]) for w in watches] == [(watch, "term", CLIMATE)]
    await log.append([said(5, 190, "climate change at 3")])
    await catch_up(live, log, clock=CLOCK)
    assert climate_series(live) == [0, 0, 0, 1]  # counted from the watch on
    assert service.tracked_since(live.query, CLIMATE) == DAY + timedelta(minutes=190)

    await rebuild(open_staged_rollups(settings), log, CLOCK)

    async def counted_from_the_start() -> bool:
        return climate_series(live) == [1, 1, 1, 1]

    await until(counted_from_the_start)
    assert service.tracked_since(live.query, CLIMATE) == DAY + timedelta(minutes=10)

    unsaid = PostDeleted(
        id="x2", key="alice", ts=at(200), source="jetstream", post="talk2", author="alice"
    )
    await log.append([unsaid])
    await catch_up(live, log, clock=CLOCK)
    assert climate_series(live) == [1, 0, 1, 1]  # a post folded before the watch, deleted


@pytest.mark.services
async def test_a_first_postgres_rebuild_makes_the_live_rollups(tmp_path: Path) -> None:
    with postgres_database("hubbub_rebuild") as dsn:
        settings = Settings(
            data_dir=tmp_path, analytics_store="postgres", analytics_postgres_url=dsn
        )
        log = SqliteEventLog(settings.log_path)
        try:
            events, expected = activity(0, 300)
            await log.append(events)
            assert await rebuild(open_staged_rollups(settings), log, CLOCK) == (
                len(events),
                "schema rollups",
            )
        finally:
            await log.close()
        live = open_rollups(settings, CLOCK)
        try:
            assert totals(live) == expected
        finally:
            live.close()
        with psycopg.connect(dsn) as conn:
            schemas = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rollups%'"
            ).fetchall()
        assert schemas == [("rollups",)]


def test_the_rebuild_command_replays_the_log_and_reports_stay_the_same(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    runner = CliRunner(env={"HUBBUB_LOG_LEVEL": "warning"})

    def hubbub(*args: str) -> str:
        result = runner.invoke(app, ["--data-dir", str(data_dir), *args])
        assert result.exit_code == 0, result.output
        return result.output

    sample = str(FIXTURES / "jetstream-sample.jsonl")
    hubbub("ingest", "replay", sample, "--source", "jetstream", "--json")
    folded = re.search(r"folded ([\d,]+) records", hubbub("analytics", "run", "--once"))
    assert folded is not None
    before = json.loads(hubbub("analytics", "totals", "--json"))

    said = " ".join(hubbub("analytics", "rebuild").split())
    assert f"rebuilt the rollups from {folded[1]} records; now live:" in said
    assert (data_dir / POINTER).read_text() in said.replace(" ", "")
    assert json.loads(hubbub("analytics", "totals", "--json")) == before
    assert before["posts"] > 0
