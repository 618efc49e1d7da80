"""The best time to post: a score for every half-hour of the week, in a time zone.

The rollups keep, per scope (a tenant's channel, or a network and language of the
firehose) and per absolute half-hour, the posts made and the engagement they received
in their first 24 hours (`rollups.fold`, table `slot_halfhour`). Here those half-hours
are read back as wall-clock slots of the asked zone, so a slot is "Monday 09:00 in
Paris" on both sides of a DST change, and scored.

A slot's score is its engagement per post, shrunk towards the scope's mean by
`prior_posts` posts' worth of that mean (empirical Bayes, the simplest form): a slot
with one lucky post barely moves, a slot with many posts keeps its own rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from hubbub.analytics.rollups import (
    ENGAGEMENT_WINDOW_US,
    MINUTE_US,
    SLOT_MINUTES,
    firehose_scope,
    own_scope,
)

SLOTS_PER_DAY: Final = 24 * 60 // SLOT_MINUTES
SLOTS_PER_WEEK: Final = 7 * SLOTS_PER_DAY
HALF_US: Final = SLOT_MINUTES * MINUTE_US
TOP: Final = 5

Query = Callable[[str, list[Any]], list[tuple[Any, ...]]]
Source = Literal["own", "firehose"]


@dataclass(frozen=True)
class Slot:
    day: int
    """0 is Monday."""
    time: str
    """"HH:MM", local."""
    score: float


@dataclass(frozen=True)
class BestTimes:
    zone: str
    source: Source
    posts: int
    slots: list[Slot]
    top: list[Slot]


def local_slot(half: int, zone: ZoneInfo) -> int:
    """The wall-clock slot of the week (Monday 00:00 is 0) an absolute half-hour starts in."""
    local = datetime.fromtimestamp(half * SLOT_MINUTES * 60, UTC).astimezone(zone)
    return local.weekday() * SLOTS_PER_DAY + local.hour * 2 + local.minute // SLOT_MINUTES


def slot_scores(
    rows: Iterable[tuple[int, int, int]], zone: ZoneInfo, prior_posts: float
) -> tuple[int, list[float]]:
    """The posts counted and each slot of the week's score, from (half-hour, posts,
    engagement) rows."""
    posts = [0] * SLOTS_PER_WEEK
    engagement = [0] * SLOTS_PER_WEEK
    for half, n, engaged in rows:
        slot = local_slot(half, zone)
        posts[slot] += n
        engagement[slot] += engaged
    total = sum(posts)
    mean = sum(engagement) / total if total else 0.0
    scores = [
        (engaged + prior_posts * mean) / (n + prior_posts) if n + prior_posts else 0.0
        for n, engaged in zip(posts, engagement, strict=True)
    ]
    return total, scores


def ranked(scores: list[float], top: int = TOP) -> list[int]:
    """The `top` best slots, best first (ties: earlier in the week)."""
    return sorted(range(len(scores)), key=lambda slot: (-scores[slot], slot))[:top]


def as_slot(slot: int, score: float) -> Slot:
    day, in_day = divmod(slot, SLOTS_PER_DAY)
    minutes = in_day * SLOT_MINUTES
    return Slot(day, f"{minutes // 60:02d}:{minutes % 60:02d}", round(score, 4))


def read_slots(query: Query, scope: str, now_us: int, weeks: int) -> list[tuple[int, int, int]]:
    """The (half-hour, posts, engagement) rows of a scope over the last `weeks`, without
    the last 24 hours (their engagement is still coming)."""
    last = (now_us - ENGAGEMENT_WINDOW_US) // HALF_US
    first = last - weeks * SLOTS_PER_WEEK
    return [
        (int(half), int(posts), int(engaged))
        for half, posts, engaged in query(
            "SELECT half, posts, engagement FROM slot_halfhour"
            " WHERE scope = ? AND half >= ? AND half < ?",
            [scope, first, last],
        )
    ]


@dataclass(frozen=True)
class BestTimePolicy:
    weeks: int = 16
    min_posts: int = 20
    prior_posts: float = 10.0


def best_times(
    query: Query,
    *,
    zone: ZoneInfo,
    network: str,
    language: str,
    tenant: str,
    channel: str | None,
    now_us: int,
    policy: BestTimePolicy,
) -> BestTimes:
    """The week's slots scored for a channel's own posts, or, when it has fewer than
    `policy.min_posts` (or none is named), for the firehose's posts of the network and
    language."""
    source: Source = "firehose"
    rows: list[tuple[int, int, int]] = []
    if channel:
        rows = read_slots(query, own_scope(tenant, channel), now_us, policy.weeks)
        if sum(posts for _, posts, _ in rows) >= max(policy.min_posts, 1):
            source = "own"
    if source == "firehose":
        scope = firehose_scope(network, language)
        rows = read_slots(query, scope, now_us, policy.weeks)
    posts, scores = slot_scores(rows, zone, policy.prior_posts)
    slots = [as_slot(slot, score) for slot, score in enumerate(scores)]
    return BestTimes(str(zone), source, posts, slots, [slots[i] for i in ranked(scores)])
