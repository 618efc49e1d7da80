"""The analytics worker: folds the log's posts, engagement and deletes into rollups.

It reads the three topics side by side from the positions stored with the rollups,
folds each batch (`rollups.fold`) and hands the deltas and the new positions to the
store in one transaction. Stopped at any moment, even by kill -9, it resumes where the
last transaction ended. The rest of the platform does not wait for it: ingest and
mentions go on while it is stopped, and it catches up when it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hubbub.analytics.ports import RollupStore
from hubbub.analytics.rollups import fold, posts_to_look_up
from hubbub.eventlog.port import EventLog
from hubbub.kernel.events import DELETES, ENGAGEMENT, POSTS

TOPICS = (POSTS, ENGAGEMENT, DELETES)
BATCH = 50_000


async def catch_up(
    store: RollupStore,
    event_log: EventLog,
    batch: int = BATCH,
    progress: Callable[[int], None] = lambda _: None,
) -> int:
    """Fold everything the log holds past the stored positions; returns how many records."""
    positions = store.positions()
    folded = 0
    while True:
        records = []
        reached: dict[str, int] = {}
        for topic in TOPICS:
            got = await event_log.read(topic, positions.get(topic, 0) + 1, batch)
            if got:
                records += got
                reached[topic] = got[-1].position
        if not records:
            return folded
        known = await asyncio.to_thread(store.contributions, posts_to_look_up(records))
        deltas = fold(records, known)
        await asyncio.to_thread(store.apply, deltas, reached)
        positions.update(reached)
        folded += len(records)
        progress(len(records))


async def follow(store: RollupStore, event_log: EventLog, interval_s: float = 0.5) -> None:
    """Keep the rollups caught up until cancelled."""
    while True:
        await catch_up(store, event_log)
        await asyncio.sleep(interval_s)
