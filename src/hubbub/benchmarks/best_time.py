"""The best-time benchmark: are the planted peaks of a synthetic firehose found?

A Jetstream stream of `days` days (one event a second) is generated with a planted
daily rhythm (`synthetic.firehose.Rhythm`: posts created in three half-hours of each
Paris day draw a share of all likes), ingested into a fresh SQLite log and folded by the
real analytics worker into fresh DuckDB rollups. The first `days - 1` days train the
model (`analytics.best_times`, English posts on Bluesky); the last day is held back.
One more day of stream follows it, unscored, so that the held-back day's posts have
their whole first 24 hours of engagement, as the training's have.

- `hit_rate`: the share of the planted (day, half-hour) peaks of the training days
  found among the model's `top_k` best slots (`top_k` = the number planted).
- `holdout_hit_rate`: on the held-back day, the share of its own best half-hours (by
  engagement per post, as they happened) at a time of day of the model's top slots.
- `holdout_lift`: on the held-back day, engagement per post made in the training's
  top slots over engagement per post made in the others (above 1: the ranking holds
  on data it never saw).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from hubbub.analytics.best_times import (
    HALF_US,
    SLOTS_PER_DAY,
    local_slot,
    ranked,
    read_slots,
    slot_scores,
)
from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.rollups import ENGAGEMENT_WINDOW_US, firehose_scope
from hubbub.analytics.worker import catch_up
from hubbub.benchmarks.firehose_log import ingest_firehose
from hubbub.kernel.clock import SystemClock
from hubbub.synthetic.firehose import FirehoseSpec, Rhythm

ZONE: Final = "Europe/Paris"
PEAKS: Final = (17, 25, 39)  # 08:30, 12:30, 19:30
START: Final = datetime(2026, 3, 23, tzinfo=ZoneInfo(ZONE))  # a Monday; DST on the 29th
DAY_US: Final = 86_400_000_000


async def _fold(spec: FirehoseSpec, directory: Path) -> DuckDBRollups:
    log = await ingest_firehose(directory, spec)
    store = DuckDBRollups(directory / "analytics.duckdb")
    await catch_up(store, log, clock=SystemClock())
    await log.close()
    return store


def run_best_time(days: int = 8, prior_posts: float = 10.0) -> dict[str, Any]:
    """Generate, fold, train and check; the figures as a JSON-ready dict."""
    started = time.perf_counter()
    start_us = int(START.timestamp() * 1_000_000)
    rhythm = Rhythm(zone=ZONE, peaks=PEAKS)
    spec = FirehoseSpec(
        events=(days + 1) * 86_400, pages=20_000, start_us=start_us, rate_per_s=1, rhythm=rhythm
    )
    zone = ZoneInfo(ZONE)
    with tempfile.TemporaryDirectory(prefix="hubbub-best-time-") as directory:
        store = asyncio.run(_fold(spec, Path(directory)))
        try:
            scope = firehose_scope("bluesky", "en")
            train_end = start_us + (days - 1) * DAY_US
            train = read_slots(store.query, scope, train_end + ENGAGEMENT_WINDOW_US, 1)
            held_halves = range(train_end // HALF_US, (train_end + DAY_US) // HALF_US)
            held = [row for row in read_slots(store.query, scope, start_us + 2 * days * DAY_US, 2)
                    if row[0] in held_halves]  # fmt: skip
        finally:
            store.close()
    posts, scores = slot_scores(train, zone, prior_posts)
    weekdays = {(START + timedelta(days=day)).weekday() for day in range(min(days - 1, 7))}
    planted = {day * SLOTS_PER_DAY + peak for day in weekdays for peak in PEAKS}
    top = set(ranked(scores, len(planted)))
    top_times = {slot % SLOTS_PER_DAY for slot in top}
    return {
        "hit_rate": round(len(top & planted) / len(planted), 3),
        "holdout_hit_rate": _holdout_hits(held, top_times, zone),
        "slots_planted": len(planted),
        "top_k": len(planted),
        "holdout_lift": _lift(held, top_times, zone),
        "posts_trained": posts,
        "posts_held_back": sum(n for _, n, _ in held),
        "events": spec.events,
        "days": days,
        "zone": ZONE,
        "peaks_local": [f"{p // 2:02d}:{p % 2 * 30:02d}" for p in PEAKS],
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _holdout_hits(rows: list[tuple[int, int, int]], top_times: set[int], zone: ZoneInfo) -> float:
    """The share of the held-back day's best half-hours (engagement per post as it
    happened, among those with at least 10 posts) at a time of day of the model's top
    slots (`top_times`)."""
    sums: dict[int, list[int]] = {}
    for half, posts, engaged in rows:
        side = sums.setdefault(local_slot(half, zone) % SLOTS_PER_DAY, [0, 0])
        side[0] += posts
        side[1] += engaged
    busy = [time for time, (posts, _) in sums.items() if posts >= 10]
    seen = sorted(busy, key=lambda time: (-sums[time][1] / sums[time][0], time))[: len(PEAKS)]
    return round(len(top_times.intersection(seen)) / len(seen), 3) if seen else 0.0


def _lift(rows: list[tuple[int, int, int]], top_times: set[int], zone: ZoneInfo) -> float:
    """Engagement per post in the half-hours of the day in `top_times` over the rest."""
    sums = {True: [0, 0], False: [0, 0]}
    for half, posts, engaged in rows:
        side = sums[local_slot(half, zone) % SLOTS_PER_DAY in top_times]
        side[0] += posts
        side[1] += engaged
    rate = {side: engaged / posts if posts else 0.0 for side, (posts, engaged) in sums.items()}
    return round(rate[True] / rate[False], 2) if rate[False] else 0.0
