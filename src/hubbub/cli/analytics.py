"""`hubbub analytics ...`: the analytics worker and what its rollups hold."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from hubbub.analytics.worker import (
    BATCH,
    TOPICS,
    catch_up,
    follow,
    follow_archive,
    keep_retention,
    rebuild,
)
from hubbub.bootstrap import open_archive, open_event_log, open_rollups, open_staged_rollups
from hubbub.cli.common import console, load_settings, print_json, run, stop_on_signals

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
        event_log = await open_event_log(settings)
        store = open_rollups(settings)
        try:
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True
            ) as bar:
                task = bar.add_task("folding the log into rollups", total=None)
                folded = await catch_up(
                    store, event_log, batch, lambda n: bar.update(task, advance=n)
                )
            if once:
                return folded
            stop = asyncio.Event()
            stop_on_signals(stop)
            archive = open_archive(settings)
            tasks = [
                asyncio.create_task(follow(store, event_log)),
                asyncio.create_task(follow_archive(archive, event_log, settings.archive_flush_s)),
                asyncio.create_task(keep_retention(store, archive, settings)),
            ]
            await stop.wait()
            for running in tasks:
                running.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return folded
        finally:
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
                return await rebuild(staged, event_log, lambda n: bar.update(task, advance=n))
        finally:
            await event_log.close()

    folded, where = run(work())
    console.print(f"rebuilt the rollups from {folded:,} records; now live: {where}")


@app.command()
def totals(
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Totals over every minute: posts, replies, likes, reposts, deleted; the top hashtags."""
    settings = load_settings()
    store = open_rollups(settings)
    try:
        (row,) = store.query(
            "SELECT coalesce(sum(posts), 0), coalesce(sum(replies), 0), coalesce(sum(likes), 0),"
            " coalesce(sum(reposts), 0), coalesce(sum(deleted), 0) FROM global_minute"
        )
        tags = store.query(
            "SELECT tag, sum(posts) AS n FROM tag_minute GROUP BY tag HAVING sum(posts) > 0"
            " ORDER BY n DESC, tag LIMIT 10"
        )
    finally:
        store.close()
    found = dict(
        zip(("posts", "replies", "likes", "reposts", "deleted"), map(int, row), strict=True)
    )
    found["top_tags"] = {tag: int(n) for tag, n in tags}  # type: ignore[assignment]
    if json:
        print_json(found)
        return
    for name, value in found.items():
        console.print(f"{name:10} {value}")
