"""Reports over the rollups: time series, top lists and page summaries (the read side).

Every report takes a window `[start, end)` of UTC instants. Time series are bucketed by
minute, hour or day in the caller's time zone, in SQL, piece by piece between the
zone's offset changes (found with `zoneinfo`), so daylight saving days have 23 or 25
hours, as a person there would count them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from hubbub.analytics.rollups import GLOBAL_COUNTERS, PAGE_COUNTERS, TIERS, key_hash

Bucket = Literal["minute", "hour", "day"]
Query = Callable[[str, list[Any]], list[tuple[Any, ...]]]

EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)
"""A window lies within `[EARLIEST, LATEST]`: the log holds nothing before the epoch,
and far enough from `datetime`'s end (year 9999) that widening a window to whole
buckets, or shifting it into a time zone, cannot overflow."""
MAX_SERIES_SPAN: Final[dict[Bucket, tuple[timedelta, str]]] = {
    "minute": (timedelta(days=7), "7 days: ask for hours or days"),
    "hour": (timedelta(days=731), "2 years: ask for days"),
    "day": (timedelta(days=36_525), "100 years"),
}
"""The longest window a series of each bucket covers, and how to say so: every bucket
of the window is answered, zeros included, so the window bounds the answer's size."""
MAX_TOP_OFFSET: Final = 100_000
"""The most ranks a top list skips: it ranks `2 * (offset + limit) + 10` keys to settle
ties at the cut, so the offset bounds a request's work."""
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
        if self.start < EARLIEST or self.end > LATEST:
            raise ReportError(
                f"start and end must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"
            )

    @property
    def minutes(self) -> tuple[int, int]:
        """The window as epoch minutes, `[first, last)`."""
        return _minute(self.start), _minute(self.end)


