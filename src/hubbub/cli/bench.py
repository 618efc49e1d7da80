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
    http_seconds: Annotated[
        float, typer.Option(help="Seconds of HTTP load per concurrency (0: skip HTTP).", min=0)
    ] = 3.0,
    http_replicas: Annotated[
        int, typer.Option(help="Mentions replicas serving HTTP (processes).", min=1)
    ] = 2,
    postgres: Annotated[
        bool, typer.Option(help="Compare with the postgres backend on the same queries.")
    ] = True,
    postgres_url: Annotated[
        str, typer.Option(help="A PostgreSQL database to create the benchmark's database from.")
    ] = "postgresql://127.0.0.1:5432/postgres",
    postgres_queries: Annotated[
        int, typer.Option(help="Of the prefixes, how many postgres answers.", min=1)
    ] = 200,
    json: Annotated[bool, typer.Option("--json", help="Print the JSON object only.")] = False,
) -> None:
    """Build the mentions index over generated pages, then time it: in process, over HTTP
    (server and load generator in processes of their own), under follower updates, and
    against the postgres backend on the same queries."""
    from hubbub.benchmarks.mentions import run_mentions_benchmark

    if not json:
        console.print(f"mentions benchmark: {pages:,} pages, {queries:,} queries…")
    result = run_mentions_benchmark(
        pages=pages,
        queries=queries,
        http_seconds=http_seconds,
        http_replicas=http_replicas,
        postgres_url=postgres_url if postgres else None,
        postgres_queries=postgres_queries,
        progress=(lambda _: None) if json else (lambda step: console.print(f"  {step}…")),
    )
    print_json(result)


@app.command()
def reports(
    events: Annotated[int, typer.Option(help="Events through the worker.", min=1)] = 1_000_000,
    posts_per_year: Annotated[
        int, typer.Option(help="Posts a year of bulk-loaded rollups stands for.", min=1)
    ] = 100_000_000,
    json: Annotated[bool, typer.Option("--json", help="Print the JSON object only.")] = False,
) -> None:
    """Time the analytics worker into rollups, and reports over a year of rollups."""
    from hubbub.benchmarks.reports import run_reports_benchmark

    load_settings()  # logging as configured
    result = run_reports_benchmark(
        events=events,
        posts_per_year=posts_per_year,
        progress=(lambda _: None) if json else (lambda step: console.print(f"  {step}…")),
    )
    print_json(result)


@app.command()
def gateway(
    requests: Annotated[int, typer.Option(help="Requests each way per round.", min=10)] = 2000,
    rounds: Annotated[int, typer.Option(help="Rounds; medians are reported.", min=1)] = 5,
    json: Annotated[bool, typer.Option("--json", help="Print the JSON object only.")] = False,
) -> None:
    """The latency the gateway adds: one query straight to the mentions role and through
    the gateway, alternating, in the same run."""
    from hubbub.benchmarks.gateway import run_gateway_benchmark

    load_settings()  # logging as configured
    result = run_gateway_benchmark(
        requests=requests,
        rounds=rounds,
        progress=(lambda _: None) if json else (lambda step: console.print(f"  {step}…")),
    )
    print_json(result)


@app.command()
def web(
    posts_per_year: Annotated[
        int, typer.Option(help="Posts the year of rollups behind the reports stands for.", min=1)
    ] = 100_000_000,
    pages: Annotated[
        int, typer.Option(help="PageSeen events in the log for the mentions index.", min=100)
    ] = 200_000,
    requests: Annotated[int, typer.Option(help="Timed GETs of each page.", min=1)] = 50,
    keystrokes: Annotated[
        int, typer.Option(help="Keystrokes after an @ typed in Chromium.", min=1)
    ] = 300,
    json: Annotated[bool, typer.Option("--json", help="Print the JSON object only.")] = False,
) -> None:
    """The web app through the gateway: server time per page over a year of rollups,
    keystroke to suggestions drawn in Chromium, and a page's JS and CSS compressed."""
    from hubbub.benchmarks.web import run_web_benchmark

    load_settings()  # logging as configured
    if not json:
        console.print(
            f"web benchmark: {posts_per_year:,} posts a year, {pages:,} pages,"
            f" {requests} requests a page…"
        )
    result = run_web_benchmark(
        posts_per_year=posts_per_year,
        pages=pages,
        requests=requests,
        keystrokes=keystrokes,
        progress=(lambda _: None) if json else (lambda step: console.print(f"  {step}…")),
    )
    print_json(result)


