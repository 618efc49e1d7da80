"""`hubbub serve`: run the platform's roles.

`hubbub serve` runs every role (ingest, mentions, analytics, gateway) as a process of
its own under one supervisor (`hubbub.supervisor`), which restarts a role that dies;
`hubbub serve --role NAME` runs one role in this process, `--replicas N` several
processes of it on one port (`hubbub.processes`). `hubbub demo` (`hubbub.cli.demo`)
does what `hubbub serve` does and feeds it a live synthetic firehose.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Annotated, Any

import typer
import uvicorn

from hubbub.bootstrap import Platform, build_platform
from hubbub.cli.common import console, fail, load_settings, run
from hubbub.kernel import allocator
from hubbub.kernel.telemetry import DATA_DIR, configure_logging
from hubbub.kernel.tracing import configure_tracing
from hubbub.processes import (
    close_after_signals,
    run_replicas,
    shared_socket,
    stop_on_signals,
    stop_with_supervisor,
)
from hubbub.settings import Settings
from hubbub.supervisor import PLATFORM_ROLES, Supervisor, platform_roles, role_urls, url_port
from hubbub.web.app import ROLES, create_app

SERVE_ROLES = (*ROLES, "gateway", "web")


def _server(platform: Platform, host: str, port: int, role: str = "all") -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(platform, role), host=host, port=port, log_level="warning", lifespan="off"
    )
    return uvicorn.Server(config)


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
    if role in ("all", "publishing"):
        await platform.publishing()  # the publisher starts claiming due jobs now
    if role in ("all", "notifications"):
        await platform.notifications()  # the worker starts folding notices now
    if role in ("all", "listening"):
        await platform.listening()  # the matcher starts matching posts now


async def _serve(
    settings: Settings, role: str, host: str, port: int, *, replica: int | None = None
) -> None:
    """Serve `role`; as replica N of several (sharing the port), only replica 0 writes
    the mentions snapshot that all of them start from."""
    configure_tracing(role, settings.otlp_endpoint)
    allocator.pin_mmap_threshold(settings.allocator_mmap_threshold_kib)
    DATA_DIR.watch(settings.data_dir)
    platform = await build_platform(settings)
    platform.keeps_snapshots = not replica
    trimming = (
        asyncio.create_task(allocator.trim_every(settings.allocator_trim_interval_s))
        if settings.allocator_trim_interval_s
        else None
    )
    try:
        await _warm_up(platform, role)
        server = _server(platform, host, port, role)
        close_after_signals(server)
        stop_with_supervisor(server, settings.supervisor_pid)
        if replica is None:
            await server.serve()
        else:
            await server.serve(sockets=[shared_socket(host, port)])
    finally:
        if trimming:
            trimming.cancel()
        await platform.close()


def _replica_main(settings: dict[str, Any], role: str, host: str, port: int, n: int) -> None:
    """A replica process: the same role on the same port, with a log position of its own."""
    loaded = Settings(**settings)
    configure_logging(loaded.log_level, loaded.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        run(_serve(loaded, role, host, port, replica=n))


def _run_replicas(settings: Settings, role: str, host: str, port: int, count: int) -> None:
    dump = settings.model_dump()
    dump["supervisor_pid"] = os.getpid()  # replicas stop if this process is gone
    failed = run_replicas(
        _replica_main,
        (dump, role, host, port),
        role,
        count,
        on_started=lambda: console.print(
            f"{count} {role} replicas on {host}:{port}; Ctrl-C stops them"
        ),
    )
    if failed:
        fail(f"replicas exited with an error: {', '.join(failed)}")


async def _supervise(settings: Settings, host: str | None, port: int | None, replicas: int) -> None:
    """Every platform role in a process of its own, kept up until a signal stops them."""
    roles = platform_roles(settings, host=host, gateway_port=port, mentions_replicas=replicas)
    supervisor = Supervisor(roles)
    stop = asyncio.Event()
    stop_on_signals(stop)
    await supervisor.run(stop, on_started=lambda: console.print(supervisor.table()))


def _role_port(settings: Settings, role: str) -> int:
    """A role listens on the port of the URL the gateway reaches it at."""
    if role in PLATFORM_ROLES and role != "gateway":
        return url_port(role_urls(settings, settings.http_host, settings.http_port)[role])
    return settings.http_port


async def _gateway(settings: Settings, host: str, port: int) -> None:
    from hubbub.bootstrap import build_gateway  # its dependencies load only where it runs
    from hubbub.gateway.app import gateway_server
    from hubbub.kernel.clock import SystemClock

    configure_tracing("gateway", settings.otlp_endpoint)
    DATA_DIR.watch(settings.data_dir)
    gateway = await build_gateway(settings, SystemClock())
    try:
        server = gateway_server(gateway, host, port)
        close_after_signals(server)
        stop_with_supervisor(server, settings.supervisor_pid)
        await server.serve()
    finally:
        await gateway.close()  # usage records still buffered reach the log


async def _web(settings: Settings, host: str, port: int) -> None:
    from hubbub.bootstrap import build_web

    app, close = build_web(settings)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off",
        timeout_graceful_shutdown=5,  # live streams end, they are not waited for
    )  # fmt: skip
    server = uvicorn.Server(config)
    close_after_signals(server)
    stop_with_supervisor(server, settings.supervisor_pid)
    try:
        await server.serve()
    finally:
        await close()


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
    rollups worker and the reports API; one process, since it owns the DuckDB file),
    `notifications` (people's inboxes, live streams and emails, on HUBBUB_NOTIFICATIONS_URL),
    `listening` (saved searches matched against the firehose, live streams and the inbox,
    on HUBBUB_LISTENING_URL),
    `web` (the web app's pages, behind the gateway at `/`, on HUBBUB_WEB_URL's port).
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
    elif role == "web":
        run(_web(settings, host, port))
    elif replicas > 1:
        _run_replicas(settings, role, host, port, replicas)
    else:
        run(_serve(settings, role, host, port))
