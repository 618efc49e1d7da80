"""`hubbub watch add|list|remove`: what a tenant wants to hear about when it spikes."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from hubbub.analytics.alerts import read_watches
from hubbub.bootstrap import open_event_log
from hubbub.cli.common import fail, load_settings, print_json, run
from hubbub.kernel.events import WatchChanged
from hubbub.kernel.ids import event_id
from hubbub.settings import Settings

app = typer.Typer(help="Watches: spike alerts on hashtags and pages.", no_args_is_help=True)
out = Console()
Sensitivity = Literal["high", "medium", "low"]


async def _change(settings: Settings, change: WatchChanged) -> None:
    event_log = await open_event_log(settings)
    try:
        await event_log.append([change])
    finally:
        await event_log.close()


def _stamped(change: WatchChanged) -> WatchChanged:
    """The change with an id and a time of its own (each change is a new event)."""
    now = time.time_ns() // 1000
    ident = event_id(f"{now:016d}", f"{change.watch}/{change.active}")
    return msgspec.structs.replace(change, id=ident, ts=now, key=change.tenant, source="cli")


@app.command()
def add(
    hashtag: Annotated[str | None, typer.Option(help="A hashtag, with or without #.")] = None,
    page: Annotated[str | None, typer.Option(help="A page id (did:plc:…, an account URL).")] = None,
    sensitivity: Annotated[Sensitivity, typer.Option(help="high alerts on smaller rises.")] = (
        "medium"
    ),
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: HUBBUB_TENANT).")] = None,
) -> None:
    """Watch a hashtag or a page; prints the watch id."""
    if (hashtag is None) == (page is None):
        fail("give one of --hashtag or --page")
    settings = load_settings()
    watch = uuid.uuid4().hex[:12]
    change = WatchChanged(
        id="", key="", ts=0, source="cli", tenant=tenant or settings.tenant, watch=watch,
        kind="hashtag" if hashtag else "page",
        target=hashtag.lstrip("#").lower() if hashtag else page or "", sensitivity=sensitivity,
    )  # fmt: skip
    run(_change(settings, _stamped(change)))
    out.print(watch)


@app.command("list")
def list_watches(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's watches.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The active watches."""
    settings = load_settings()

    async def work() -> list[WatchChanged]:
        event_log = await open_event_log(settings)
        try:
            return list((await read_watches(event_log)).values())
        finally:
            await event_log.close()

    watches = [w for w in run(work()) if tenant is None or w.tenant == tenant]
    if json:
        print_json([{"watch": w.watch, "tenant": w.tenant, "kind": w.kind, "target": w.target,
                     "sensitivity": w.sensitivity} for w in watches])  # fmt: skip
        return
    table = Table("watch", "tenant", "kind", "target", "sensitivity")
    for w in watches:
        table.add_row(w.watch, w.tenant, w.kind, w.target, w.sensitivity)
    out.print(table if watches else "no watches")


@app.command()
def remove(watch: Annotated[str, typer.Argument(help="The watch id `add` printed.")]) -> None:
    """Stop a watch."""
    settings = load_settings()

    async def work() -> WatchChanged | None:
        event_log = await open_event_log(settings)
        try:
            return (await read_watches(event_log)).get(watch)
        finally:
            await event_log.close()

    found = run(work())
    if found is None:
        fail(f"no active watch {watch!r}")
    run(_change(settings, _stamped(msgspec.structs.replace(found, active=False))))
    out.print(f"watch {watch} removed")
