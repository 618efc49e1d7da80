"""Report windows past retention are widened to the whole buckets the kept tiers hold."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hubbub.analytics import service
from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.rollups import Deltas
from hubbub.analytics.service import Window


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def minute(text: str) -> int:
    return int(utc(text).timestamp() // 60)


# Minute rows kept from 2026-10-27 10:30, hour and day rows from 2025-10-27 10:30.
HORIZONS = {
    "minute": minute("2026-10-27 10:30"),
    "hour": minute("2025-10-27 10:30"),
    "day": minute("2025-10-27 10:30"),
}
MINUTE_HOUR_DAY = (("minute", 1), ("hour", 60), ("day", 1440))


def widened(
    start: str, end: str, tiers: tuple[tuple[str, int], ...] = service.SERIES_TIERS
) -> tuple[str, str]:
    window = service.retained(Window(utc(start), utc(end)), HORIZONS, tiers)
    return window.start.strftime("%Y-%m-%d %H:%M"), window.end.strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize("tiers", [service.SERIES_TIERS, service.TOP_TIERS, MINUTE_HOUR_DAY])
@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-12-01 08:07", "2026-12-01 10:13"),  # the last hours
        ("2026-11-20 00:01", "2026-11-30 23:59"),
        ("2026-10-27 10:30", "2026-10-27 10:31"),  # from the horizon itself
        ("2026-10-27 10:45", "2026-10-28 00:00"),  # within the horizon's hour, after it
    ],
)
def test_a_window_within_the_minute_horizon_is_left_as_asked(
    start: str, end: str, tiers: tuple[tuple[str, int], ...]
) -> None:
    assert widened(start, end, tiers) == (start, end)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-10-01 09:10", "2026-10-01 12:45", ("2026-10-01 09:00", "2026-10-01 13:00")),
        ("2026-10-01 09:10", "2026-10-01 09:20", ("2026-10-01 09:00", "2026-10-01 10:00")),
        ("2026-10-01 09:00", "2026-10-01 12:00", ("2026-10-01 09:00", "2026-10-01 12:00")),
        ("2026-10-27 09:59", "2026-10-27 10:29", ("2026-10-27 09:00", "2026-10-27 11:00")),
        # across the horizon: only the old end moves
        ("2026-10-20 09:10", "2026-11-20 12:45", ("2026-10-20 09:00", "2026-11-20 12:45")),
    ],
)
def test_a_series_before_the_minute_horizon_is_widened_to_whole_hours(
    start: str, end: str, expected: tuple[str, str]
) -> None:
    assert widened(start, end) == expected


def test_a_window_ending_just_past_the_horizon_in_its_hour_takes_the_whole_hour() -> None:
    """Its last part would be read from minute rows, half of them gone."""
    assert widened("2026-10-27 08:10", "2026-10-27 10:45") == (
        "2026-10-27 08:00",
        "2026-10-27 11:00",
    )


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2025-06-10 09:10", "2025-06-12 05:00", ("2025-06-10 00:00", "2025-06-13 00:00")),
        ("2025-06-10 00:00", "2025-06-12 00:00", ("2025-06-10 00:00", "2025-06-12 00:00")),
        ("2025-06-10 09:10", "2026-10-01 12:45", ("2025-06-10 00:00", "2026-10-01 13:00")),
    ],
)
def test_before_the_hour_horizon_a_window_is_widened_to_whole_days(
    start: str, end: str, expected: tuple[str, str]
) -> None:
    assert widened(start, end, MINUTE_HOUR_DAY) == expected


def test_a_top_list_reads_days_then_weeks_so_it_widens_to_those() -> None:
    top = service.TOP_TIERS
    assert widened("2026-10-01 09:10", "2026-10-01 12:45", top) == (
        "2026-10-01 00:00",
        "2026-10-02 00:00",
    )
    # Weeks start on Thursdays (the epoch's weekday): 2025-06-05 and 2025-06-12.
    assert widened("2025-06-10 09:10", "2025-06-11 05:00", top) == (
        "2025-06-05 00:00",
        "2025-06-12 00:00",
    )


@pytest.fixture
def pruned_store(tmp_path: Path) -> Iterator[DuckDBRollups]:
    """The hour of the minute horizon, one post a minute, pruned at the horizons."""
    store = DuckDBRollups(tmp_path / "rollups.duckdb")
    first = minute("2026-10-27 10:00")
    deltas = Deltas()
    for n in range(60):
        deltas.tags[("rain", first + n)] += 1
    store.apply(deltas, {"posts": 60}, {})
    store.prune({"minute": HORIZONS["minute"]})
    yield store
    store.close()


@pytest.mark.parametrize(
    ("start", "end", "posts"),
    [
        ("2026-10-27 10:10", "2026-10-27 10:20", 60),  # gone at minute level: the hour
        ("2026-10-27 10:10", "2026-10-27 10:45", 60),  # across the horizon: the hour
        ("2026-10-27 10:00", "2026-10-27 11:00", 60),
        ("2026-10-27 10:35", "2026-10-27 10:45", 10),  # kept at minute level: exact
    ],
)
def test_reports_past_the_horizon_count_whole_buckets_and_after_it_minutes(
    pruned_store: DuckDBRollups, start: str, end: str, posts: int
) -> None:
    asked = Window(utc(start), utc(end))
    top_window = service.retained(asked, HORIZONS, service.TOP_TIERS)
    assert service.top(pruned_store.query, "hashtags", top_window, 10, 0) == [("rain", posts)]
    series_window = service.retained(asked, HORIZONS)
    series = service.series(
        pruned_store.query, "hashtag", "rain", series_window, "hour", ZoneInfo("UTC")
    )
    assert sum(n for _, n in series) == posts
