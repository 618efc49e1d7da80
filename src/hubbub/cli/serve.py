"""`hubbub serve` and `hubbub demo`: run the platform's roles, with or without a firehose.

`hubbub serve` runs every role (ingest, mentions, analytics, gateway) as a process of
its own under one supervisor (`hubbub.supervisor`), which restarts a role that dies;
`hubbub serve --role NAME` runs one role in this process. `hubbub demo` does what
`hubbub serve` does and feeds the ingest role a live synthetic firehose over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import msgspec
import structlog
import typer
import uvicorn
from pydantic import SecretStr
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from hubbub.bootstrap import Platform, build_platform, open_tenant_store
from hubbub.cli.common import console, fail, load_settings, run, with_log
from hubbub.cli.ingest import LiveLine
from hubbub.eventlog.ports import LogStats
from hubbub.ingest.pipeline import IngestSummary
from hubbub.kernel.events import DEADLETTER
from hubbub.kernel.telemetry import configure_logging
from hubbub.kernel.tracing import configure_tracing
from hubbub.settings import Settings
from hubbub.supervisor import PLATFORM_ROLES, Supervisor, platform_roles, role_urls, url_port
from hubbub.synthetic.firehose import FirehoseSpec, generate_firehose
from hubbub.web.app import ROLES, create_app

SERVE_ROLES = (*ROLES, "gateway")
READY_TIMEOUT_S = 120.0  # the mentions role compiles its kernels on a first start
PUSH_TICK_S = 0.1
PUSHES_IN_FLIGHT = 8

log = structlog.get_logger()


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


def _close_after_signals(server: uvicorn.Server) -> None:
    """uvicorn raises again the SIGINT or SIGTERM that stopped it once it has shut down,
    which would end the process before the platform closes. Handled here, that signal
    only asks the server to exit, so the platform closes (the mentions snapshot is
    written, files are closed) and the process exits 0."""

    def finish(signum: int, frame: object) -> None:
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, finish)


def _stop_with_supervisor(server: uvicorn.Server, supervisor_pid: int | None) -> None:
    """A role started by `hubbub serve` stops when its supervisor is gone (killed with
    SIGKILL, say): the roles are in sessions of their own, so nothing else would stop
    them, and a new supervisor could not bind their ports."""
    if supervisor_pid is None:
        return

    async def watch() -> None:
        while True:  # no event says a parent died: its child is handed to another
            await asyncio.sleep(1.0)
            if os.getppid() != supervisor_pid:
                break
        log.warning("the supervisor is gone; stopping", supervisor=supervisor_pid)
        server.should_exit = True

    task = asyncio.get_running_loop().create_task(watch())
    _watchers.add(task)  # held, so the task is not collected while it runs


_watchers: set[asyncio.Task[None]] = set()


async def _warm_up(platform: Platform, role: str) -> None:
    """Start what `role` serves from, so it listens once it can answer."""
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


async def _serve(
    settings: Settings, role: str, host: str, port: int, *, replica: int | None = None
) -> None:
    """Serve `role`; as replica N of several (sharing the port), only replica 0 writes
    the mentions snapshot that all of them start from."""
    configure_tracing(role, settings.otlp_endpoint)
    platform = await build_platform(settings)
    platform.keeps_snapshots = not replica
    try:
        await _warm_up(platform, role)
        server = _server(platform, host, port, role)
        _close_after_signals(server)
        _stop_with_supervisor(server, settings.supervisor_pid)
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
    dump["supervisor_pid"] = os.getpid()  # replicas stop if this process is gone
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


def _stop_on_signals(stop: asyncio.Event) -> None:
    """Ctrl-C, SIGTERM and a closed terminal (SIGHUP) set `stop`: the children run in
    sessions of their own, so the supervisor must outlive its terminal to stop them."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)


async def _supervise(settings: Settings, host: str | None, port: int | None, replicas: int) -> None:
    """Every platform role in a process of its own, kept up until a signal stops them."""
    roles = platform_roles(settings, host=host, gateway_port=port, mentions_replicas=replicas)
    supervisor = Supervisor(roles)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    await supervisor.run(stop, on_started=lambda: console.print(supervisor.table()))


