"""Reports over the rollups: time series, top lists and page summaries (the read side).

Every report takes a window `[start, end)` of UTC instants. Time series are bucketed by
minute, hour or day in the caller's time zone: the rollups are summed per quarter hour
in SQL (every time zone in use is a whole number of quarter hours from UTC), and the
quarters are then put in local buckets with `zoneinfo`, so daylight saving days have 23
or 25 hours, as a person there would count them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from hubbub.analytics.rollups import PAGE_COUNTERS

Bucket = Literal["minute", "hour", "day"]
Query = Callable[[str, list[Any]], list[tuple[Any, ...]]]

MAX_MINUTE_BUCKETS: Final = 7 * 24 * 60
ENGAGEMENT: Final = "likes_received + reposts_received + replies_received"
_QUARTER: Final = 15


class ReportError(ValueError):
    """A report that cannot be made as asked; the message says why (a 4xx)."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ReportError("start and end need a time zone offset, e.g. 2026-11-22T00:00Z")
        if self.end <= self.start:
            raise ReportError("end must be after start")

    @property
    def minutes(self) -> tuple[int, int]:
        """The window as epoch minutes, `[first, last)`."""
        return _minute(self.start), _minute(self.end)


def _minute(moment: datetime) -> int:
    return int(moment.timestamp() // 60)


SERIES_SQL: Final = {
    "page": "SELECT minute // 15, sum({metric}) FROM page_minute"
    " WHERE page = ? AND minute >= ? AND minute < ? GROUP BY 1",
    "hashtag": "SELECT minute // 15, sum(posts) FROM tag_minute"
    " WHERE tag = ? AND minute >= ? AND minute < ? GROUP BY 1",
}


def series(
    query: Query,
    kind: Literal["page", "hashtag"],
    key: str,
    window: Window,
    bucket: Bucket,
    tz: ZoneInfo,
    metric: str = "posts",
) -> list[tuple[datetime, int]]:
    """`(bucket start in tz, value)` for every bucket of the window, zeros included."""
    if kind == "page" and metric not in (*PAGE_COUNTERS, "engagement"):
        raise ReportError(f"unknown metric {metric!r}: use {', '.join(PAGE_COUNTERS)}, engagement")
    first, last = window.minutes
    if bucket == "minute" and last - first > MAX_MINUTE_BUCKETS:
        raise ReportError("minute buckets cover at most 7 days: ask for hours or days")
    column = ENGAGEMENT if metric == "engagement" else metric
    sql = SERIES_SQL[kind].replace("{metric}", column)  # column: one of the names above
    values = dict.fromkeys(_buckets(window, bucket, tz), 0)
    for quarter, value in query(sql, [key, first, last]):
        local = datetime.fromtimestamp(int(quarter) * _QUARTER * 60, UTC).astimezone(tz)
        start = _truncate(local, bucket)
        values[start] = values.get(start, 0) + int(value)
    return list(values.items())


def _truncate(local: datetime, bucket: Bucket) -> datetime:
    if bucket == "minute":
        return local.replace(second=0, microsecond=0)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    return day.replace(tzinfo=local.tzinfo)  # the offset of midnight, not of the hour


def _buckets(window: Window, bucket: Bucket, tz: ZoneInfo) -> list[datetime]:
    """The local bucket starts meeting the window, in order."""
    found: list[datetime] = []
    step = timedelta(minutes=1 if bucket == "minute" else 15)
    moment = window.start.astimezone(UTC)
    while moment < window.end:
        local = _truncate(moment.astimezone(tz), bucket)
        if not found or found[-1] != local:
            found.append(local)
        moment += step
    return found


TOP_SQL: Final = {
    "hashtags": "SELECT tag, sum(posts) AS n FROM tag_minute WHERE minute >= ? AND minute < ?"
    " GROUP BY tag HAVING n > 0 ORDER BY n DESC, tag LIMIT ? OFFSET ?",
    "mentioned": "SELECT page, sum(mentions_received) AS n FROM page_minute"
    " WHERE minute >= ? AND minute < ? GROUP BY page HAVING n > 0"
    " ORDER BY n DESC, page LIMIT ? OFFSET ?",
    "engaged": f"SELECT page, sum({ENGAGEMENT}) AS n FROM page_minute"
    " WHERE minute >= ? AND minute < ? GROUP BY page HAVING n > 0"
    " ORDER BY n DESC, page LIMIT ? OFFSET ?",
}


def top(
    query: Query,
    what: Literal["hashtags", "mentioned", "engaged"],
    window: Window,
    limit: int,
    offset: int,
) -> list[tuple[str, int]]:
    """The first `limit` after `offset` of the hashtags, the mentioned pages or the pages
    by engagement received, most first."""
    first, last = window.minutes
    rows = query(TOP_SQL[what], [first, last, limit, offset])
    return [(key, int(n)) for key, n in rows]


def page_summary(query: Query, page: str, window: Window) -> dict[str, int]:
    """The page's counters summed over the window."""
    first, last = window.minutes
    sums = ", ".join(f"coalesce(sum({name}), 0)" for name in PAGE_COUNTERS)
    (row,) = query(
        f"SELECT {sums} FROM page_minute WHERE page = ? AND minute >= ? AND minute < ?",
        [page, first, last],
    )
    return dict(zip(PAGE_COUNTERS, map(int, row), strict=True))
