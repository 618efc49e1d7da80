"""Rebuilding a read model from the log (the log is the source of truth): the model's
state is dropped, its positions go back to 0, and the log is folded in again by the
same code its worker folds it with.

- `mentions`: a fresh memory index, folded from the `pages` topic, saved as the
  snapshot. A running mentions role keeps the index it has in memory (the same fold of
  the same log) and overwrites the snapshot with it; restart the role to load this one.
- `analytics`: fresh rollups replayed from the whole log beside the live ones, then
  swapped in (`hubbub.analytics.worker.rebuild`); a running analytics role picks them up.
- `listening`: the kept matches are deleted and the fold's position reset in one
  transaction, then `matches` is folded again (`hubbub.listening.worker.fold`) and
  retention applied. What the team did with inbox items is kept and joins the matches
  again. A running fold meanwhile finds its positions moved (compare-and-set) and folds
  on from them, so nothing is kept twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

import sqlalchemy as sa

from hubbub.analytics import worker as analytics_worker
from hubbub.bootstrap import (
    listening_policy,
    open_event_log,
    open_listening_store,
    open_staged_rollups,
)
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import Clock, SystemClock
from hubbub.kernel.events import MATCHES, PAGES
from hubbub.listening import worker as listening_worker
from hubbub.listening.sql import SqlListeningStore, matches_table, positions_table
from hubbub.mentions.memory import MemoryMentions
from hubbub.mentions.service import READ_BATCH
from hubbub.settings import Settings

Model = Literal["mentions", "analytics", "listening"]
MODELS: Final[tuple[Model, ...]] = ("mentions", "analytics", "listening")
Started = Callable[[int], None]
"""Told how many log records the rebuild will read, before it reads them."""
Advanced = Callable[[int], None]
"""Told how many more it has read."""


class RebuildError(RuntimeError):
    """The read model cannot be rebuilt with these settings; the message says why."""


@dataclass(frozen=True)
class Rebuilt:
    """What a rebuild folded, and where the rebuilt model now is."""

    model: Model
    folded: int
    where: str


async def rebuild(
    model: Model,
    settings: Settings,
    *,
    started: Started = lambda _: None,
    advanced: Advanced = lambda _: None,
    clock: Clock | None = None,
) -> Rebuilt:
    """Drop `model` and fold the whole log into it again."""
    steps: dict[Model, Callable[..., Awaitable[Rebuilt]]] = {
        "mentions": _mentions,
        "analytics": _analytics,
        "listening": _listening,
    }
    event_log = await open_event_log(settings)
    try:
        return await steps[model](settings, event_log, started, advanced, clock or SystemClock())
    finally:
        await event_log.close()


async def _records(event_log: EventLog, topics: tuple[str, ...]) -> int:
    stats = await event_log.stats()
    return sum(topic.count for topic in stats.topics if topic.topic in topics)


async def _mentions(
    settings: Settings, event_log: EventLog, started: Started, advanced: Advanced, clock: Clock
) -> Rebuilt:
    if settings.mentions_backend != "memory":
        raise RebuildError(
            "the mentions backend is postgres: drop its tables and restart the role, which"
            " folds the pages topic from position 0"
        )
    started(await _records(event_log, (PAGES,)))
    index, folded = MemoryMentions(), 0
    while records := await event_log.read(PAGES, await index.position() + 1, READ_BATCH):
        await index.apply(records)
        folded += len(records)
        advanced(len(records))
    where = settings.mentions_snapshot_path
    await asyncio.to_thread(index.save, where)
    return Rebuilt("mentions", folded, str(where))


async def _analytics(
    settings: Settings, event_log: EventLog, started: Started, advanced: Advanced, clock: Clock
) -> Rebuilt:
    started(await _records(event_log, analytics_worker.FOLDED))
    staged = open_staged_rollups(settings)
    folded, where = await analytics_worker.rebuild(staged, event_log, clock, advanced)
    return Rebuilt("analytics", folded, where)


async def _listening(
    settings: Settings, event_log: EventLog, started: Started, advanced: Advanced, clock: Clock
) -> Rebuilt:
    store = open_listening_store(settings)
    assert isinstance(store, SqlListeningStore)
    try:
        heads = {t.topic: t.last_position for t in (await event_log.stats()).topics}
        started(heads.get(MATCHES, 0))
        await asyncio.to_thread(_forget_matches, store)
        folding = asyncio.create_task(listening_worker.fold(store, event_log))
        reached = 0
        while reached < heads.get(MATCHES, 0) or not folding.done():
            await asyncio.wait({folding}, timeout=0.2)
            now = (await asyncio.to_thread(store.positions)).get(MATCHES, 0)
            advanced(now - reached)
            reached = now
            if folding.done():
                break
        folded = await folding
        policy = listening_policy(settings)
        before_us = clock.now_us() - int(policy.keep_s * 1e6)
        await asyncio.to_thread(store.prune, policy.keep_per_search, before_us)
    finally:
        await asyncio.to_thread(store.close)
    return Rebuilt("listening", folded, _without_password(settings.listening_db))


def _without_password(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def _forget_matches(store: SqlListeningStore) -> None:
    """The kept matches and the fold's position, gone in one transaction."""
    with store.engine.begin() as db:
        db.execute(matches_table.delete())
        db.execute(positions_table.delete().where(positions_table.c.topic == MATCHES))
