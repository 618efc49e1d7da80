"""`hubbub analytics ...`: the analytics worker and what its rollups hold."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn

from hubbub.analytics.worker import BATCH, catch_up, follow
from hubbub.bootstrap import open_event_log, open_rollups
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
            following = asyncio.create_task(follow(store, event_log))
            await stop.wait()
            following.cancel()
            return folded
        finally:
            store.close()
            await event_log.close()

    folded = run(work())
    console.print(f"folded {folded:,} records into the {settings.analytics_store} rollups")


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
