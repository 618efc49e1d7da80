"""`hubbub mentions ...`: @mention suggestions, the shadow report and the live cutover."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import msgspec
import typer
from rich.console import Console
from rich.table import Table

from hubbub.bootstrap import open_event_log, open_mentions_backend, open_request_signer
from hubbub.cli.common import (
    State,
    append_command,
    console,
    fail,
    load_settings,
    print_json,
    run,
)
from hubbub.gateway.ports import PLATFORM
from hubbub.kernel.events import SettingChanged
from hubbub.kernel.signing import SignedAs
from hubbub.mentions.matching import Suggestion
from hubbub.mentions.memory import MemoryMentions
from hubbub.mentions.normalize import InvalidQuery
from hubbub.mentions.service import SERVING_SETTING, catch_up
from hubbub.mentions.store import warm_up
from hubbub.settings import MENTIONS_BACKENDS

app = typer.Typer(help="@mention autocomplete.", no_args_is_help=True)
out = Console()


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What was typed after @ (the @ may be kept).")],
    limit: Annotated[int, typer.Option(help="How many pages.", min=1, max=50)] = 10,
    backend: Annotated[
        str | None, typer.Option(help="memory or postgres (default: HUBBUB_MENTIONS_BACKEND).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="The data dir to answer from (as `hubbub --data-dir`).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The most followed pages matching TEXT, after catching up with the event log.

    The memory index is kept in a snapshot in the data dir with its log position: the
    next query loads it and reads only what the log gained since.
    """
    if data_dir is not None:
        State.data_dir = data_dir
    settings = load_settings()
    name = backend or settings.mentions_backend
    if name not in MENTIONS_BACKENDS:
        fail(f"unknown mentions backend {name!r}: use {', '.join(MENTIONS_BACKENDS)}")

    if name == "memory":
        with console.status("loading the index kernels (compiled on first use)…"):
            warm_up()

    async def work() -> list[Suggestion]:
        event_log = await open_event_log(settings)
        index = await open_mentions_backend(name, settings)
        try:
            if await catch_up(index, event_log) and isinstance(index, MemoryMentions):
                index.save(settings.mentions_snapshot_path)
            return await index.suggest(text, limit)
        finally:
            await index.close()
            await event_log.close()

    try:
        found = run(work())
    except InvalidQuery as error:
        fail(str(error))
    if json:
        print_json(found)
        return
    typed = text.removeprefix("@")
    table = Table("handle", "name", "followers", "source", title=f"@{typed}")
    for page in found:
        table.add_row(
            page.handle or "", page.display_name or "", f"{page.followers:,}", page.source
        )
    out.print(table if found else f"no page matches @{typed}")


@app.command()
def cutover(
    to: Annotated[str, typer.Option("--to", help="Backend to serve from: memory or postgres.")],
) -> None:
    """Switch every mentions replica to another backend, live.

    The change travels through the log's `control` topic. Each replica opens the target
    (if it does not run it yet), catches it up, then swaps: no request fails.
    """
    if to not in MENTIONS_BACKENDS:
        fail(f"unknown mentions backend {to!r}: use {', '.join(MENTIONS_BACKENDS)}")
    settings = load_settings()

    change = SettingChanged(
        id="", key=SERVING_SETTING, ts=0, source="cli", name=SERVING_SETTING, value=to
    )
    run(append_command(settings, change, f"{SERVING_SETTING}={to}"))
    out.print(f"mentions replicas will serve from [bold]{to}[/] once it has caught up")


@app.command("shadow-report")
def shadow_report(
    url: Annotated[
        str | None, typer.Option(help="A running replica (default: HUBBUB_MENTIONS_URL).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """How the shadow backend's answers agree with the serving one's, and both latencies."""
    settings = load_settings()
    base = url or settings.mentions_url
    auth = SignedAs(open_request_signer(settings), PLATFORM, "cli")
    try:
        response = httpx.get(f"{base}/v1/mentions/shadow-report", timeout=10, auth=auth)
        response.raise_for_status()
    except httpx.HTTPError as error:
        fail(f"cannot read the shadow report from {base}: {error}")
    report = response.json()
    if json:
        out.print_json(msgspec.json.encode(report).decode())
        return
    agreement = report["agreement"]
    out.print(
        f"serving [bold]{report['serving']}[/], shadow [bold]{report['shadow'] or 'none'}[/]: "
        f"{report['compared']:,} queries compared, "
        + (f"{agreement:.2%} identical top-k" if agreement is not None else "none yet")
        + f"; {report['skipped']:,} skipped, {report['errors']:,} errors"
    )
    table = Table("backend", "queries", "p50 ms", "p90 ms", "p99 ms", "log position")
    for name, latency in report["latency"].items():
        table.add_row(
            name,
            f"{latency.get('count', 0):,}",
            *(str(latency.get(q, "")) for q in ("p50_ms", "p90_ms", "p99_ms")),
            f"{report['positions'].get(name, 0):,}",
        )
    out.print(table)
    for difference in report["recent_differences"][:5]:
        out.print(f"  @{difference['query']}: {difference['serving']} vs {difference['shadow']}")