def _role_port(settings: Settings, role: str) -> int:
    """A role listens on the port of the URL the gateway reaches it at."""
    if role in PLATFORM_ROLES and role != "gateway":
        return url_port(role_urls(settings, settings.http_host, settings.http_port)[role])
    return settings.http_port


async def _gateway(settings: Settings, host: str, port: int) -> None:
    from hubbub.bootstrap import build_gateway  # its dependencies load only where it runs
    from hubbub.gateway.app import gateway_server

    configure_tracing("gateway", settings.otlp_endpoint)
    gateway = await build_gateway(settings)
    try:
        server = gateway_server(gateway, host, port)
        _close_after_signals(server)
        _stop_with_supervisor(server, settings.supervisor_pid)
        await server.serve()
    finally:
        await gateway.close()  # usage records still buffered reach the log


def _serve_gateway(settings: Settings, host: str, port: int) -> None:
    run(_gateway(settings, host, port))


def serve(
    role: Annotated[
        str | None,
        typer.Option(
            help=f"Run one role in this process: {', '.join(SERVE_ROLES)}. "
            "Default: every role but `all`, each in a process of its own."
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Listen address (the gateway's HUBBUB_HTTP_HOST; a role's HUBBUB_ROLE_HOST,"
            " loopback by default)."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Listen port (default: the gateway's HUBBUB_HTTP_PORT, a role's URL)."),
    ] = None,
    replicas: Annotated[
        int, typer.Option(help="Processes of the mentions role sharing its port.", min=1)
    ] = 1,
) -> None:
    """Serve the platform: every role under a supervisor that restarts one that dies.

    Roles: `gateway` (the public API on HUBBUB_HTTP_PORT: keys, rate limits, /docs,
    /healthz of every role), `ingest` (push ingest), `mentions` (a replica of @mention
    autocomplete: it builds its own index from the log, so several can run side by
    side; `--replicas N` starts N of them on one port, one per core), `analytics` (the
    rollups worker and the reports API; one process, since it owns the DuckDB file).
    A role listens on the port of its URL setting (HUBBUB_INGEST_URL, HUBBUB_MENTIONS_URL,
    HUBBUB_ANALYTICS_URL). `--role all` serves every route but the gateway's in one
    process. Each process has /healthz, /readyz and /metrics.
    """
    if role is not None and role not in SERVE_ROLES:
        raise typer.BadParameter(f"unknown role {role!r}: use {', '.join(SERVE_ROLES)}")
    if replicas > 1 and role not in (None, "mentions"):
        raise typer.BadParameter("--replicas is for the mentions role")
    settings = load_settings()
    if role is None:
        run(_supervise(settings, host, port, replicas))
        return
    default_host = settings.http_host if role == "gateway" else settings.role_host
    host, port = host or default_host, port or _role_port(settings, role)
    if role == "gateway":
        _serve_gateway(settings, host, port)
    elif replicas > 1:
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


@dataclass
class _Feed:
    """What the demo's firehose sent: the ingest role's counts, and what it could not send
    (while the ingest role restarts, say)."""

    line: LiveLine = field(default_factory=lambda: LiveLine("firehose"))
    unsent: int = 0
    last_error: str = ""

    def failed(self, lines: int, error: str) -> None:
        self.unsent += lines
        self.last_error = error

    def render(self) -> RenderableType:
        if not self.unsent:
            return self.line.render()
        warning = Text(f"unsent {self.unsent:,} events (last: {self.last_error})", "yellow")
        return Group(self.line.render(), warning)


async def _push(client: httpx.AsyncClient, url: str, batch: list[bytes], feed: _Feed) -> None:
    """POST one NDJSON batch; count the answer, or the batch as unsent."""
    try:
        answer = await client.post(
            url, content=b"\n".join(batch), headers={"content-type": "application/x-ndjson"}
        )
        answer.raise_for_status()
    except httpx.HTTPError as error:
        feed.failed(len(batch), str(error) or type(error).__name__)
        return
    feed.line.add(msgspec.json.decode(answer.content, type=IngestSummary))


async def _feed(
    client: httpx.AsyncClient, url: str, rate: int, pages: int, feed: _Feed, stop: asyncio.Event
) -> None:
    """Push the synthetic firehose to `url` at `rate` events a second until `stop`, a
    batch every tick; at most PUSHES_IN_FLIGHT wait for an answer at once."""
    spec = FirehoseSpec(
        events=10**12,
        pages=pages,
        start_us=time.time_ns() // 1000,
        rate_per_s=rate,
        seed=int(time.time()),
    )
    lines = _with_junk(generate_firehose(spec), every=5000)
    per_tick = max(1, int(rate * PUSH_TICK_S))
    in_flight: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    sent = 0
    while not stop.is_set():
        if len(in_flight) >= PUSHES_IN_FLIGHT:
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        batch = [next(lines) for _ in range(per_tick)]
        pushing = asyncio.create_task(_push(client, url, batch, feed))
        in_flight.add(pushing)
        pushing.add_done_callback(in_flight.discard)
        sent += len(batch)
        await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
    if in_flight:
        await asyncio.wait(in_flight)


async def _show_feed(
    settings: Settings,
    gateway: str,
    pusher: str,
    spec: tuple[int, int, float | None],
    stop: asyncio.Event,
) -> IngestSummary:
    """Feed the platform through the gateway, with the key `pusher`, under a live line of
    counts until `stop` or the duration of `spec` (rate, pages, duration)."""
    rate, pages, duration = spec
    feed = _Feed()
    url = f"{gateway}/v1/ingest/jetstream"
    deadline = time.monotonic() + duration if duration else None
    timeout = httpx.Timeout(settings.ingest_timeout_s)
    auth = {"Authorization": f"Bearer {pusher}"}
    async with httpx.AsyncClient(timeout=timeout, trust_env=False, headers=auth) as client:
        feeder = asyncio.create_task(_feed(client, url, rate, pages, feed, stop))
        with Live(feed.render(), console=console, refresh_per_second=4) as live:
            while not stop.is_set() and not feeder.done():
                if deadline and time.monotonic() >= deadline:
                    stop.set()
                await asyncio.sleep(0.25)
                live.update(feed.render())
            await feeder
            live.update(feed.render())
    console.print()
    return feed.line.totals


async def _healthy(client: httpx.AsyncClient, url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return (await client.get(f"{url.rstrip('/')}/healthz")).status_code == 200
    return False


async def _still_down(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, str]:
    """The roles of `urls` whose /healthz does not answer 200 now."""
    answers = await asyncio.gather(*(_healthy(client, url) for url in urls.values()))
    return {name: url for (name, url), up in zip(urls.items(), answers, strict=True) if not up}


async def _until_healthy(
    urls: dict[str, str], stop: asyncio.Event, supervising: asyncio.Task[None]
) -> bool:
    """Wait until every role's /healthz answers 200, with a spinner naming those still
    starting; False when `stop` was set first. Fails naming the roles not up in time."""
    pending = dict(urls)
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
        with console.status("starting the roles") as status:
            while pending and not stop.is_set() and not supervising.done():
                if time.monotonic() > deadline:
                    fail(
                        f"{', '.join(pending)} did not come up within {READY_TIMEOUT_S:.0f} s"
                        " (the log lines above say why)"
                    )
                status.update(f"waiting for {', '.join(pending)} to answer /healthz")
                pending = await _still_down(client, pending)
                await asyncio.sleep(0.2)
    if supervising.done():
        await supervising  # its error, if it failed
    return not pending


def _demo_keys(settings: Settings) -> tuple[str, str]:
    """New keys of the tenant named "demo" (made the first time): an owner's, and the
    firehose feeder's, which the operator grants `ingest`; their tokens."""
    store = open_tenant_store(settings)
    try:
        tenant = next((t for t in store.tenants() if t.name == "demo"), None)
        tenant = tenant or store.create_tenant("demo")
        _, owner = store.create_key(tenant.id, "demo", "owner")
        feeder, pusher = store.create_key(tenant.id, "demo firehose", "editor")
        store.set_permissions(tenant.id, feeder.id, frozenset({"ingest"}))
        return owner, pusher
    finally:
        store.close()


def _reachable(host: str) -> str:
    """Where a client on this machine reaches a server listening on `host`."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _where_to_look(settings: Settings, base: str, token: str) -> str:
    hubbub = f".venv/bin/hubbub --data-dir {settings.data_dir}"
    auth = f'-H "Authorization: Bearer {token}"'
    operator = settings.admin_token.get_secret_value() if settings.admin_token else "<operator>"
    day = datetime.now(UTC).date()
    today, tomorrow = f"{day}T00:00:00Z", f"{day + timedelta(days=1)}T00:00:00Z"
    return (
        "[bold]Hubbub demo: a live synthetic Jetstream firehose, every role its own process[/]\n"
        f"API docs {base}/docs\n"
        f"health   {base}/healthz  (and /readyz)\n"
        f'metrics  curl -H "Authorization: Bearer {operator}" {base}/metrics  (operator token)\n'
        f"API key  {token}  (owner of tenant demo; shown this once)\n"
        f'mentions curl {auth} "{base}/v1/mentions?q=ma"\n'
        f'reports  curl {auth} "{base}/v1/reports/top/hashtags?start={today}&end={tomorrow}"\n'
        f"push     POST {base}/v1/ingest/jetstream  (fed now, by a key granted `ingest`)\n"
        f"log      {hubbub} log stats\n"
        f"refused  {hubbub} deadletter list\n"
        f"state    {settings.data_dir.resolve()} ({settings.event_log} event log)\n"
        "stop     Ctrl-C\n"
    )


def _log_counts(stats: LogStats) -> str:
    counts = ", ".join(f"{t.topic} {t.count:,}" for t in stats.topics if t.topic != DEADLETTER)
    dead = sum(t.count for t in stats.topics if t.topic == DEADLETTER)
    return f"event log: {counts}; dead letters: {dead:,}"


async def _demo(
    settings: Settings,
    rate: int,
    pages: int,
    duration: float | None,
    host: str | None,
    port: int | None,
) -> IngestSummary:
    """Every role under a supervisor, fed a firehose until Ctrl-C or `duration`; then the
    feeder stops, then the roles."""
    stop, roles_stop = asyncio.Event(), asyncio.Event()
    _stop_on_signals(stop)
    supervisor = Supervisor(platform_roles(settings, host=host, gateway_port=port))
    supervising = asyncio.create_task(
        supervisor.run(roles_stop, on_started=lambda: console.print(supervisor.table()))
    )
    totals = IngestSummary()
    try:
        gateway_port = port or settings.http_port
        urls = role_urls(settings, _reachable(host or settings.http_host), gateway_port)
        if await _until_healthy(urls, stop, supervising):
            owner, pusher = await asyncio.to_thread(_demo_keys, settings)
            console.print(_where_to_look(settings, urls["gateway"], owner), soft_wrap=True)
            spec = (rate, pages, duration)
            totals = await _show_feed(settings, urls["gateway"], pusher, spec, stop)
    finally:
        roles_stop.set()
        await supervising
    console.print(_log_counts(await with_log(settings, lambda log: log.stats())))
    return totals


def demo(
    rate: Annotated[int, typer.Option(help="Synthetic events per second.", min=1)] = 2000,
    pages: Annotated[int, typer.Option(help="Accounts in the synthetic world.", min=1)] = 50_000,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (HUBBUB_HTTP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="The gateway's port (HUBBUB_HTTP_PORT).")] = None,
) -> None:
    """Run the whole platform (`hubbub serve`) with a live synthetic firehose pushed
    through the gateway; prints where the API docs, health page and metrics are, an API
    key to try them with, and the operator's token (made for this run when
    HUBBUB_ADMIN_TOKEN is not set)."""
    settings = load_settings()
    if settings.admin_token is None:
        made = secrets.token_urlsafe(24)
        os.environ["HUBBUB_ADMIN_TOKEN"] = made  # the roles' environment: the gateway's
        settings = settings.model_copy(update={"admin_token": SecretStr(made)})
    run(_demo(settings, rate, pages, duration, host, port))