def _minute(moment: datetime) -> int:
    return int(moment.timestamp() // 60)


_BUCKET_MINUTES: Final = {"minute": 1, "hour": 60, "day": 1440}
_SERIES_KEYS: Final = {"page": "page", "hashtag": "tag", "term": "term", "search": "search"}
SeriesKind = Literal["page", "hashtag", "term", "search"]
"""What a series counts: a page's counters, a hashtag's or a watched term's posts, or a
listening search's matches (keyed by `rollups.search_key`: its tenant and id)."""

SERIES_TIERS: Final = tuple(t for t in TIERS if t[0] in ("minute", "hour"))
"""What series and summaries read: one key's hours (8,760 rows for a year), its minutes
at the edges."""
TOP_TIERS: Final = tuple(t for t in TIERS if t[0] in ("minute", "day", "week", "fourweek"))
"""What top lists read: every key's four-week and week buckets, then days, then minutes
at the edges (a year: 13 + 4 + 6 + 6 rows a key at most, and minutes)."""

Piece = tuple[str, int, int]
"""`(tier, first minute, end minute)`: a span of the window read from one tier."""


def cover(first: int, last: int, tiers: tuple[tuple[str, int], ...] = TIERS) -> list[Piece]:
    """The minutes `[first, last)` as spans of the coarsest of `tiers` that fit: whole
    days in the middle, hours then minutes at the edges (a year is read as 365 day rows
    and at most 46 hour and 118 minute rows per key, not 525,600). `tiers` go from
    minutes to the coarsest allowed."""
    *finer, (tier, size) = tiers
    lo, hi = -(-first // size) * size, last // size * size
    if first >= last or not finer:
        return [(tier, first, last)] if first < last else []
    if lo >= hi:
        return cover(first, last, tuple(finer))
    return [*cover(first, lo, tuple(finer)), (tier, lo, hi), *cover(hi, last, tuple(finer))]


def _union(prefix: str, columns: str, pieces: list[Piece], key: str | None = None) -> str:
    """One SELECT reading `columns` from each piece's tier table (rows of `key` only, if
    given, found by its hash first), glued with UNION ALL; parameters from `_parameters`."""
    where = f"h = ? AND {key} = ? AND " if key else ""
    return " UNION ALL ".join(
        f"SELECT {columns} FROM {prefix}_{tier} WHERE {where}minute >= ? AND minute < ?"
        for tier, _, _ in pieces
    )


def _parameters(pieces: list[Piece], key: str | None = None) -> list[Any]:
    found = (key_hash(key), key) if key is not None else ()
    return [value for _, lo, hi in pieces for value in (*found, lo, hi)]


def series(
    query: Query,
    kind: SeriesKind,
    key: str,
    window: Window,
    bucket: Bucket,
    tz: ZoneInfo,
    metric: str = "posts",
) -> list[tuple[datetime, int]]:
    """`(bucket start in tz, value)` for every bucket of the window, zeros included.

    The window is cut where the zone's offset from UTC changes; within each piece the
    local bucket of a minute is `floor((minute + offset) / bucket size)`, summed in SQL,
    over the coarsest tiers whose buckets fall whole into the local ones (days for day
    buckets in UTC, hours in a zone a whole number of hours away, minutes otherwise). An
    hour lived twice (when clocks go back) gives two buckets, told apart by their offset.
    """
    if kind == "page" and metric not in (*PAGE_COUNTERS, "engagement"):
        raise ReportError(f"unknown metric {metric!r}: use {', '.join(PAGE_COUNTERS)}, engagement")
    if kind != "page" and metric != "posts":
        raise ReportError(f"a {kind} series counts posts only: leave metric out")
    span, advice = MAX_SERIES_SPAN[bucket]
    if window.end - window.start > span:
        raise ReportError(f"{bucket} buckets cover at most {advice}")
    column = ENGAGEMENT if metric == "engagement" else metric
    prefix = _SERIES_KEYS[kind]

    def sums(spans: list[tuple[int, int, int]], size: int) -> list[tuple[Any, ...]]:
        branches, parameters = [], []
        for lo, hi, offset in spans:  # one query for the whole window
            tiers = tuple(t for t in SERIES_TIERS if size % t[1] == 0 and offset % t[1] == 0)
            pieces = cover(lo, hi, tiers)
            if pieces:
                rows = _union(prefix, f"minute, {column} AS n", pieces, prefix)
                branches.append(
                    f"SELECT floor((minute + ?) / ?) AS b, ? AS o, sum(n) FROM ({rows}) AS r"
                    " GROUP BY 1"
                )
                parameters += [offset, size, offset, *_parameters(pieces, key)]
        return query(" UNION ALL ".join(branches), parameters) if branches else []

    return bucketed(window, bucket, tz, sums)


BucketSums = Callable[[list[tuple[int, int, int]], int], list[tuple[Any, ...]]]
"""`(spans, size) -> [(local bucket index, offset, value)]`: the sums of the minutes of
each span `(lo, hi, offset)`, by `floor((minute + offset) / size)` at its offset."""


def bucketed(
    window: Window, bucket: Bucket, tz: ZoneInfo, sums: BucketSums
) -> list[tuple[datetime, int]]:
    """Every bucket of the window in `tz`, zeros included, filled in by `sums` piece by
    piece between the zone's offset changes."""
    size = _BUCKET_MINUTES[bucket]
    values: dict[tuple[int, int | None], int] = {}
    spans = offset_pieces(*window.minutes, tz)
    for lo, hi, offset in spans:
        tag = None if bucket == "day" else offset  # a day is one bucket, whatever its hours
        for index in range((lo + offset) // size, (hi - 1 + offset) // size + 1):
            values.setdefault((index, tag), 0)
    for index, offset, value in sums(spans, size):
        values[(int(index), None if bucket == "day" else int(offset))] += int(value)
    return [(bucket_start(index * size, tag, tz), value) for (index, tag), value in values.items()]


def bucket_start(local_minute: int, offset: int | None, tz: ZoneInfo) -> datetime:
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


TOP: Final = {
    "hashtags": ("tag", "tag", "posts"),
    "mentioned": ("page", "page", "mentions_received"),
    "engaged": ("page", "page", ENGAGEMENT),
}
"""What each top list ranks: (table prefix, key column, counted expression)."""


def top(
    query: Query,
    what: Literal["hashtags", "mentioned", "engaged"],
    window: Window,
    limit: int,
    offset: int,
) -> list[tuple[str, int]]:
    """The first `limit` after `offset` of the hashtags, the mentioned pages or the pages
    by engagement received, most first (ties by name).

    Keys are summed by their hash, a number, which groups several times faster than
    text; only the leaders (those tied at the cut included) are then named."""
    prefix, key, counted = TOP[what]
    pieces = cover(*window.minutes, TOP_TIERS)
    if not pieces:  # a window within one minute
        return []
    rows = _union(prefix, f"h, {counted} AS n", pieces)
    totals = f"SELECT h, sum(n) AS total FROM ({rows}) AS r GROUP BY h HAVING sum(n) > 0"
    wanted = limit + offset
    # Ties at the cut are settled by name, so every key tied there is needed: fetched
    # with some to spare, or, when even those tie, by rank.
    fetched = 2 * wanted + 10
    ranked = query(f"{totals} ORDER BY total DESC LIMIT ?", [*_parameters(pieces), fetched])
    if len(ranked) == fetched and ranked[-1][1] == ranked[wanted - 1][1]:
        ranked = query(
            "SELECT h, total FROM (SELECT h, total, rank() OVER (ORDER BY total DESC)"
            f" AS place FROM ({totals}) AS t) AS p WHERE place <= ?",
            [*_parameters(pieces), wanted],
        )
    elif len(ranked) > wanted:
        ranked = [row for row in ranked if row[1] >= ranked[wanted - 1][1]]
    if not ranked:
        return []
    names = _names(query, prefix, key, pieces, {h for h, _ in ranked})
    leaders = sorted(((names[h], int(total)) for h, total in ranked), key=lambda r: (-r[1], r[0]))
    return leaders[offset : offset + limit]


def _names(
    query: Query, prefix: str, key: str, pieces: list[Piece], wanted: set[int]
) -> dict[int, str]:
    """The keys of these hashes, looked up in the window's pieces from the coarsest
    (fewest rows; usually the only one needed) on."""
    sizes = dict(TIERS)
    names: dict[int, str] = {}
    for tier, lo, hi in sorted(pieces, key=lambda piece: -sizes[piece[0]]):
        missing = sorted(wanted - names.keys())
        if not missing:
            break
        # Integers written into the SQL, not parameters: DuckDB then filters by a
        # constant set, 2.5 times faster; int() guarantees they are nothing but numbers.
        hashes = ", ".join(str(int(h)) for h in missing)
        names |= dict(
            query(
                f"SELECT h, min({key}) FROM {prefix}_{tier} WHERE minute >= ? AND minute < ?"
                f" AND h IN ({hashes}) GROUP BY h",
                [lo, hi],
            )
        )
    return names


def total(query: Query, prefix: str, key: str, counted: str, first: int, last: int) -> int:
    """One key's `counted` summed over the minutes `[first, last)`: its hours, and
    minutes at the edges."""
    pieces = cover(first, last, SERIES_TIERS)
    if not pieces:
        return 0
    rows = _union(prefix, f"{counted} AS n", pieces, prefix)
    (row,) = query(f"SELECT coalesce(sum(n), 0) FROM ({rows}) AS r", _parameters(pieces, key))
    return int(row[0])


def page_summary(query: Query, page: str, window: Window) -> dict[str, int]:
    """The page's counters summed over the window."""
    pieces = cover(*window.minutes, SERIES_TIERS)
    if not pieces:
        return dict.fromkeys(PAGE_COUNTERS, 0)
    rows = _union("page", ", ".join(PAGE_COUNTERS), pieces, "page")
    sums = ", ".join(f"coalesce(sum({name}), 0)" for name in PAGE_COUNTERS)
    (row,) = query(f"SELECT {sums} FROM ({rows}) AS r", _parameters(pieces, page))
    return dict(zip(PAGE_COUNTERS, map(int, row), strict=True))


def global_totals(query: Query, window: Window) -> dict[str, int]:
    """The global counters (posts, replies, likes, reposts, deleted) summed over the
    window, read as top lists read (`TOP_TIERS`: four-week, week and day buckets, minutes
    at the edges), so that they hold after retention drops the minutes; pass the window
    through `retained` to have whole buckets where it did."""
    pieces = cover(*window.minutes, TOP_TIERS)
    if not pieces:
        return dict.fromkeys(GLOBAL_COUNTERS, 0)
    rows = _union("global", ", ".join(GLOBAL_COUNTERS), pieces)
    sums = ", ".join(f"coalesce(sum({name}), 0)" for name in GLOBAL_COUNTERS)
    (row,) = query(f"SELECT {sums} FROM ({rows}) AS r", _parameters(pieces))
    return dict(zip(GLOBAL_COUNTERS, map(int, row), strict=True))


def tracked_since(query: Query, term: str) -> datetime | None:
    """When the rollups started counting a term (`terms.term_key` form), or None."""
    rows = query("SELECT since FROM tracked_term WHERE term = ?", [term])
    return datetime.fromtimestamp(int(rows[0][0]) * 60, UTC) if rows else None


def retained(
    window: Window, horizons: dict[str, int], tiers: tuple[tuple[str, int], ...] = SERIES_TIERS
) -> Window:
    """The window of a report reading `tiers`, widened to whole buckets of the next tier
    where a tier's rows are gone (minutes to hours for series, to days for top lists): a
    report then counts whole buckets rather than missing its edges."""
    start, end = window.start, window.end
    steps = [
        (finer, timedelta(minutes=size)) for (finer, _), (_, size) in itertools.pairwise(tiers)
    ]
    for tier, unit in steps:
        horizon = datetime.fromtimestamp(horizons.get(tier, 0) * 60, UTC)
        if start < horizon:
            start = _floor(start, unit)
        # The end's partial bucket is read from the finer rows, from its start (or the
        # window's): an end just past the horizon, in the horizon's bucket, needs it too.
        if max(start, _floor(end, unit)) < horizon:
            end = _floor(end, unit) + (unit if _floor(end, unit) != end else timedelta(0))
    return Window(start, end)


def _floor(moment: datetime, unit: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (moment - epoch) // unit * unit
