"""`hubbub watch add|list|change|remove`: what a tenant wants to hear about when it spikes."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from hubbub.analytics.alerts import watch_target
from hubbub.analytics.terms import InvalidTerm
from hubbub.analytics.views import WatchesView, loaded
from hubbub.cli.common import append_command, fail, load_settings, print_json, run, with_log
from hubbub.kernel.commands import short_id
from hubbub.kernel.events import WatchChanged
from hubbub.settings import Settings

app = typer.Typer(
    help="Watches: spike alerts on hashtags, pages, terms and listening searches.",
    no_args_is_help=True,
)
out = Console()
Sensitivity = Literal["high", "medium", "low"]


def _save(settings: Settings, change: WatchChanged) -> None:
    run(append_command(settings, change, f"{change.watch}/{change.active}"))


def _watches(settings: Settings) -> WatchesView:
    """The active watches, folded from the log's `control` topic."""
    return run(with_log(settings, lambda event_log: loaded(WatchesView(event_log))))


@app.command()
def add(
    hashtag: Annotated[str | None, typer.Option(help="A hashtag, with or without #.")] = None,
    page: Annotated[str | None, typer.Option(help="A page id (did:plc:…, an account URL).")] = None,
    term: Annotated[str | None, typer.Option(help="Words or a phrase in the text of posts.")] = (
        None
    ),
    search: Annotated[
        str | None, typer.Option(help="A listening search's id: the volume of its matches.")
    ] = None,
    sensitivity: Annotated[
        Sensitivity | None,
        typer.Option(help="high alerts on smaller rises (default: HUBBUB_SPIKE_SENSITIVITY)."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: HUBBUB_TENANT).")] = None,
) -> None:
    """Watch a hashtag, a page, a term or a listening search; prints the watch id."""
    given = {"hashtag": hashtag, "page": page, "term": term, "search": search}
    chosen = [(kind, target) for kind, target in given.items() if target is not None]
    if len(chosen) != 1:
        fail("give one of --hashtag, --page, --term or --search")
    settings = load_settings()
    kind, target = chosen[0]
    try:
        target = watch_target(kind, target)
    except InvalidTerm as error:
        fail(str(error))
    change = WatchChanged(
        id="", key=tenant or settings.tenant, ts=0, source="cli", tenant=tenant or settings.tenant,
        watch=short_id(), kind=kind, target=target,  # type: ignore[arg-type]
        sensitivity=sensitivity or settings.spike_sensitivity,
    )  # fmt: skip
    _save(settings, change)
    out.print(change.watch)


@app.command("list")
def list_watches(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's watches.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The active watches."""
    settings = load_settings()

    view = _watches(settings)
    watches = view.all() if tenant is None else view.of_tenant(tenant)
    if json:
        print_json([{"watch": w.watch, "tenant": w.tenant, "kind": w.kind, "target": w.target,
                     "sensitivity": w.sensitivity} for w in watches])  # fmt: skip
        return
    table = Table("watch", "tenant", "kind", "target", "sensitivity")
    for w in watches:
        table.add_row(w.watch, w.tenant, w.kind, w.target, w.sensitivity)
    out.print(table if watches else "no watches")


@app.command()
def change(
    watch: Annotated[str, typer.Argument(help="The watch id `add` printed.")],
    sensitivity: Annotated[
        Sensitivity, typer.Option(help="high alerts on smaller rises, low on larger ones.")
    ],
) -> None:
    """Change a watch's sensitivity; the next check uses it."""
    settings = load_settings()

    found = _watches(settings).get(watch)
    if found is None:
        fail(f"no active watch {watch!r}")
    _save(settings, msgspec.structs.replace(found, sensitivity=sensitivity))
    out.print(f"watch {watch} is {sensitivity} sensitivity now")


@app.command()
def remove(watch: Annotated[str, typer.Argument(help="The watch id `add` printed.")]) -> None:
    """Stop a watch."""
    settings = load_settings()

    found = _watches(settings).get(watch)
    if found is None:
        fail(f"no active watch {watch!r}")
    _save(settings, msgspec.structs.replace(found, active=False))
    out.print(f"watch {watch} removed")
