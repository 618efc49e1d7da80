"""`hubbub serve` and `hubbub demo`: run the platform's HTTP API, with or without a firehose."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer
import uvicorn
from rich.live import Live

from hubbub.bootstrap import Platform, build_platform
from hubbub.cli.common import console, fail, load_settings, run, stop_on_signals
from hubbub.cli.ingest import LiveLine
from hubbub.ingest.generate import FirehoseSpec, generate_firehose
from hubbub.ingest.pipeline import BatchSink, IngestSummary
from hubbub.kernel.events import DEADLETTER
from hubbub.kernel.telemetry import configure_logging
from hubbub.settings import Settings
from hubbub.web.app import ROLES, create_app


def _server(platform: Platform, host: str, port: int, role: str = "all") -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(platform, role), host=host, port=port, log_level="warning", lifespan="off"
    )
    return uvicorn.Server(config)


def _shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket other processes may bind too; the kernel spreads connections."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


async def _serve(
    settings: Settings, role: str, host: str, port: int, *, replica: int | None = None
) -> None:
    """Serve `role`; as replica N of several (sharing the port), only replica 0 writes
    the mentions snapshot that all of them start from."""
    platform = await build_platform(settings)
    platform.keeps_snapshots = not replica
    try:
        if role in ("all", "mentions"):
            started = time.monotonic()
            mentions = await platform.mentions()  # listen once the index has caught up
            pages = await mentions.backends[mentions.serving].page_count()
            console.print(
                f"mentions: serving from {mentions.serving} "
                f"({pages:,} pages, ready in {time.monotonic() - started:.1f} s)"
            )
        if role in ("all", "analytics"):
            await platform.analytics()  # the worker starts folding the log now
        server = _server(platform, host, port, role)
        if replica is None:
            await server.serve()
        else:
            await server.serve(sockets=[_shared_socket(host, port)])
    finally:
        await platform.close()


def _replica_main(settings: dict[str, Any], role: str, host: str, port: int, n: int) -> None:
    """A replica process: the same role on the same port, with a log position of its own."""
    loaded = Settings(**settings)
    configure_logging(loaded.log_level, loaded.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        run(_serve(loaded, role, host, port, replica=n))


def _run_replicas(settings: Settings, role: str, host: str, port: int, count: int) -> None:
    spawn = multiprocessing.get_context("spawn")
    dump = settings.model_dump()
    processes = [
        spawn.Process(target=_replica_main, args=(dump, role, host, port, n), name=f"{role}-{n}")
        for n in range(count)
    ]
    for process in processes:
        process.start()

    def stop(signum: int, frame: object) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    # SIGTERM (a supervisor, `kill`) is passed on; Ctrl-C reaches every process already.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    console.print(f"{count} {role} replicas on {host}:{port}; Ctrl-C stops them")
    for process in processes:
        process.join()
    failed = [p.name for p in processes if p.exitcode not in (0, -signal.SIGINT, -signal.SIGTERM)]
    if failed:
        fail(f"replicas exited with an error: {', '.join(failed)}")


def serve(
    role: Annotated[str, typer.Option(help=f"Role to run: {', '.join(ROLES)}.")] = "all",
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    replicas: Annotated[
        int, typer.Option(help="Processes of the mentions role sharing the port.", min=1)
    ] = 1,
) -> None:
    """Serve the HTTP API of a role (all of them by default), with /healthz, /readyz, /metrics.

    Roles: `ingest` (push ingest), `mentions` (a replica of @mention autocomplete: it
    builds its own index from the log, so several can run side by side; `--replicas N`
    starts N of them on one port, one per core), `analytics` (the rollups worker and
    the reports API; one process, since it owns the DuckDB file).
    """
    if role not in ROLES:
        raise typer.BadParameter(f"unknown role {role!r}: use {', '.join(ROLES)}")
    if replicas > 1 and role != "mentions":
        raise typer.BadParameter("--replicas is for the mentions role")
    settings = load_settings()
    host, port = host or settings.http_host, port or settings.http_port
    if replicas > 1:
        _run_replicas(settings, role, host, port, replicas)
    else:
        run(_serve(settings, role, host, port))


def _with_junk(lines: Iterator[bytes], every: int) -> Iterator[bytes]:
    """Real firehoses carry bad input now and then; the demo shows where it goes.

    Each bad line differs (it carries its number): identical bytes would be one
    redelivered line, which the dead-letter topic keeps once.
    """
    for n, line in enumerate(lines, 1):
        yield line
        if n % every == 0:
            if (n // every) % 2:
                yield b'{"did": "did:plc:broken%d", "time_us": "yesterday"}' % n
            else:
                yield b'{"did": "did:plc:truncated%d", "time_us": ' % n


async def _feed(
    ingestor: BatchSink, rate: int, pages: int, line: LiveLine, stop: asyncio.Event
) -> None:
    spec = FirehoseSpec(
        events=10**12,
        pages=pages,
        start_us=time.time_ns() // 1000,
        rate_per_s=rate,
        seed=int(time.time()),
    )
    lines = _with_junk(generate_firehose(spec), every=5000)
    tick = 0.1
    per_tick = max(1, int(rate * tick))
    started = time.monotonic()
    sent = 0
    while not stop.is_set():
        batch = [next(lines) for _ in range(per_tick)]
        done = await ingestor.submit(batch)
        done.add_done_callback(lambda f: line.add(f.result()) if not f.exception() else None)
        sent += len(batch)
        await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))


def _where_to_look(settings: Settings, host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    hubbub = f".venv/bin/hubbub --data-dir {settings.data_dir}"
    return (
        "[bold]Hubbub demo: a live synthetic Jetstream firehose[/]\n"
        f"API      {base}/docs\n"
        f"push     POST {base}/v1/ingest/jetstream\n"
        f"mentions {base}/v1/mentions?q=ma\n"
        f"reports  {base}/v1/reports/top/hashtags?start=<ISO time>&end=<ISO time>\n"
        f"metrics  {base}/metrics  (and /healthz, /readyz)\n"
        f"log      {hubbub} log stats\n"
        f"refused  {hubbub} deadletter list\n"
        f"state    {settings.data_dir.resolve()} ({settings.event_log} event log)\n"
        "stop     Ctrl-C\n"
    )


async def _demo(
    settings: Settings, rate: int, pages: int, duration: float | None, host: str, port: int
) -> IngestSummary:
    platform = await build_platform(settings)
    stop = asyncio.Event()
    stop_on_signals(stop)
    server = _server(platform, host, port)
    server_task = asyncio.create_task(server.serve())
    line = LiveLine("firehose")
    try:
        ingestor = await platform.ingestor("jetstream")
        await platform.analytics()  # rollups for the reports, kept up as events arrive
        console.print(_where_to_look(settings, host, port), soft_wrap=True)  # paths stay whole
        feeder = asyncio.create_task(_feed(ingestor, rate, pages, line, stop))
        deadline = time.monotonic() + duration if duration else None
        with Live(line.render(), console=console, refresh_per_second=4) as live:
            while not stop.is_set() and not feeder.done():
                if deadline and time.monotonic() >= deadline:
                    stop.set()
                await asyncio.sleep(0.25)
                live.update(line.render())
            await feeder
            await ingestor.stop()
            live.update(line.render())
    finally:
        server.should_exit = True
        await server_task
        stats = await platform.event_log.stats()
        await platform.close()
    console.print()
    counts = ", ".join(f"{t.topic} {t.count:,}" for t in stats.topics if t.topic != DEADLETTER)
    console.print(
        f"event log: {counts}; dead letters: "
        f"{sum(t.count for t in stats.topics if t.topic == DEADLETTER):,}"
    )
    return line.totals


def demo(
    rate: Annotated[int, typer.Option(help="Synthetic events per second.", min=1)] = 2000,
    pages: Annotated[int, typer.Option(help="Accounts in the synthetic world.", min=1)] = 50_000,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
) -> None:
    """Run the platform on embedded defaults with a live synthetic firehose."""
    settings = load_settings()
    run(
        _demo(
            settings, rate, pages, duration, host or settings.http_host, port or settings.http_port
        )
    )
