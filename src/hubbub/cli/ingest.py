"""`hubbub ingest ...`: connect a source to the event log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from hubbub.bootstrap import Platform
from hubbub.cli.common import (
    console,
    fail,
    load_settings,
    print_json,
    run,
    stop_on_signals,
    with_platform,
)
from hubbub.cli.connectors import stored_token
from hubbub.ingest.connectors.jsonl import replay_file
from hubbub.ingest.ports import SOURCES
from hubbub.ingest.service import IngestSummary

app = typer.Typer(help="Connect a source (live or a file) to the event log.", no_args_is_help=True)


class LiveLine:
    """One line, redrawn: events/s, totals by outcome and the dead-letter count."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.totals = IngestSummary()
        self.started = time.monotonic()
        self._window: list[tuple[float, int]] = []

    def add(self, summary: IngestSummary) -> None:
        self.totals.add(summary)
        now = time.monotonic()
        self._window = [(t, n) for t, n in self._window if now - t < 5.0]
        self._window.append((now, summary.total))

    def rate(self) -> float:
        if not self._window:
            return 0.0
        span = max(time.monotonic() - self._window[0][0], 1.0)
        return sum(n for _, n in self._window) / span

    def render(self) -> Text:
        t = self.totals
        return Text.assemble(
            (f"{self.label}  ", "bold"),
            (f"{self.rate():>9,.0f} events/s", "cyan"),
            f"  total {t.total:,}  accepted {t.accepted:,}  skipped {t.skipped:,}"
            f"  duplicates {t.duplicates:,}  ",
            (f"dead-lettered {t.rejected:,}", "red" if t.rejected else "green"),
        )


async def run_live(live_line: LiveLine, connector: asyncio.Task[None]) -> None:
    with Live(live_line.render(), console=console, refresh_per_second=4) as live:
        while not connector.done():
            live.update(live_line.render())
            await asyncio.sleep(0.25)
        live.update(live_line.render())
    await connector


@app.command()
def jetstream(
    url: Annotated[str | None, typer.Option(help="Jetstream /subscribe URL.")] = None,
    collections: Annotated[
        list[str] | None, typer.Option("--collections", "-c", help="Only these (repeatable).")
    ] = None,
) -> None:
    """Stream the Bluesky Jetstream into the log, resuming from the stored cursor.

    Ctrl-C stops it cleanly: the batches already read are appended and the cursor saved.
    """
    from hubbub.ingest.connectors.jetstream import run_jetstream

    settings = load_settings()
    line = LiveLine("jetstream")

    async def work(platform: Platform) -> None:
        ingestor = await platform.ingestor("jetstream")
        stop = asyncio.Event()
        stop_on_signals(stop)
        task = asyncio.create_task(
            run_jetstream(
                ingestor,
                platform.ingest_state,
                url=url or settings.jetstream_url,
                collections=collections or (),
                batch_size=settings.batch_size,
                batch_max_wait_s=settings.batch_max_wait_s,
                rewind_s=settings.jetstream_rewind_s,
                max_backoff_s=settings.reconnect_max_backoff_s,
                on_batch=line.add,
                stop=stop,
            )
        )
        await run_live(line, task)

    run(with_platform(settings, work))


@app.command()
def mastodon(
    url: Annotated[str, typer.Option(help="Instance URL, e.g. https://mastodon.social.")],
    token: Annotated[
        str | None, typer.Option(help="Access token (read:statuses); default: the one kept.")
    ] = None,
    stream: Annotated[str, typer.Option(help="Stream name: public, public/local, ...")] = "public",
) -> None:
    """Stream a Mastodon instance's public timeline (SSE) into the log."""
    from urllib.parse import urlsplit

    from hubbub.ingest.connectors.mastodon import run_mastodon

    settings = load_settings()
    instance = urlsplit(url).hostname or url
    token = token or stored_token(settings, "mastodon", instance)
    line = LiveLine("mastodon")

    async def work(platform: Platform) -> None:
        ingestor = await platform.ingestor("mastodon", instance=instance)
        stop = asyncio.Event()
        stop_on_signals(stop)
        task = asyncio.create_task(
            run_mastodon(
                ingestor,
                url=url,
                token=token,
                stream=stream,
                max_backoff_s=settings.reconnect_max_backoff_s,
                on_batch=line.add,
                stop=stop,
            )
        )
        await run_live(line, task)

    run(with_platform(settings, work))


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="JSONL file, one source event per line.")],
    source: Annotated[str, typer.Option(help="jetstream or mastodon.")],
    rate: Annotated[
        float | None, typer.Option(help="Events per second (default: as fast as it goes).", min=1)
    ] = None,
    instance: Annotated[str, typer.Option(help="Mastodon instance the ids belong to.")] = "replay",
    json: Annotated[bool, typer.Option("--json", help="Print one JSON summary.")] = False,
) -> None:
    """Replay a recorded file through the pipeline; exits 0 whatever the file held."""
    if source not in SOURCES:
        fail(f"unknown source {source!r}: use {', '.join(SOURCES)}")
    if not file.is_file():
        fail(f"no such file: {file}")
    settings = load_settings()

    async def work(platform: Platform) -> IngestSummary:
        ingestor = await platform.ingestor(source, instance=instance)
        with Progress(
            TextColumn(f"replaying {file.name}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=json,
            disable=json and not console.is_terminal,
        ) as progress:
            task = progress.add_task("replay", total=file.stat().st_size)
            return await replay_file(
                ingestor,
                file,
                rate=rate,
                batch_size=settings.batch_size,
                progress=lambda n: progress.advance(task, n),
            )

    summary = run(with_platform(settings, work))
    if json:
        print_json(
            {
                "accepted": summary.accepted,
                "skipped": summary.skipped,
                "rejected": summary.rejected,
                "duplicates": summary.duplicates,
                "skipped_reasons": summary.skipped_reasons,
            }
        )
    else:
        console.print(
            f"{summary.total:,} lines: {summary.accepted:,} accepted, {summary.skipped:,} skipped,"
            f" {summary.rejected:,} rejected (dead-lettered), {summary.duplicates:,} duplicates"
        )
