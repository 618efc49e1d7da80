"""The volume of a listening search as a series, in both rollup stores: DuckDB and
PostgreSQL. Matches are folded from the `matches` topic per tenant and search, once per
post, withdrawn where they were counted, inbox arrivals left out; a watch of a search
alerts on its spike."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hubbub.analytics import service
from hubbub.analytics.alerts import monitor_once
from hubbub.analytics.rollups import search_key
from hubbub.analytics.service import Window
from hubbub.analytics.views import AlertViews
from hubbub.analytics.worker import catch_up
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import Event, MatchWithdrawn, PostPublished, SearchMatched, WatchChanged
from hubbub.settings import Settings
from tests.support.rollups import Store, rollup_store

CLOCK = SystemClock()
DAY = datetime(2026, 11, 20, tzinfo=UTC)
WINDOW = Window(DAY, DAY + timedelta(hours=3))


@pytest.fixture(params=["duckdb", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with rollup_store(request.param, tmp_path, "hubbub_search_series") as built:
        yield built


def micros(minute: int) -> int:
    return int((DAY + timedelta(minutes=minute)).timestamp() * 1_000_000)


def matched(tenant: str, search: str, post: str, minute: int, kind: str = "match") -> SearchMatched:
    return SearchMatched(
        id=f"m-{tenant}-{search}-{post}-{minute}", key=tenant, ts=micros(minute),
        source="listening", tenant=tenant, search=search, post=post, author="did:plc:a",
        text="acme", kind=kind,
    )  # fmt: skip


def withdrawn(tenant: str, search: str, post: str, minute: int) -> MatchWithdrawn:
    return MatchWithdrawn(
        id=f"w-{tenant}-{search}-{post}", key=tenant, ts=micros(minute), source="listening",
        tenant=tenant, search=search, post=post,
    )  # fmt: skip


async def folded(store: Store, tmp_path: Path, *batches: Sequence[Event]) -> None:
    """Append each batch and fold it, a few records at a time, before the next."""
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        for events in batches:
            await log.append(list(events))
            await catch_up(store, log, batch=2, clock=CLOCK)
    finally:
        await log.close()


def hourly(store: Store, tenant: str, search: str) -> list[int]:
    rows = service.series(
        store.query, "search", search_key(tenant, search), WINDOW, "hour", ZoneInfo("UTC")
    )
    return [n for _, n in rows]


async def test_a_search_counts_its_matches_once_each_and_no_inbox_arrival(
    store: Store, tmp_path: Path
) -> None:
    await folded(
        store,
        tmp_path,
        [
            matched("acme", "s1", "post1", 5),
            matched("acme", "s1", "post2", 50),
            matched("acme", "s1", "post3", 70),
            matched("acme", "s1", "post1", 71),  # the same post again (an edit): once
            matched("acme", "s2", "post1", 6),  # another search of the tenant
            matched("acme", "inbox:bsky", "post4", 7, kind="mention"),
            matched("acme", "inbox:bsky", "post5", 8, kind="reply"),
        ],
    )
    assert hourly(store, "acme", "s1") == [2, 1, 0]
    assert hourly(store, "acme", "s2") == [1, 0, 0]
    assert hourly(store, "acme", "inbox:bsky") == [0, 0, 0]
    assert store.positions()["matches"] == 7
    store.compact(force=True)  # rows merged and laid out for reads: the same answers
    assert (hourly(store, "acme", "s1"), hourly(store, "acme", "s2")) == ([2, 1, 0], [1, 0, 0])


async def test_a_withdrawn_match_leaves_the_bucket_it_was_counted_in(
    store: Store, tmp_path: Path
) -> None:
    await folded(
        store,
        tmp_path,
        [matched("acme", "s1", "post1", 5), matched("acme", "s1", "post2", 65)],
        [
            withdrawn("acme", "s1", "post1", 130),  # deleted two hours later
            withdrawn("acme", "s1", "post1", 131),  # told twice: taken away once
            withdrawn("acme", "s1", "never-matched", 132),
            withdrawn("acme", "inbox:bsky", "post2", 133),
        ],
        [matched("acme", "s1", "post1", 140)],  # a withdrawn match does not come back
    )
    assert hourly(store, "acme", "s1") == [0, 1, 0]


async def test_a_search_id_counts_within_its_tenant_only(store: Store, tmp_path: Path) -> None:
    await folded(
        store,
        tmp_path,
        [
            matched("acme", "s1", "post1", 5),
            matched("rival", "s1", "post2", 6),  # the same id in another tenant
            matched("rival", "s1", "post3", 7),
            matched("rival", "s9", "post3", 8),
        ],
        [withdrawn("rival", "s1", "post1", 9)],  # acme's post, under rival's search
    )
    assert hourly(store, "acme", "s1") == [1, 0, 0]
    assert hourly(store, "rival", "s1") == [2, 0, 0]
    assert hourly(store, "acme", "s9") == [0, 0, 0]


async def test_matches_do_not_change_what_the_posts_count(store: Store, tmp_path: Path) -> None:
    post = PostPublished(
        id="p1", key="did:plc:a", ts=micros(5), source="jetstream", post="post1",
        author="did:plc:a", text="acme", tags=["acme"],
    )  # fmt: skip
    await folded(store, tmp_path, [post, matched("acme", "s1", "post1", 5)])
    assert service.page_summary(store.query, "did:plc:a", WINDOW)["posts"] == 1
    assert service.series(store.query, "hashtag", "acme", WINDOW, "day", ZoneInfo("UTC"))[0][1] == 1
    assert set(store.contributions({"post1"})) == {"post1"}
    assert hourly(store, "acme", "s1") == [1, 0, 0]


NOW = 29_600_000  # an epoch minute; checks run at the end of the hour before it


def matches_per_day(tenant: str, search: str, per_day: list[int]) -> list[Event]:
    """`per_day[d]` matches in the hour before NOW, d days ago (the last entry: today)."""
    events: list[Event] = []
    for day, count in enumerate(reversed(per_day)):
        for n in range(count):
            minute = NOW - 1 - day * 1440 - n % 60
            events.append(
                SearchMatched(
                    id=f"{tenant}-{search}-{day}-{n}", key=tenant, ts=minute * 60_000_000,
                    source="listening", tenant=tenant, search=search, post=f"{day}/{n}",
                    author="did:plc:a", text="acme",
                )
            )  # fmt: skip
    return events


def watch(tenant: str, watch_id: str, search: str) -> WatchChanged:
    return WatchChanged(
        id=f"w-{watch_id}", key=tenant, ts=1, source="api", tenant=tenant, watch=watch_id,
        kind="search", target=search,
    )  # fmt: skip


async def test_a_watched_search_alerts_on_its_spike_and_only_for_its_tenant(
    store: Store, tmp_path: Path
) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    views = AlertViews.open(log, Settings(data_dir=tmp_path / "data"))
    try:
        await log.append(matches_per_day("acme", "s1", [9, 12, 10, 11, 8, 10, 12, 140]))
        # Another tenant's search of the same id is quiet, its usual volume every day.
        await log.append(matches_per_day("rival", "s1", [30, 28, 33, 31, 29, 30, 32, 34]))
        await log.append([watch("acme", "wa", "s1"), watch("rival", "wr", "s1")])
        await catch_up(store, log, clock=CLOCK)

        (alert,) = await monitor_once(store, log, views, NOW)
        assert (alert.tenant, alert.watch, alert.kind, alert.target, alert.count) == (
            "acme", "wa", "search", "s1", 140,
        )  # fmt: skip
        assert alert.usual == pytest.approx(72 / 7)
    finally:
        await log.close()
