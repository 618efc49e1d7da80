"""`hubbub generate ...`: synthetic input for demos and benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from hubbub.cli.common import console, fail
from hubbub.synthetic.firehose import FirehoseSpec, write_firehose

app = typer.Typer(help="Synthetic input for demos and benchmarks.", no_args_is_help=True)


@app.command()
def firehose(
    events: Annotated[int, typer.Option(help="Lines to write.", min=1)] = 100_000,
    pages: Annotated[int, typer.Option(help="Accounts in the synthetic world.", min=1)] = 10_000,
    out: Annotated[Path, typer.Option(help="Output JSONL file.")] = Path("firehose.jsonl"),
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    start: Annotated[
        str | None,
        typer.Option(
            help="When the stream starts, ISO 8601 (e.g. 2026-07-04T12:00Z; UTC without an"
            " offset). Default: now, so that a replay falls inside the rollups' retention.",
        ),
    ] = None,
) -> None:
    """Write a realistic Jetstream-format stream (real event mix, Zipf popularity)."""
    spec = FirehoseSpec(events=events, pages=pages, seed=seed, start_us=start_micros(start))
    with Progress(
        TextColumn("generating"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("generate", total=events)
        written = write_firehose(spec, out, lambda n: progress.update(task, completed=n))
    console.print(f"wrote {written:,} events to {out}")


def start_micros(start: str | None) -> int:
    """`--start` as epoch microseconds: now when absent; a clear error when unreadable."""
    if start is None:
        return int(datetime.now(UTC).timestamp() * 1_000_000)
    try:
        moment = datetime.fromisoformat(start)
    except ValueError:
        fail(f"--start {start!r} is not an ISO 8601 time, e.g. 2026-07-04T12:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)
