"""`hubbub flags set|list|remove|check`: feature flags and their progressive rollout.

Without `--tenant` a command acts on the platform's flags, rolled out across tenants;
with it, on that tenant's own flags. `set` changes only what it is given: the other
fields keep their current values (a new flag starts enabled at 0 %), so `--kill` stops
a rollout and `--enable` resumes it where it was.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hubbub.cli.common import fail, load_settings, print_json, run, with_log
from hubbub.eventlog.ports import EventLog
from hubbub.gateway.flags import Flag, FlagBook, remove_flag, set_flag
from hubbub.gateway.ports import PLATFORM
from hubbub.kernel.clock import SystemClock
from hubbub.settings import Settings

T = TypeVar("T")
app = typer.Typer(
    help="Feature flags: kill switches and progressive rollouts.", no_args_is_help=True
)
out = Console()
NameArgument = Annotated[str, typer.Argument(help="The flag's name, e.g. new-composer.")]
TenantOption = Annotated[
    str | None, typer.Option(help="A tenant's own flags (default: the platform's).")
]


async def _book(event_log: EventLog) -> FlagBook:
    book = FlagBook(event_log)
    await book.catch_up()
    return book


def _current(settings: Settings, scope: str, name: str) -> Flag | None:
    return run(with_log(settings, _book)).lookup(scope, name)


@app.command("set")
def set_command(
    name: NameArgument,
    percent: Annotated[
        float | None, typer.Option(help="Share rolled out to, 0 to 100 (of tenants or users).")
    ] = None,
    allow: Annotated[
        list[str] | None, typer.Option(help="Always on for this id (repeat for more).")
    ] = None,
    deny: Annotated[
        list[str] | None, typer.Option(help="Always off for this id (repeat for more).")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--kill", help="--kill turns it off for everyone.")
    ] = None,
    tenant: TenantOption = None,
    description: Annotated[str | None, typer.Option(help="What the flag is for.")] = None,
) -> None:
    """Set a flag; options not given keep their current values."""
    settings = load_settings()
    scope = tenant or PLATFORM
    was = _current(settings, scope, name)
    flag = _set(
        settings, scope, name,
        enabled=_given(enabled, was.enabled if was else True),
        percent=_given(percent, was.percent if was else 0.0),
        allow=_given(allow, sorted(was.allow) if was else []),
        deny=_given(deny, sorted(was.deny) if was else []),
        description=_given(description, was.description if was else ""),
    )  # fmt: skip
    out.print(_summary(flag))


def _given(value: T | None, current: T) -> T:
    return current if value is None else value


def _set(
    settings: Settings, scope: str, name: str, *, enabled: bool, percent: float,
    allow: list[str], deny: list[str], description: str,
) -> Flag:  # fmt: skip
    async def write(event_log: EventLog) -> Flag:
        change = await set_flag(
            event_log, scope, name, enabled=enabled, percent=percent, allow=allow,
            deny=deny, description=description, clock=SystemClock(), source="cli",
        )  # fmt: skip
        return Flag.from_change(change)

    try:
        return run(with_log(settings, write))
    except ValueError as error:
        fail(str(error))


@app.command("list")
def list_flags(
    tenant: TenantOption = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The flags of the platform, or of one tenant."""
    flags = run(with_log(load_settings(), _book)).flags(tenant or PLATFORM)
    if json:
        print_json([_as_json(f) for f in flags])
        return
    table = Table("flag", "state", "percent", "allow", "deny", "description")
    for f in flags:
        table.add_row(*_row(f))
    out.print(table if flags else "no flags")


def _row(flag: Flag) -> list[str]:
    """A flag as a table row; ids and description escaped, as they may hold `[`."""
    state = "on" if flag.enabled else "killed"
    said = [", ".join(sorted(flag.allow)), ", ".join(sorted(flag.deny)), flag.description]
    return [flag.name, state, f"{flag.percent:g}%", *map(escape, said)]


@app.command()
def remove(name: NameArgument, tenant: TenantOption = None) -> None:
    """Remove a flag: code asking for it gets its own default again."""
    settings = load_settings()
    scope = tenant or PLATFORM
    if _current(settings, scope, name) is None:
        fail(f"no flag {name!r} in {_scope_name(scope)}")
    run(
        with_log(
            settings,
            lambda event_log: remove_flag(
                event_log, scope, name, clock=SystemClock(), source="cli"
            ),
        )
    )
    out.print(f"flag {name} removed from {_scope_name(scope)}")


@app.command()
def check(
    name: NameArgument,
    tenant: Annotated[str, typer.Option(help="The tenant asking.")],
    subject: Annotated[
        str | None, typer.Option(help="A user or key id of the tenant (its own flags).")
    ] = None,
) -> None:
    """What a flag answers for a tenant (and subject), and why."""
    book = run(with_log(load_settings(), _book))
    found, answer = book.governing(name, tenant), book.evaluate(name, tenant, subject)
    if found is None or answer is None:
        fail(f"no flag {name!r} for tenant {tenant!r}: callers get their default", code=1)
    value, reason = answer
    out.print(f"{name}: {'on' if value else 'off'} ({reason}, {_scope_name(found.scope)} flag)")


def _scope_name(scope: str) -> str:
    return "platform" if scope == PLATFORM else f"tenant {scope}"


def _summary(flag: Flag) -> str:
    state = f"{flag.percent:g}%" if flag.enabled else "killed"
    return f"flag {flag.name} set in {_scope_name(flag.scope)}: {state}"


def _as_json(flag: Flag) -> dict[str, object]:
    return {
        "name": flag.name, "scope": flag.scope, "enabled": flag.enabled,
        "percent": flag.percent, "allow": sorted(flag.allow), "deny": sorted(flag.deny),
        "description": flag.description,
    }  # fmt: skip
