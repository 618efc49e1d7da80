"""`hubbub generate ...`: synthetic input for demos and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from hubbub.cli.common import console
from hubbub.ingest.generate import FirehoseSpec, write_firehose

app = typer.Typer(help="Synthetic input for demos and benchmarks.", no_args_is_help=True)


@app.command()
def firehose(
    events: Annotated[int, typer.Option(help="Lines to write.", min=1)] = 100_000,
    pages: Annotated[int, typer.Option(help="Accounts in the synthetic world.", min=1)] = 10_000,
    out: Annotated[Path, typer.Option(help="Output JSONL file.")] = Path("firehose.jsonl"),
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
) -> None:
    """Write a realistic Jetstream-format stream (real event mix, Zipf popularity)."""
    spec = FirehoseSpec(events=events, pages=pages, seed=seed)
    with Progress(
        TextColumn("generating"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("generate", total=events)
        written = write_firehose(spec, out, lambda n: progress.update(task, completed=n))
    console.print(f"wrote {written:,} events to {out}")
