"""`hubbub watch add|list|remove`: what a tenant wants to hear about when it spikes."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from hubbub.analytics.alerts import read_watches
from hubbub.cli.common import append_command, fail, load_settings, print_json, run, with_log
from hubbub.kernel.events import WatchChanged
from hubbub.settings import Settings

app = typer.Typer(help="Watches: spike alerts on hashtags and pages.", no_args_is_help=True)
out = Console()
Sensitivity = Literal["high", "medium", "low"]


def _save(settings: Settings, change: WatchChanged) -> None:
    run(append_command(settings, change, f"{change.watch}/{change.active}"))


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
        id="", key=tenant or settings.tenant, ts=0, source="cli", tenant=tenant or settings.tenant,
        watch=watch,
        kind="hashtag" if hashtag else "page",
        target=hashtag.lstrip("#").lower() if hashtag else page or "", sensitivity=sensitivity,
    )  # fmt: skip
    _save(settings, change)
    out.print(watch)


@app.command("list")
def list_watches(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's watches.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The active watches."""
    settings = load_settings()

    watches = [
        w
        for w in run(with_log(settings, read_watches)).values()
        if tenant is None or w.tenant == tenant
    ]
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

    found = run(with_log(settings, read_watches)).get(watch)
    if found is None:
        fail(f"no active watch {watch!r}")
    _save(settings, msgspec.structs.replace(found, active=False))
    out.print(f"watch {watch} removed")
