"""Reports read minute, hour and day tiers; they must say what the minutes alone say."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.analytics import service
from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.rollups import PAGE_COUNTERS, TIERED, TIERS, Deltas
from hubbub.analytics.service import Window, cover

START = datetime(2026, 3, 26, tzinfo=UTC)  # Europe moves its clocks on the 29th
DAYS = 6
FIRST = int(START.timestamp() // 60)


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_cover_spans_the_window_once_in_aligned_pieces(a: int, length: int) -> None:
    first, last = FIRST + a, FIRST + a + length
    pieces = cover(first, last)
    sizes = dict(TIERS)
    assert [lo for _, lo, _ in pieces[1:]] == [hi for _, _, hi in pieces[:-1]]  # contiguous
    if length:
        assert pieces[0][1] == first
        assert pieces[-1][2] == last
    else:
        assert pieces == []
    for tier, lo, hi in pieces:
        assert lo < hi
        assert lo % sizes[tier] == 0
        assert hi % sizes[tier] == 0
    assert sum(1 for tier, _, _ in pieces if tier == "day") <= 1


@pytest.fixture(scope="module", params=["appended", "compacted"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DuckDBRollups]:
    """Six days of random minute counts, written in several batches as a worker would;
    then, for the second run of each test, compacted (buckets merged, tables reordered)."""
    built = DuckDBRollups(tmp_path_factory.mktemp("tiers") / "rollups.duckdb")
    rng = random.Random(7)
    for _ in range(4):
        deltas = Deltas()
        for _ in range(3000):
            minute = FIRST + rng.randrange(DAYS * 1440)
            page = deltas.pages[(f"page{rng.randrange(12)}", minute)]
            for name in PAGE_COUNTERS:
                page[name] += rng.randrange(-1, 4)
            deltas.tags[(f"tag{rng.randrange(8)}", minute)] += rng.randrange(0, 3)
        built.apply(deltas, {}, {})
    if request.param == "compacted":
        assert built.compact(force=True) == 2 * len(TIERS)  # pages and hashtags; no terms
        for key in TIERED:
            for tier, _ in TIERS:
                (duplicates,) = built.query(
                    f"SELECT count(*) - count(DISTINCT ({key}, minute)) FROM {key}_{tier}"
                )[0]
                assert duplicates == 0
    yield built
    built.close()


def window_of(a: int, length: int) -> Window:
    start = START + timedelta(minutes=a)
    return Window(start, start + timedelta(minutes=length))


windows = st.tuples(st.integers(0, DAYS * 1440), st.integers(1, DAYS * 1440))


@settings(max_examples=60, deadline=None)
@given(windows, st.sampled_from(["hashtags", "mentioned", "engaged"]))
def test_top_lists_match_the_minute_rows(
    store: DuckDBRollups, span: tuple[int, int], what: str
) -> None:
    window = window_of(*span)
    first, last = window.minutes
    table, key, counted = service.TOP[what]
    expected = store.query(
        f"SELECT {key}, sum({counted}) AS n FROM {table}_minute WHERE minute >= ? AND"
        f" minute < ? GROUP BY 1 HAVING sum({counted}) > 0 ORDER BY n DESC, 1",
        [first, last],
    )
    got = service.top(store.query, what, window, 100, 0)  # type: ignore[arg-type]
    assert got == [(k, int(n)) for k, n in expected]


@settings(max_examples=60, deadline=None)
@given(
    windows,
    st.sampled_from(["UTC", "Europe/Paris", "Asia/Kolkata"]),
    st.sampled_from(["hour", "day"]),
)
def test_series_and_summaries_match_the_minute_rows(
    store: DuckDBRollups, span: tuple[int, int], zone: str, bucket: str
) -> None:
    window = window_of(*span)
    first, last = window.minutes
    tz = ZoneInfo(zone)
    got = service.series(store.query, "page", "page3", window, bucket, tz, "engagement")  # type: ignore[arg-type]
    rows = store.query(
        f"SELECT minute, {service.ENGAGEMENT} FROM page_minute WHERE page = 'page3'"
        " AND minute >= ? AND minute < ?",
        [first, last],
    )
    expected: dict[datetime, int] = {}
    for minute, n in rows:
        local = datetime.fromtimestamp(minute * 60, UTC).astimezone(tz)
        # Kolkata's hours start at :30 UTC
        start = local.replace(minute=0) if bucket == "hour" else local.replace(hour=0, minute=0)
        expected[start] = expected.get(start, 0) + int(n)
    assert {moment: n for moment, n in got if n} == {k: v for k, v in expected.items() if v}
    assert sum(n for _, n in got) == sum(int(n) for _, n in rows)

    summary = service.page_summary(store.query, "page3", window)
    (totals,) = store.query(
        f"SELECT {', '.join(f'coalesce(sum({c}), 0)' for c in PAGE_COUNTERS)} FROM page_minute"
        " WHERE page = 'page3' AND minute >= ? AND minute < ?",
        [first, last],
    )
    assert summary == dict(zip(PAGE_COUNTERS, map(int, totals), strict=True))


def test_a_window_inside_one_minute_is_empty(store: DuckDBRollups) -> None:
    moment = START + timedelta(minutes=5, seconds=10)
    window = Window(moment, moment + timedelta(seconds=20))
    assert service.top(store.query, "hashtags", window, 10, 0) == []
    assert service.page_summary(store.query, "page3", window) == dict.fromkeys(PAGE_COUNTERS, 0)


def test_compaction_waits_for_a_tail_worth_merging(tmp_path: Path) -> None:
    store = DuckDBRollups(tmp_path / "r.duckdb", compact_tail_rows=50, compact_tail_share=0.5)

    def rows(table: str) -> tuple[int, int]:
        ((count, total),) = store.query(f"SELECT count(*), sum(posts) FROM {table}")
        return int(count), int(total)

    def batch() -> None:  # one post on #news in each of the day's first 40 minutes
        deltas = Deltas()
        for minute in range(40):
            deltas.tags[("news", FIRST + minute)] += 1
        store.apply(deltas, {}, {})

    try:
        batch()
        assert store.compact() == 0  # 40 new minute rows: under the 50 a table waits for
        batch()
        assert rows("tag_minute") == (80, 80)
        assert store.compact() >= 1  # 80: the minute tier merges its tail
        assert rows("tag_minute") == (40, 80)
        assert rows("tag_hour") == (2, 80)  # 2 new rows: the hour tier waits
        assert store.compact(force=True) >= 1
        assert rows("tag_hour") == (1, 80)
        assert service.top(store.query, "hashtags", window_of(0, 60), 5, 0) == [("news", 80)]
    finally:
        store.close()
