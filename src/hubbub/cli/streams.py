"""`hubbub streams add|list|show|remove|test|backfill|matches`: a tenant's saved searches
(listening streams), tried against the last hour of the log, re-run over the posts the
log keeps, and their stored matches.

They change what listening keeps and announce it on the log, as the API does; the
listening role (`hubbub serve`) matches the firehose against the searches from the next
post, with no restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hubbub.bootstrap import open_listening
from hubbub.cli.common import console, fail, load_settings, print_json, run, with_log
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import SystemClock
from hubbub.listening.api import match_view, stream_view
from hubbub.listening.ports import MatchFilter, NotFound, Refused
from hubbub.listening.query import QueryError
from hubbub.listening.service import Listening

app = typer.Typer(
    help="Listening: saved searches matched against the firehose.", no_args_is_help=True
)
TenantOption = Annotated[str | None, typer.Option(help="Tenant (default: HUBBUB_TENANT).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
T = TypeVar("T")


def _with_listening(work: Callable[[Listening], Awaitable[T]]) -> T:
    """Run `work` on listening as the settings describe it; refusals exit with why."""
    settings = load_settings()

    async def main(event_log: EventLog) -> T:
        listening = open_listening(settings, event_log, SystemClock())
        try:
            return await work(listening)
        finally:
            listening.store.close()
            await listening.pages.close()

    try:
        return run(with_log(settings, main))
    except QueryError as error:
        fail(f"the query does not parse: {error}")
    except (NotFound, Refused) as error:
        fail(str(error))


def _tenant(tenant: str | None) -> str:
    return tenant or load_settings().tenant


@app.command("add")
def add(
    query: Annotated[str, typer.Argument(help="The search, e.g. '(nike OR adidas) NOT \"fake\"'.")],
    name: Annotated[str, typer.Option(help="What the stream is called.")] = "",
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Save a search: matched against every post from the next one on."""
    saved = _with_listening(lambda s: s.save(_tenant(tenant), "cli", name, query))
    if json:
        print_json(stream_view(saved))
        return
    console.print(f"stream {saved.id} saved: {saved.name}")
    if saved.costly:
        console.print("[yellow]it has no required term, so every post is checked against it[/]")


@app.command("list")
def list_streams(tenant: TenantOption = None, json: JsonOption = False) -> None:
    """The tenant's streams."""
    found = _with_listening(lambda s: s.streams(_tenant(tenant)))
    if json:
        print_json({"streams": [stream_view(s) for s in found]})
        return
    table = Table("id", "name", "query", "terms", "costly")
    for search in found:
        table.add_row(search.id, search.name, search.query, str(search.terms),
                      "yes" if search.costly else "")  # fmt: skip
    console.print(table)


@app.command("remove")
def remove(
    stream: Annotated[str, typer.Argument(help="The stream's id.")], tenant: TenantOption = None
) -> None:
    """Stop matching a stream and drop its stored matches."""
    _with_listening(lambda s: s.remove(_tenant(tenant), "cli", stream))
    console.print(f"stream {stream} removed")


@app.command("test")
def try_query(
    query: Annotated[str, typer.Argument(help="The search to try.")],
    hours: Annotated[float, typer.Option(help="How far back to look.")] = 1.0,
    limit: Annotated[int, typer.Option(help="The most matches shown.")] = 50,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """What a query would have matched in the last hour of the log, newest first."""
    tried = _with_listening(lambda s: s.test(_tenant(tenant), query, hours, limit))
    if json:
        print_json({"matches": [{"uri": m.post, "text": m.text, "author": m.author}
                                for m in tried.matches], "scanned": tried.scanned})  # fmt: skip
        return
    console.print(f"{len(tried.matches)} matches among {tried.scanned:,} posts")
    for match in tried.matches:
        console.print(f"[bold]{escape(match.author)}[/]  {escape(match.post)}", highlight=False)
        console.print(match.text, markup=False, highlight=False)


@app.command("backfill")
def backfill(
    stream: Annotated[str, typer.Argument(help="The stream's id.")], tenant: TenantOption = None
) -> None:
    """Re-run a stream over the posts the log keeps, up to where live matching took it
    over (resuming where an earlier backfill stopped)."""

    async def work(listening: Listening) -> int:
        with Progress(
            TextColumn("backfilling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("backfill", total=None)
            return await listening.backfill(
                _tenant(tenant),
                stream,
                lambda done, total: bar.update(task, completed=done, total=total),
            )

    appended = _with_listening(work)
    console.print(f"{appended:,} matches added to stream {stream}")


@app.command("matches")
def matches(
    stream: Annotated[str, typer.Argument(help="The stream's id.")],
    q: Annotated[str, typer.Option("--text", help="Words in the text.")] = "",
    lang: Annotated[str, typer.Option(help="A language tag.")] = "",
    limit: Annotated[int, typer.Option(help="The most shown.")] = 50,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """A stream's stored matches, newest first."""
    chosen = MatchFilter(text=q, lang=lang, limit=limit)
    page = _with_listening(lambda s: s.matches(_tenant(tenant), stream, chosen))
    if json:
        print_json({"matches": [match_view(m) for m in page.matches]})
        return
    for match in page.matches:
        console.print(f"[bold]{escape(match.author)}[/]  {escape(match.post)}", highlight=False)
        console.print(match.text, markup=False, highlight=False)
