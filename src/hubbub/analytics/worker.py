"""The analytics worker: folds the log's posts, engagement and deletes into rollups.

It reads the three topics side by side from the positions stored with the rollups,
folds each batch (`rollups.fold`) and hands the deltas and the new positions to the
store in one transaction. Stopped at any moment, even by kill -9, it resumes where the
last transaction ended. The rest of the platform does not wait for it: ingest and
mentions go on while it is stopped, and it catches up when it is back.

The store refuses a batch read from positions that have since moved (a rebuild swapped
in, or a second worker): the worker then reads the positions again and folds on from
there, so nothing is ever counted twice.

It also follows the `control` topic for the terms that watches name, and counts them
from then on (`hubbub.analytics.terms`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from hubbub.analytics.archive import TOPICS as ARCHIVED
from hubbub.analytics.archive import PostArchive
from hubbub.analytics.ports import RollupStore, StagedRollups, StalePositions
from hubbub.analytics.rollups import MINUTE_US, Deltas, fold, posts_to_look_up
from hubbub.analytics.terms import InvalidTerm, TermMatcher, term_key
from hubbub.eventlog.port import EventLog, Record
from hubbub.kernel.events import CONTROL, DELETES, ENGAGEMENT, POSTS, WatchChanged
from hubbub.kernel.tracing import consumer_span
from hubbub.settings import Settings

TOPICS = (POSTS, ENGAGEMENT, DELETES)
BATCH = 150_000
log = structlog.get_logger("hubbub.analytics")


class StoreSource(Protocol):
    """Where the worker finds the store to write: the same one, or a swapped-in rebuild."""

    def __call__(self) -> RollupStore: ...


class WatchedTerms:
    """The terms active watches name, kept up from the `control` topic."""

    def __init__(self) -> None:
        self.position = 0
        self._watches: dict[str, str] = {}
        self.matcher = TermMatcher()

    async def refresh(self, event_log: EventLog) -> None:
        records = await event_log.read(CONTROL, self.position + 1, 10_000)
        while records:
            for record in records:
                self.position = record.position
                change = record.event
                if isinstance(change, WatchChanged) and change.kind == "term":
                    self._apply(change)
            records = await event_log.read(CONTROL, self.position + 1, 10_000)
        if set(self._watches.values()) != self.matcher.terms:
            self.matcher = TermMatcher(self._watches.values())

    def _apply(self, change: WatchChanged) -> None:
        if not change.active:
            self._watches.pop(change.watch, None)
            return
        try:
            self._watches[change.watch] = term_key(change.target)
        except InvalidTerm:
            log.warning("watch of an empty term ignored", watch=change.watch)


async def _fold_batch(
    target: RollupStore,
    records: list[Record],
    reached: dict[str, int],
    positions: dict[str, int],
    newly: AbstractSet[str],
    terms: WatchedTerms,
) -> None:
    """Fold one batch into `target`, with the positions it reached, in one transaction."""
    known = await asyncio.to_thread(target.contributions, posts_to_look_up(records))
    deltas = fold(records, known, terms.matcher)
    deltas.tracked = dict.fromkeys(newly, min(r.event.ts for r in records) // MINUTE_US)
    await asyncio.to_thread(target.apply, deltas, reached, positions)


async def catch_up(
    store: RollupStore | StoreSource,
    event_log: EventLog,
    batch: int = BATCH,
    progress: Callable[[int], None] = lambda _: None,
    terms: WatchedTerms | None = None,
) -> int:
    """Fold everything the log holds past the stored positions; returns how many records.

    `store` is a store, or a function returning the store to write now (which may
    change between batches when a rebuild is swapped in)."""
    current: StoreSource = store if callable(store) else (lambda: store)
    terms = terms or WatchedTerms()
    folded = 0
    while True:
        target = current()
        positions = await asyncio.to_thread(target.positions)
        await terms.refresh(event_log)
        records, reached = await _read_batch(event_log, positions, batch)
        newly = terms.matcher.terms - set(await asyncio.to_thread(_tracked, target))
        if not records:
            if newly:  # a term watched on a quiet log is counted from now on
                deltas = Deltas(tracked=dict.fromkeys(newly, time.time_ns() // 60_000_000_000))
                await asyncio.to_thread(target.apply, deltas, {}, positions)
            return folded
        try:
            with consumer_span("analytics fold", (r.event.trace for r in records)):
                await _fold_batch(target, records, reached, positions, newly, terms)
        except StalePositions as error:
            log.info("positions moved under the worker; folding on from them", why=str(error))
            continue
        folded += len(records)
        progress(len(records))


async def _read_batch(
    event_log: EventLog, positions: dict[str, int], batch: int
) -> tuple[list[Record], dict[str, int]]:
    """Up to `batch` records of each topic past `positions`, and the positions reached."""
    records: list[Record] = []
    reached: dict[str, int] = {}
    for topic in TOPICS:
        got = await event_log.read(topic, positions.get(topic, 0) + 1, batch)
        if got:
            records += got
            reached[topic] = got[-1].position
    return records, reached


def _tracked(store: RollupStore) -> list[str]:
    return [term for (term,) in store.query("SELECT term FROM tracked_term")]


async def follow(
    store: RollupStore | StoreSource, event_log: EventLog, interval_s: float = 0.5
) -> None:
    """Keep the rollups caught up until cancelled."""
    terms = WatchedTerms()
    while True:
        try:
            await catch_up(store, event_log, terms=terms)
        except Exception:  # a failed batch is folded again on the next round
            log.exception("the rollups could not be brought up to date")
        await asyncio.sleep(interval_s)


async def archive_once(archive: PostArchive, event_log: EventLog, batch: int = BATCH) -> int:
    """Write what the log holds past the archive's positions; returns the rows written."""
    written = 0
    while True:
        positions = archive.positions()
        records = []
        for topic in ARCHIVED:
            records += await event_log.read(topic, positions.get(topic, 0) + 1, batch)
        if not records:
            return written
        written += await asyncio.to_thread(archive.write, records)


