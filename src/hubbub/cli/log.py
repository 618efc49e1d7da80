"""`hubbub log ...` and `hubbub deadletter ...`: look inside the event log."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hubbub.bootstrap import open_event_log
from hubbub.cli.common import fail, load_settings, print_json, run
from hubbub.eventlog.ports import LogStats, Record
from hubbub.kernel.events import DEADLETTER, InputRejected

log_app = typer.Typer(help="Inspect the event log.", no_args_is_help=True)
deadletter_app = typer.Typer(
    help="Read the dead-letter topic (input that was refused).", no_args_is_help=True
)
out = Console()


@log_app.command()
def stats(json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Per-topic counts and positions, and where every consumer group stands."""
    settings = load_settings()

    async def work() -> LogStats:
        event_log = await open_event_log(settings)
        try:
            return await event_log.stats()
        finally:
            await event_log.close()

    result = run(work())
    if json:
        print_json(result)
        return
    topics = Table("topic", "events", "last position", title=f"event log ({result.backend})")
    for topic in result.topics:
        topics.add_row(topic.topic, f"{topic.count:,}", f"{topic.last_position:,}")
    out.print(topics)
    if result.groups:
        groups = Table("consumer group", "topic", "position", "lag")
        for group in result.groups:
            groups.add_row(group.group, group.topic, f"{group.position:,}", f"{group.lag:,}")
        out.print(groups)


async def _read_deadletters(position: int, limit: int) -> list[Record]:
    event_log = await open_event_log(load_settings())
    try:
        return await event_log.read(DEADLETTER, position, limit)
    finally:
        await event_log.close()


def _preview(raw: bytes, width: int = 60) -> str:
    text = raw.decode("utf-8", errors="backslashreplace")
    return text if len(text) <= width else text[: width - 1] + "…"


@deadletter_app.command("list")
def list_(
    start: Annotated[int, typer.Option(help="First position to show.", min=1)] = 1,
    limit: Annotated[int, typer.Option(help="How many to show.", min=1)] = 20,
    json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Rejected input: position, source, reason and the start of the raw bytes."""
    records = run(_read_deadletters(start, limit))
    if json:
        for record in records:
            print_json({"position": record.position, **_as_dict(record)})
        return
    table = Table("position", "source", "reason", "raw", title="dead letters")
    for record in records:
        event = record.event
        assert isinstance(event, InputRejected)
        table.add_row(str(record.position), event.source, event.reason, _preview(event.raw))
    out.print(table if records else "no dead letters")


@deadletter_app.command()
def show(
    position: Annotated[int, typer.Argument(help="Position in the dead-letter topic.")],
) -> None:
    """Everything about one rejected input, raw bytes included."""
    records = run(_read_deadletters(position, 1))
    if not records or records[0].position != position:
        fail(f"no dead letter at position {position}")
    print_json({"position": position, **_as_dict(records[0])})


def _as_dict(record: Record) -> dict[str, object]:
    event = record.event
    assert isinstance(event, InputRejected)
    return {
        "id": event.id,
        "source": event.source,
        "reason": event.reason,
        "detail": event.detail,
        "trace": event.trace,
        "ts": event.ts,
        "raw": event.raw.decode("utf-8", errors="backslashreplace"),
        "raw_bytes": len(event.raw),
    }
