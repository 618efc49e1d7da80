"""`hubbub mentions ...`: @mention suggestions from the pages in the event log."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hubbub.bootstrap import open_event_log
from hubbub.cli.common import fail, load_settings, print_json, run
from hubbub.mentions.normalize import InvalidQuery
from hubbub.mentions.service import Suggestion
from hubbub.mentions.worker import MentionsView, catch_up

app = typer.Typer(help="@mention autocomplete.", no_args_is_help=True)
out = Console()


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What was typed after @ (the @ may be kept).")],
    limit: Annotated[int, typer.Option(help="How many pages.", min=1, max=50)] = 10,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The most followed pages matching TEXT, after catching up with the event log.

    The view is kept in a snapshot in the data dir with its log position: the next
    query loads it and reads only what the log gained since.
    """
    settings = load_settings()

    async def work() -> list[Suggestion]:
        event_log = await open_event_log(settings)
        try:
            view = MentionsView.load(settings.mentions_snapshot_path)
            if await catch_up(view, event_log):
                view.save(settings.mentions_snapshot_path)
            return view.suggest(text, limit)
        finally:
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
