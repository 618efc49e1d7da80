"""`hubbub bench NAME`: the benchmarks of the core platforms, one JSON object each."""

from __future__ import annotations

from typing import Annotated

import typer

from hubbub.cli.common import console, fail, load_settings, print_json

app = typer.Typer(help="Benchmarks of the core platforms.", no_args_is_help=True)


@app.command()
def ingest(
    events: Annotated[int, typer.Option(help="Events in the generated stream.", min=1)] = 1_000_000,
    pages: Annotated[int, typer.Option(help="Accounts in the generated stream.", min=1)] = 100_000,
    log: Annotated[str, typer.Option(help="Event log: sqlite or jetstream.")] = "sqlite",
    runs: Annotated[int, typer.Option(help="Runs; the median is reported.", min=1)] = 5,
    batch_size: Annotated[int, typer.Option(help="Events per batch.", min=1)] = 50_000,
    workers: Annotated[int, typer.Option(help="Ingest processes, sharded by account.", min=1)] = 2,
    json: Annotated[bool, typer.Option("--json", help="Print the JSON object only.")] = False,
) -> None:
    """Generate a real-mix stream and run it through decode, validate, map, dedupe, append."""
    from hubbub.benchmarks.ingest import run_ingest_benchmark
    from hubbub.settings import EVENT_LOG_ADAPTERS

    if log not in EVENT_LOG_ADAPTERS:
        fail(f"unknown event log {log!r}: use {', '.join(EVENT_LOG_ADAPTERS)}")
    if not json:
        console.print(
            f"ingest benchmark: {events:,} events, {log} log, {workers} workers, {runs} runs…"
        )
    result = run_ingest_benchmark(
        events=events,
        pages=pages,
        log=log,
        runs=runs,
        batch_size=batch_size,
        workers=workers,
        base=load_settings(),
    )
    print_json(result)


@app.command()
def mentions(
    pages: Annotated[
        int, typer.Option(help="Pages in the generated population.", min=1)
    ] = 1_000_000,
    queries: Annotated[int, typer.Option(help="Prefixes to time.", min=1)] = 20_000,
    json: Annotated[bool, typer.Option("--json", help="Print the JSON object only.")] = False,
) -> None:
    """Build the mentions index over generated pages, then time top-10 prefix queries.

    In-process figures only so far: the HTTP and PostgreSQL comparisons print null.
    """
    from hubbub.benchmarks.mentions import run_mentions_benchmark

    if not json:
        console.print(f"mentions benchmark: {pages:,} pages, {queries:,} queries…")
    print_json(run_mentions_benchmark(pages=pages, queries=queries))
