"""Reports over the rollups: time series, top lists and page summaries (the read side).

Every report takes a window `[start, end)` of UTC instants. Time series are bucketed by
minute, hour or day in the caller's time zone, in SQL, piece by piece between the
zone's offset changes (found with `zoneinfo`), so daylight saving days have 23 or 25
hours, as a person there would count them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from hubbub.analytics.rollups import PAGE_COUNTERS

Bucket = Literal["minute", "hour", "day"]
Query = Callable[[str, list[Any]], list[tuple[Any, ...]]]

MAX_MINUTE_BUCKETS: Final = 7 * 24 * 60
ENGAGEMENT: Final = "likes_received + reposts_received + replies_received"


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
    "page": "SELECT floor((minute + ?) / ?), sum({metric}) FROM page_minute"
    " WHERE page = ? AND minute >= ? AND minute < ? GROUP BY 1",
    "hashtag": "SELECT floor((minute + ?) / ?), sum(posts) FROM tag_minute"
    " WHERE tag = ? AND minute >= ? AND minute < ? GROUP BY 1",
}
_BUCKET_MINUTES: Final = {"minute": 1, "hour": 60, "day": 1440}


def series(
    query: Query,
    kind: Literal["page", "hashtag"],
    key: str,
    window: Window,
    bucket: Bucket,
    tz: ZoneInfo,
    metric: str = "posts",
) -> list[tuple[datetime, int]]:
    """`(bucket start in tz, value)` for every bucket of the window, zeros included.

    The window is cut where the zone's offset from UTC changes; within each piece the
    local bucket of a minute is `floor((minute + offset) / bucket size)`, summed in SQL. An
    hour lived twice (when clocks go back) gives two buckets, told apart by their offset.
    """
    if kind == "page" and metric not in (*PAGE_COUNTERS, "engagement"):
        raise ReportError(f"unknown metric {metric!r}: use {', '.join(PAGE_COUNTERS)}, engagement")
    first, last = window.minutes
    if bucket == "minute" and last - first > MAX_MINUTE_BUCKETS:
        raise ReportError("minute buckets cover at most 7 days: ask for hours or days")
    column = ENGAGEMENT if metric == "engagement" else metric
    sql = SERIES_SQL[kind].replace("{metric}", column)  # column: one of the names above
    size = _BUCKET_MINUTES[bucket]
    values: dict[tuple[int, int | None], int] = {}
    for lo, hi, offset in offset_pieces(first, last, tz):
        tag = None if bucket == "day" else offset  # a day is one bucket, whatever its hours
        for index in range((lo + offset) // size, (hi - 1 + offset) // size + 1):
            values.setdefault((index, tag), 0)
        for index, value in query(sql, [offset, size, key, lo, hi]):
            values[(int(index), tag)] += int(value)
    return [(_label(index * size, tag, tz), value) for (index, tag), value in values.items()]


def _label(local_minute: int, offset: int | None, tz: ZoneInfo) -> datetime:
    """The bucket start as an aware datetime: at `offset`, or (days) at the zone's own."""
    naive = datetime(1970, 1, 1) + timedelta(minutes=local_minute)
    if offset is None:
        return naive.replace(tzinfo=tz)
    return naive.replace(tzinfo=timezone(timedelta(minutes=offset)))


def offset_pieces(first: int, last: int, tz: ZoneInfo) -> list[tuple[int, int, int]]:
    """`(from, to, offset)`: the epoch minutes `[first, last)` cut where the zone's UTC
    offset (in minutes) changes. Offsets change at most a few times a year, so the
    window is probed once a day and searched where two probes differ."""

    def offset(minute: int) -> int:
        delta = datetime.fromtimestamp(minute * 60, UTC).astimezone(tz).utcoffset()
        return int(delta.total_seconds() // 60) if delta else 0

    pieces: list[tuple[int, int, int]] = []
    start, current = first, offset(first)
    probe = first  # offset(probe) == current
    while probe < last:
        following = min(probe + 1440, last)
        if offset(following - 1) == current:
            probe = following
            continue
        lo, hi = probe, following - 1  # the offset changes in (lo, hi]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if offset(mid) == current else (lo, mid)
        pieces.append((start, hi, current))
        start, current, probe = hi, offset(hi), hi
    pieces.append((start, last, current))
    return pieces


TOP_SQL: Final = {
    "hashtags": "SELECT tag, sum(posts) AS n FROM tag_minute WHERE minute >= ? AND minute < ?"
    " GROUP BY tag HAVING sum(posts) > 0 ORDER BY n DESC, tag LIMIT ? OFFSET ?",
    "mentioned": "SELECT page, sum(mentions_received) AS n FROM page_minute"
    " WHERE minute >= ? AND minute < ? GROUP BY page HAVING sum(mentions_received) > 0"
    " ORDER BY n DESC, page LIMIT ? OFFSET ?",
    "engaged": f"SELECT page, sum({ENGAGEMENT}) AS n FROM page_minute"
    f" WHERE minute >= ? AND minute < ? GROUP BY page HAVING sum({ENGAGEMENT}) > 0"
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
