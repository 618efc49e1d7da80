"""`hubbub routes set|list|remove`: the gateway's strangler fig, one route at a time.

A change goes through the log, so every gateway applies it within a poll interval
(`HUBBUB_CONTROL_POLL_S`), without a restart, and no request fails on the way.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from hubbub.cli.common import fail, load_settings, print_json, run, with_log
from hubbub.eventlog.ports import EventLog
from hubbub.gateway.routing import Route, RouteTable, remove_route, set_route
from hubbub.kernel.clock import SystemClock

app = typer.Typer(help="Gateway routes: new services, the legacy app, or a share of tenants.")
out = Console()
PrefixArgument = Annotated[str, typer.Argument(help="A path prefix, e.g. /v1/reports.")]


async def _table(event_log: EventLog) -> RouteTable:
    table = RouteTable(event_log)
    await table.catch_up()
    return table


@app.command("set")
def set_command(
    prefix: PrefixArgument,
    target: Annotated[
        Literal["new", "legacy", "percent"],
        typer.Argument(help="new (the service), legacy, or percent (sticky, by tenant)."),
    ],
    percent: Annotated[
        float, typer.Option(help="With `percent`: the share of tenants on new.", min=0, max=100)
    ] = 0.0,
    shadow: Annotated[
        bool, typer.Option(help="Also send reads to the other side and log differences.")
    ] = False,
) -> None:
    """Send a path prefix to the new service, to the legacy app, or to new for a share
    of tenants."""
    settings = load_settings()

    async def change(event_log: EventLog) -> None:
        await set_route(
            event_log, prefix, target, percent=percent, shadow=shadow, clock=SystemClock()
        )

    try:
        run(with_log(settings, change))
    except ValueError as error:
        fail(str(error))
    share = f" ({percent:g} % of tenants on new)" if target == "percent" else ""
    out.print(f"{prefix} → {target}{share}{', shadowed' if shadow else ''}")


@app.command("list")
def list_command(
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every route: the services' own prefixes, and the strangler settings over them."""
    routes = run(with_log(load_settings(), _table)).routes()
    if json:
        print_json([_row(r) for r in routes])
        return
    table = Table("prefix", "service", "target", "percent", "shadow")
    for route in routes:
        row = _row(route)
        table.add_row(*(str(row[c]) for c in ("prefix", "service", "target", "percent", "shadow")))
    out.print(table)


@app.command("remove")
def remove_command(prefix: PrefixArgument) -> None:
    """Drop the strangler setting on a prefix: it goes back to its service."""
    settings = load_settings()
    table = run(with_log(settings, _table))
    if prefix not in {r.prefix for r in table.strangler()}:
        fail(f"no strangler route {prefix!r}; `hubbub routes list` shows them")

    async def change(event_log: EventLog) -> None:
        await remove_route(event_log, prefix, clock=SystemClock())

    run(with_log(settings, change))
    out.print(f"{prefix} goes back to its service")


def _row(route: Route) -> dict[str, object]:
    return {
        "prefix": route.prefix, "service": route.service, "target": route.target,
        "percent": route.percent, "shadow": route.shadow,
    }  # fmt: skip
