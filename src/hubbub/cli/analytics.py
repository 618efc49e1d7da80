"""`hubbub analytics ...`: the analytics worker and what its rollups hold."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from hubbub.analytics import service, worker
from hubbub.analytics.service import ReportError, Window
from hubbub.analytics.worker import BATCH, TOPICS, catch_up, rebuild
from hubbub.bootstrap import open_archive, open_event_log, open_rollups, open_staged_rollups
from hubbub.cli.common import console, fail, load_settings, print_json, run, stop_on_signals
from hubbub.kernel.background import Background
from hubbub.kernel.clock import SystemClock
from hubbub.settings import Settings

app = typer.Typer(
    help="Rollups of posts and engagement, kept up from the log.", no_args_is_help=True
)


@app.command("run")
def run_worker(
    once: Annotated[bool, typer.Option("--once", help="Catch up with the log, then exit.")] = False,
    batch: Annotated[int, typer.Option(help="Records read per topic and transaction.", min=1)] = (
        BATCH
    ),
) -> None:
    """Fold the log's posts, engagement and deletes into minute rollups (the analytics role).

    The rollups and the log positions they reflect are committed together, so the
    worker can be stopped at any moment and resumes exactly where it was.
    """
    settings = load_settings()

    async def work() -> int:
        clock = SystemClock()
        event_log = await open_event_log(settings)
        store = open_rollups(settings, clock)
        background = Background(clock=clock)
        if not once:  # a backup may ask for a copy of the rollups while they catch up
            worker.serve_copies(background, store)
        try:
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True
            ) as bar:
                task = bar.add_task("folding the log into rollups", total=None)
                folded = await catch_up(
                    store,
                    event_log,
                    batch,
                    lambda n: bar.update(task, advance=n),
                    poison_retries=settings.poison_retries,
                    clock=clock,
                )
            if once:
                return folded
            stop = asyncio.Event()
            stop_on_signals(stop)
            worker.run_rollups(
                background,
                store=store,
                archive=open_archive(settings),
                event_log=event_log,
                settings=settings,
                clock=clock,
            )
            await stop.wait()
            return folded
        finally:
            await background.close()
            store.close()
            await event_log.close()

    folded = run(work())
    console.print(f"folded {folded:,} records into the {settings.analytics_store} rollups")


@app.command("rebuild")
def rebuild_rollups() -> None:
    """Replay the whole log into fresh rollups, then swap them in atomically.

    The live rollups keep answering reports until the swap; a running analytics role
    picks the new ones up by itself and folds on from where the rebuild ended. Watched
    terms are counted over the whole log.
    """
    settings = load_settings()

    async def work() -> tuple[int, str]:
        event_log = await open_event_log(settings)
        try:
            stats = await event_log.stats()
            total = sum(t.count for t in stats.topics if t.topic in TOPICS)
            staged = open_staged_rollups(settings)
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), console=console,
            ) as bar:  # fmt: skip
                task = bar.add_task("replaying the log into fresh rollups", total=total)
                return await rebuild(
                    staged, event_log, SystemClock(), lambda n: bar.update(task, advance=n)
                )
        finally:
            await event_log.close()

    folded, where = run(work())
    console.print(f"rebuilt the rollups from {folded:,} records; now live: {where}")


@app.command()
def totals(
    start: Annotated[
        datetime | None, typer.Option(help="From (UTC), e.g. 2026-07-04T12:00; default: all.")
    ] = None,
    end: Annotated[datetime | None, typer.Option(help="Until (UTC); default: all.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Totals over the window (default: all the rollups hold): posts, replies, likes,
    reposts, deleted; the top hashtags.

    They are read from the tiers that still cover the window: once retention drops the
    minute rollups, from the hours and days, a window's edges widened to whole buckets.
    """
    settings = load_settings()
    window = _totals_window(start, end, settings)
    store = open_rollups(settings, SystemClock())
    try:
        found: dict[str, Any] = service.global_totals(store.query, window)
        found["top_tags"] = dict(service.top(store.query, "hashtags", window, 10, 0))
    finally:
        store.close()
    if json:
        print_json(found)
        return
    for name, value in found.items():
        console.print(f"{name:10} {value}")


def _totals_window(start: datetime | None, end: datetime | None, settings: Settings) -> Window:
    """The window asked for (naive times are UTC), widened where retention dropped the
    finer tiers; a clear error for one that makes no sense."""
    now_minute = int(datetime.now(UTC).timestamp() // 60)
    try:
        window = Window(_utc(start, service.EARLIEST), _utc(end, service.LATEST))
        return service.retained(window, settings.rollup_horizons(now_minute), service.TOP_TIERS)
    except ReportError as error:
        fail(str(error))


def _utc(moment: datetime | None, default: datetime) -> datetime:
    if moment is None:
        return default
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