@app.command()
def publishing(
    jobs: Annotated[int, typer.Option(help="Jobs due over the window.", min=1)] = 100_000,
    window_s: Annotated[float, typer.Option(help="Seconds they fall due over.", min=1)] = 60.0,
    burst: Annotated[int, typer.Option(help="Jobs due at once, for the rate.", min=1)] = 10_000,
    pds_burst: Annotated[
        int, typer.Option(help="Jobs due at once to Bluesky's PDS (0: skip it).", min=0)
    ] = 1_000,
    replicas: Annotated[int, typer.Option(help="Publishing processes.", min=1)] = 2,
    accounts: Annotated[
        int, typer.Option(help="Mastodon accounts the jobs are spread over.", min=1)
    ] = 1000,
    pds_accounts: Annotated[
        int, typer.Option(help="Accounts on the PDS the PDS jobs are spread over.", min=1)
    ] = 10,
    relational_url: Annotated[
        str | None, typer.Option(help="A PostgreSQL URL for the jobs (default: SQLite).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the JSON object only.")] = False,
) -> None:
    """Publishing: lateness of many jobs falling due within a window, posts a second to
    the Mastodon sandbox and to Bluesky's own PDS, and duplicates and skipped jobs."""
    from hubbub.benchmarks.publishing import run_publishing_benchmark

    settings = load_settings()
    if not json:
        console.print(
            f"publishing benchmark: {jobs:,} jobs over {window_s:g} s, {replicas} publishers…"
        )
    result = run_publishing_benchmark(
        jobs_count=jobs, window_s=window_s, burst=burst, pds_burst=pds_burst,
        replicas=replicas, relational_url=relational_url, base=settings, accounts=accounts,
        pds_accounts=pds_accounts,
    )  # fmt: skip
    print_json(result)


@app.command()
def listening(
    posts: Annotated[
        int, typer.Option(help="Generated posts the matching is timed on.", min=1)
    ] = 50_000,
    rate: Annotated[
        int, typer.Option(help="Posts a second appended for the live half.", min=1)
    ] = 10_000,
    seconds: Annotated[float, typer.Option(help="How long the live half appends.", min=3)] = 20.0,
    json: Annotated[bool, typer.Option("--json", help="Print the JSON object only.")] = False,
) -> None:
    """Listening: posts matched a second against 10,000 and 100,000 saved searches on one
    core, and from a post appended to its match on an open live stream at `rate`."""
    from hubbub.benchmarks.listening import bench_matching
    from hubbub.benchmarks.listening_live import run_live

    load_settings()  # logging as configured

    def say(step: str) -> None:
        if not json:
            console.print(f"  {step}…")

    say("matching against 10,000 and 100,000 searches")
    result = bench_matching(posts)
    result |= run_live(10_000, rate, seconds, progress=say)
    print_json(result)


@app.command("best-time")
def best_time(
    days: Annotated[int, typer.Option(help="Days of stream: all but the last train.", min=2)] = 8,
    json: Annotated[bool, typer.Option("--json", help="Print the JSON object only.")] = False,
) -> None:
    """Whether the best-time model finds the daily peaks planted in a synthetic firehose,
    and holds on a held-back day."""
    from hubbub.benchmarks.best_time import run_best_time

    load_settings()  # logging as configured
    if not json:
        console.print(f"  generating and folding {days} days of firehose…")
    print_json(run_best_time(days=days))


@app.command()
def soak(
    minutes: Annotated[float, typer.Option(help="Minutes to run after start-up.", min=0.05)] = 60.0,
    rate: Annotated[int, typer.Option(help="Firehose events a second.", min=1)] = 10_000,
    pages: Annotated[int, typer.Option(help="Accounts in the firehose.", min=1)] = 100_000,
    http_rate: Annotated[
        float, typer.Option(help="GETs a second: autocomplete and reports.", min=0.1)
    ] = 20.0,
    sample_s: Annotated[float, typer.Option(help="Seconds between samples.", min=0.5)] = 5.0,
    analytics_memory_limit: Annotated[
        str,
        typer.Option(help="DuckDB's buffer pool in analytics (HUBBUB_ANALYTICS_MEMORY_LIMIT)."),
    ] = "1GB",
    plot: Annotated[
        str, typer.Option(help="Where the PNG of the curves goes (the roles' log beside it).")
    ] = "test-artifacts/soak.png",
    json: Annotated[bool, typer.Option("--json", help="Print the JSON object only.")] = False,
) -> None:
    """The whole platform (`hubbub serve`) for --minutes under a synthetic firehose and
    HTTP load through the gateway: memory growth per role, each consumer's lag, errors."""
    from pathlib import Path

    from rich.live import Live

    from hubbub.benchmarks.soak import SoakPlan, run_soak_benchmark

    load_settings()  # logging as configured
    plan = SoakPlan(
        minutes=minutes, rate=rate, pages=pages, http_rate=http_rate, sample_s=sample_s,
        analytics_memory_limit=analytics_memory_limit, plot=Path(plot),
    )  # fmt: skip
    try:
        if json:
            result = run_soak_benchmark(plan)
        else:
            with Live(console=console, refresh_per_second=2) as live:
                result = run_soak_benchmark(plan, show=live.update)
    except RuntimeError as error:  # no room on disk, a role or helper that did not start
        fail(str(error))
    print_json(result)
