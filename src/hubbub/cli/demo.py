"""`hubbub demo`: the whole platform, fed a live synthetic firehose over HTTP.

`hubbub demo` does what `hubbub serve` does (every role under one supervisor), makes
keys of a tenant named "demo", prints where to look, and pushes a synthetic Jetstream
firehose through the gateway, with some bad input, until Ctrl-C or `--duration`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import msgspec
import typer
from pydantic import SecretStr
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from hubbub.bootstrap import open_tenant_store
from hubbub.cli.common import console, fail, load_settings, run, with_log
from hubbub.cli.ingest import LiveLine
from hubbub.eventlog.ports import LogStats
from hubbub.gateway.sessions import hash_password
from hubbub.ingest.service import IngestSummary
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import DEADLETTER
from hubbub.processes import stop_on_signals
from hubbub.settings import Settings
from hubbub.supervisor import Supervisor, platform_roles, role_urls
from hubbub.synthetic.firehose import FirehoseSpec, generate_firehose

READY_TIMEOUT_S = 120.0  # the mentions role compiles its kernels on a first start
PUSH_TICK_S = 0.1
PUSHES_IN_FLIGHT = 8


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


DEMO_USER = "demo@example.com"


def _demo_keys(settings: Settings) -> tuple[str, str, str]:
    """New keys of the tenant named "demo" (made the first time): an owner's, and the
    firehose feeder's, which the operator grants `ingest`; their tokens; and a new
    password for the demo user (an owner of the tenant, who signs in to the web app)."""
    store = open_tenant_store(settings, SystemClock())
    try:
        tenant = next((t for t in store.tenants() if t.name == "demo"), None)
        tenant = tenant or store.create_tenant("demo")
        _, owner = store.create_key(tenant.id, "demo", "owner")
        feeder, pusher = store.create_key(tenant.id, "demo firehose", "editor")
        store.set_permissions(tenant.id, feeder.id, frozenset({"ingest"}))
        user = next((u for u in store.users(tenant.id) if u.email == DEMO_USER), None)
        user = user or store.add_user(tenant.id, DEMO_USER, "owner")
        password = secrets.token_urlsafe(12)
        store.set_password(tenant.id, user.id, hash_password(password))
        return owner, pusher, password
    finally:
        store.close()


DEMO_STREAMS = (
    ("Coffee", "#coffee OR #café OR #Kaffee OR #قهوة OR coffee"),
    ("Football", '(#futebol OR #fútbol OR #Fußball OR #كرة_القدم OR football) NOT "fantasy"'),
    ("Japan, in Japanese", "lang:ja (#日本 OR 猫 OR 花火)"),
)


async def _demo_streams(base: str, token: str) -> None:
    """The demo workspace's listening streams (the first time): columns that fill live."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
        kept = await client.get("/v1/streams")
        if kept.status_code != 200 or kept.json()["streams"]:
            return
        for name, query in DEMO_STREAMS:
            await client.post("/v1/streams", json={"name": name, "query": query})


def _reachable(host: str) -> str:
    """Where a client on this machine reaches a server listening on `host`."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _where_to_look(settings: Settings, base: str, token: str, password: str) -> str:
    hubbub = f".venv/bin/hubbub --data-dir {settings.data_dir}"
    auth = f'-H "Authorization: Bearer {token}"'
    operator = settings.admin_token.get_secret_value() if settings.admin_token else "<operator>"
    day = datetime.now(UTC).date()
    today, tomorrow = f"{day}T00:00:00Z", f"{day + timedelta(days=1)}T00:00:00Z"
    return (
        "[bold]Hubbub demo: a live synthetic Jetstream firehose, every role its own process[/]\n"
        f"[bold]web app  {base}/  sign in as {DEMO_USER}, password {password}[/]\n"
        f"operator {base}/signin/operator  with the operator token {operator}\n"
        f"API docs {base}/docs\n"
        f"health   {base}/healthz  (and /readyz)\n"
        f'metrics  curl -H "Authorization: Bearer {operator}" {base}/metrics  (operator token)\n'
        f"API key  {token}  (owner of tenant demo; shown this once)\n"
        f'mentions curl {auth} "{base}/v1/mentions?q=ma"\n'
        f'reports  curl {auth} "{base}/v1/reports/top/hashtags?start={today}&end={tomorrow}"\n'
        f"push     POST {base}/v1/ingest/jetstream  (fed now, by a key granted `ingest`)\n"
        f"listen   {base}/listening  (the demo workspace's streams, matched live)\n"
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
    verbose: bool = False,
) -> IngestSummary:
    """Every role under a supervisor, fed a firehose until Ctrl-C or `duration`; then the
    feeder stops, then the roles. The roles' logs go to `DATA_DIR/logs/demo.log`, unless
    `verbose`, so the demo's own lines stay readable."""
    stop, roles_stop = asyncio.Event(), asyncio.Event()
    stop_on_signals(stop)
    log_file = None if verbose else settings.data_dir / "logs" / "demo.log"
    supervisor = Supervisor(
        platform_roles(settings, host=host, gateway_port=port), log_file=log_file
    )
    if log_file is not None:
        console.print(f"the roles' logs go to {log_file} (--verbose shows them here)")
    supervising = asyncio.create_task(
        supervisor.run(roles_stop, on_started=lambda: console.print(supervisor.table()))
    )
    totals = IngestSummary()
    try:
        gateway_port = port or settings.http_port
        urls = role_urls(settings, _reachable(host or settings.http_host), gateway_port)
        if await _until_healthy(urls, stop, supervising):
            owner, pusher, password = await asyncio.to_thread(_demo_keys, settings)
            await _demo_streams(urls["gateway"], owner)
            look = _where_to_look(settings, urls["gateway"], owner, password)
            console.print(look, soft_wrap=True)
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
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show the roles' logs here, not in a file.")
    ] = False,
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
    run(_demo(settings, rate, pages, duration, host, port, verbose))