async def follow_archive(archive: PostArchive, event_log: EventLog, flush_s: float = 60.0) -> None:
    """Archive the log's posts and deletes every `flush_s` until cancelled."""
    while True:
        try:
            await archive_once(archive, event_log)
        except Exception:  # written again from the stored positions next time
            log.exception("the post archive could not be written")
        await asyncio.sleep(flush_s)


def enforce_retention(
    store: RollupStore,
    archive: PostArchive | None,
    horizons: dict[str, int],
    archive_horizon: datetime | None,
) -> dict[str, int]:
    """Drop rollups and archived hours past their retention; merge finished hours of the
    archive into one file each. Returns what was done, for the log."""
    done = {"rollup_rows_dropped": store.prune(horizons)}
    if archive is not None:
        done["hours_merged"] = archive.compact(datetime.now(UTC) - timedelta(hours=1))
        if archive_horizon is not None:
            done["hours_dropped"] = archive.prune(archive_horizon)
    return done


async def keep_retention(
    store: RollupStore, archive: PostArchive | None, settings: Settings, every_s: float = 3600.0
) -> None:
    """Compact the rollups every `rollup_compact_interval_s`, and enforce the retention
    settings now and every `every_s`, until cancelled."""
    due = 0.0
    while True:
        try:
            if await asyncio.to_thread(store.compact):
                log.info("rollups compacted")
        except Exception:
            log.exception("the rollups could not be compacted")
        if time.monotonic() >= due:
            due = time.monotonic() + every_s
            await _enforce(store, archive, settings)
        await asyncio.sleep(settings.rollup_compact_interval_s)


async def _enforce(store: RollupStore, archive: PostArchive | None, settings: Settings) -> None:
    now = datetime.now(UTC)
    horizons = settings.rollup_horizons(int(now.timestamp() // 60))
    archive_horizon = now - timedelta(days=settings.archive_days) if settings.archive_days else None
    try:
        done = await asyncio.to_thread(enforce_retention, store, archive, horizons, archive_horizon)
        log.info("retention enforced", **done)
    except Exception:
        log.exception("retention could not be enforced")


async def rebuild(
    staged: StagedRollups, event_log: EventLog, progress: Callable[[int], None] = lambda _: None
) -> tuple[int, str]:
    """Replay the whole log into fresh rollups, then swap them in; the live rollups keep
    answering until the swap. Returns the records folded and where the rollups now are."""
    try:
        folded = await catch_up(staged.store, event_log, progress=progress)
        await asyncio.to_thread(staged.store.compact, force=True)
    except BaseException:
        staged.discard()
        raise
    return folded, await asyncio.to_thread(staged.promote)
