"""The analytics worker: folds the log's posts, engagement and deletes into rollups.

It reads the three topics side by side from the positions stored with the rollups,
folds each batch (`rollups.fold`) and hands the deltas and the new positions to the
store in one transaction. Stopped at any moment, even by kill -9, it resumes where the
last transaction ended. The rest of the platform does not wait for it: ingest and
mentions go on while it is stopped, and it catches up when it is back.

The store refuses a batch read from positions that have since moved (a rebuild swapped
in, or a second worker): the worker then reads the positions again and folds on from
there, so nothing is ever counted twice.

A batch that cannot be folded (`RejectedBatch`: the fold fails on its records, or the
store cannot hold one of its values) is folded again; when it has failed the same way
`poison_retries` times it is split in halves, folded apart, and so on down to the
records that fail alone: those go to the dead-letter topic with the reason, their
positions are passed, and the worker goes on. A store that is down is not a reason to
drop anything: its errors are retried for ever.

It also follows the `control` topic for the terms that watches name, and counts them
from then on (`hubbub.analytics.terms`), and folds the `matches` topic, listening's
matches of the tenants' searches, into each search's series (`rollups.fold`): a small
topic beside the posts, read from a position of its own, committed with the rest.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from hubbub.analytics.alerts import AlertPolicy, monitor
from hubbub.analytics.archive import TOPICS as ARCHIVED
from hubbub.analytics.archive import PostArchive
from hubbub.analytics.ports import (
    CopyServer,
    RejectedBatch,
    RollupStore,
    StagedRollups,
    StalePositions,
)
from hubbub.analytics.rollups import MINUTE_US, Deltas, fold, posts_to_look_up
from hubbub.analytics.terms import InvalidTerm, TermMatcher, term_key
from hubbub.analytics.views import AlertViews
from hubbub.analytics.webhooks import DeliveryPolicy, dispatch
from hubbub.eventlog.follow import every, read_past
from hubbub.eventlog.ports import EventLog, Record
from hubbub.eventlog.view import LogView
from hubbub.kernel.background import Background, note_failure
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import (
    CONTROL,
    DELETES,
    ENGAGEMENT,
    MATCHES,
    POSTS,
    PUBLISHING,
    Event,
    InputRejected,
    WatchChanged,
    encode,
)
from hubbub.kernel.sealing import SecretBox
from hubbub.kernel.tracing import consumer_span
from hubbub.settings import Settings

TOPICS = (POSTS, ENGAGEMENT, DELETES)
FOLDED = (*TOPICS, PUBLISHING, MATCHES)
"""What the worker reads: `TOPICS`, the tenants' published posts (`publishing`), whose
engagement counts for their channels' best times, and the matches of their listening
searches (`matches`), counted per search."""
BATCH = 150_000
POISON_RETRIES = 3
"""Times a batch may fail the same way before it is split (`HUBBUB_POISON_RETRIES`)."""
log = structlog.get_logger("hubbub.analytics")


class StoreSource(Protocol):
    """Where the worker finds the store to write: the same one, or a swapped-in rebuild."""

    def __call__(self) -> RollupStore: ...


class WatchedTerms(LogView):
    """The terms active watches name, folded from the `control` topic."""

    what = "the watched terms"

    def __init__(self, event_log: EventLog) -> None:
        super().__init__(event_log, CONTROL, read_batch=10_000)
        self._watches: dict[str, str] = {}
        self.matcher = TermMatcher()

    def _fold(self, events: Iterable[Event]) -> int:
        changed = 0
        for change in events:
            if isinstance(change, WatchChanged) and change.kind == "term":
                self._apply(change)
                changed += 1
        return changed

    def _changed(self) -> None:
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
    positions: dict[str, int],
    newly: AbstractSet[str],
    terms: WatchedTerms,
) -> dict[str, int]:
    """Fold records read after `positions` into `target`, with the positions they reach,
    in one transaction; returns the positions now stored. `RejectedBatch` if the records
    cannot be folded or stored."""
    known = await asyncio.to_thread(target.contributions, posts_to_look_up(records))
    try:
        deltas = fold(records, known, terms.matcher)
    except Exception as error:  # the fold is pure: its records make it fail, every time
        raise RejectedBatch(f"the fold failed: {type(error).__name__}: {error}") from error
    deltas.tracked = dict.fromkeys(newly, min(r.event.ts for r in records) // MINUTE_US)
    reached = reached_by(records)
    await asyncio.to_thread(target.apply, deltas, reached, positions)
    return positions | reached


def reached_by(records: list[Record]) -> dict[str, int]:
    """The position of the last of `records` in each topic they hold (records of a topic
    come in log order)."""
    return {record.topic: record.position for record in records}


@dataclass
class RepeatedFailure:
    """The batch that failed last, where it was read from and why, and how many times
    in a row it failed that way."""

    positions: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    times: int = 0

    def again(self, positions: dict[str, int], reason: str) -> int:
        """Count one more failure; returns how many times in a row it failed that way."""
        if (positions, reason) != (self.positions, self.reason):
            self.positions, self.reason, self.times = positions, reason, 0
        self.times += 1
        return self.times


@dataclass
class PoisonIsolation:
    """Folds a batch that failed the same way too often in halves, down to the records
    that fail alone, and sends those to the dead-letter topic with the reason."""

    target: RollupStore
    event_log: EventLog
    newly: AbstractSet[str]
    terms: WatchedTerms
    reason: str
    clock: Clock
    dead_lettered: int = 0

    async def fold(self, records: list[Record], positions: dict[str, int]) -> dict[str, int]:
        """Fold `records` (read after `positions`) as they can be; returns the positions
        now stored."""
        try:
            return await _fold_batch(self.target, records, positions, self.newly, self.terms)
        except RejectedBatch as error:
            if len(records) > 1:
                half = len(records) // 2
                return await self.fold(records[half:], await self.fold(records[:half], positions))
            return await self._dead_letter(records[0], positions, str(error))

    async def _dead_letter(
        self, record: Record, positions: dict[str, int], error: str
    ) -> dict[str, int]:
        """Append the record to the dead-letter topic, then move past it. A crash between
        the two dead-letters it again, with the same id: the log drops the duplicate."""
        reason = (
            f"the analytics worker cannot fold {record.topic} record {record.position}"
            f" ({type(record.event).__name__} {record.event.id}): {error}; its batch"
            f" failed the same way ({self.reason}) too often, and it fails alone"
        )
        rejected = InputRejected(
            id=f"unfoldable-{record.topic}-{record.event.id}",
            key=record.event.key,
            ts=self.clock.now_us(),
            source="analytics",
            trace=record.event.trace,
            raw=encode(record.event),
            reason=reason,
            detail=f"{record.topic}#{record.position}",
        )
        await self.event_log.append([rejected])
        log.error("a record was dead-lettered", topic=record.topic, position=record.position)
        reached = {record.topic: record.position}
        await asyncio.to_thread(self.target.apply, Deltas(), reached, positions)
        self.dead_lettered += 1
        return positions | reached


async def catch_up(
    store: RollupStore | StoreSource,
    event_log: EventLog,
    batch: int = BATCH,
    progress: Callable[[int], None] = lambda _: None,
    terms: WatchedTerms | None = None,
    poison_retries: int = POISON_RETRIES,
    *,
    clock: Clock,
    to_head: bool = True,
) -> int:
    """Fold everything the log holds past the stored positions; returns how many records
    (dead-lettered ones included). With `to_head` false, stop after a batch that was not
    full: it reached every topic's head as the read found it (see `follow`).

    `store` is a store, or a function returning the store to write now (which may
    change between batches when a rebuild is swapped in). A batch that fails the same
    way `poison_retries` times is folded in halves and its unfoldable records are
    dead-lettered (see the module's docstring)."""
    current: StoreSource = store if callable(store) else (lambda: store)
    terms = terms or WatchedTerms(event_log)
    failure = RepeatedFailure()
    folded = 0
    while True:
        target = current()
        positions = await asyncio.to_thread(target.positions)
        await terms.catch_up()
        records = await read_past(event_log, FOLDED, positions, batch)
        newly = terms.matcher.terms - set(await asyncio.to_thread(_tracked, target))
        if not records:
            if newly:  # a term watched on a quiet log is counted from now on
                deltas = Deltas(tracked=dict.fromkeys(newly, clock.now_us() // MINUTE_US))
                await asyncio.to_thread(target.apply, deltas, {}, positions)
            return folded
        try:
            with consumer_span("analytics fold", (r.event.trace for r in records)):
                await _fold_batch(target, records, positions, newly, terms)
        except StalePositions as error:
            log.info("positions moved under the worker; folding on from them", why=str(error))
            continue
        except RejectedBatch as error:
            times = failure.again(positions, str(error))
            log.warning("a batch could not be folded", why=str(error), times=times)
            if times < poison_retries:
                continue
            isolation = PoisonIsolation(target, event_log, newly, terms, str(error), clock)
            try:
                await isolation.fold(records, positions)
            except StalePositions:
                continue
            log.error("a batch was folded in parts", dead_lettered=isolation.dead_lettered)
        folded += len(records)
        progress(len(records))
        if not to_head and not _full(records, batch):
            return folded


def _full(records: list[Record], batch: int) -> bool:
    """Whether some topic gave a whole batch (and may hold more)."""
    per_topic = Counter(record.topic for record in records)
    return any(count >= batch for count in per_topic.values())


def _tracked(store: RollupStore) -> list[str]:
    return [term for (term,) in store.query("SELECT term FROM tracked_term")]


async def follow(
    store: RollupStore | StoreSource,
    event_log: EventLog,
    clock: Clock,
    interval_s: float = 0.5,
    poison_retries: int = POISON_RETRIES,
) -> None:
    """Keep the rollups caught up until cancelled: fold what the log holds, then wait
    `interval_s`, and again.

    A step ends at the first batch that reached the heads, not at an empty read: under a
    steady firehose new records arrive while a batch is folded, and folding those at once,
    a few hundred at a time, never ends. Each batch costs about as much again in fixed
    work (some 30 statements and two commits) as its records: at 10,000 events a second
    the fold took most of a core, and its lag grew with the machine's load."""
    terms = WatchedTerms(event_log)
    await every(
        interval_s,
        lambda: catch_up(
            store,
            event_log,
            terms=terms,
            poison_retries=poison_retries,
            clock=clock,
            to_head=False,
        ),
        what="bringing the rollups up to date",
    )


async def archive_once(archive: PostArchive, event_log: EventLog, batch: int = BATCH) -> int:
    """Write what the log holds past the archive's positions; returns the rows written."""
    written = 0
    while records := await read_past(event_log, ARCHIVED, archive.positions(), batch):
        written += await asyncio.to_thread(archive.write, records)
    return written


async def follow_archive(archive: PostArchive, event_log: EventLog, flush_s: float = 60.0) -> None:
    """Archive the log's posts and deletes every `flush_s` until cancelled; what failed
    is written again from the stored positions next time."""
    await every(flush_s, lambda: archive_once(archive, event_log), what="writing the post archive")


def enforce_retention(
    store: RollupStore,
    archive: PostArchive | None,
    horizons: dict[str, int],
    archive_horizon: datetime | None,
    now: datetime,
) -> dict[str, int]:
    """Drop rollups and archived hours past their retention; merge finished hours (those
    before `now`'s) of the archive into one file each. Returns what was done, for the log."""
    done = {"rollup_rows_dropped": store.prune(horizons)}
    if archive is not None:
        done["hours_merged"] = archive.compact(now - timedelta(hours=1))
        if archive_horizon is not None:
            done["hours_dropped"] = archive.prune(archive_horizon)
    return done


async def keep_retention(
    store: RollupStore,
    archive: PostArchive | None,
    settings: Settings,
    clock: Clock,
    every_s: float = 3600.0,
) -> None:
    """Compact the rollups every `rollup_compact_interval_s`, and enforce the retention
    settings now and every `every_s`, until cancelled."""
    due = 0.0
    while True:
        try:
            started = clock.monotonic_s()
            if tables := await asyncio.to_thread(store.compact):
                log.info("rollups compacted", tables=tables, seconds=clock.monotonic_s() - started)
        except Exception as failure:
            log.exception("the rollups could not be compacted")
            note_failure(failure)
        if clock.monotonic_s() >= due:
            due = clock.monotonic_s() + every_s
            await _enforce(store, archive, settings, clock)
        await asyncio.sleep(settings.rollup_compact_interval_s)


async def _enforce(
    store: RollupStore, archive: PostArchive | None, settings: Settings, clock: Clock
) -> None:
    now = datetime.fromtimestamp(clock.now_us() / 1e6, UTC)
    horizons = settings.rollup_horizons(int(now.timestamp() // 60))
    archive_horizon = now - timedelta(days=settings.archive_days) if settings.archive_days else None
    try:
        done = await asyncio.to_thread(
            enforce_retention, store, archive, horizons, archive_horizon, now
        )
        log.info("retention enforced", **done)
    except Exception as failure:
        log.exception("retention could not be enforced")
        note_failure(failure)


async def rebuild(
    staged: StagedRollups,
    event_log: EventLog,
    clock: Clock,
    progress: Callable[[int], None] = lambda _: None,
) -> tuple[int, str]:
    """Replay the whole log into fresh rollups, then swap them in; the live rollups keep
    answering until the swap. Returns the records folded and where the rollups now are."""
    try:
        folded = await catch_up(staged.store, event_log, progress=progress, clock=clock)
        await asyncio.to_thread(staged.store.compact, force=True)
    except BaseException:
        staged.discard()
        raise
    return folded, await asyncio.to_thread(staged.promote)


def run_rollups(
    background: Background,
    *,
    store: RollupStore,
    archive: PostArchive,
    event_log: EventLog,
    settings: Settings,
    clock: Clock,
) -> None:
    """Start what keeps the rollups and the post archive up with the log, and their
    retention enforced, under `background`."""
    background.start(
        "rollups",
        lambda: follow(
            store,
            event_log,
            clock,
            interval_s=settings.analytics_fold_interval_s,
            poison_retries=settings.poison_retries,
        ),
    )
    background.start(
        "archive", lambda: follow_archive(archive, event_log, settings.archive_flush_s)
    )
    background.start("retention", lambda: keep_retention(store, archive, settings, clock))


def serve_copies(background: Background, store: RollupStore) -> None:
    """Serve the copies a backup asks of the rollups, under `background`, when only
    this process can make them (`CopyServer`)."""
    if isinstance(store, CopyServer):
        background.start("copies", store.serve_copies)


def run(
    background: Background,
    *,
    store: RollupStore,
    archive: PostArchive,
    views: AlertViews,
    event_log: EventLog,
    settings: Settings,
    box: SecretBox,
    clock: Clock,
) -> None:
    """Start the analytics role's background work under `background`: the rollups, the
    archive and retention (`run_rollups`), the alerting views, the spike check, and the
    webhook deliveries."""
    serve_copies(background, store)
    run_rollups(
        background,
        store=store,
        archive=archive,
        event_log=event_log,
        settings=settings,
        clock=clock,
    )
    poll = settings.control_poll_s
    for name, view in views.named().items():
        background.start(f"{name}-view", functools.partial(view.follow, poll))
    policy = AlertPolicy.from_settings(settings)
    interval = settings.alert_check_interval_s
    background.start("alerts", lambda: monitor(store, event_log, views, clock, interval, policy))
    delivery = DeliveryPolicy.from_settings(settings)
    background.start("webhooks", lambda: dispatch(event_log, views, box, delivery, clock))
