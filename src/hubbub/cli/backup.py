"""`hubbub backup create|verify|restore DIR` and `hubbub rebuild MODEL`: an embedded
platform's state copied while it runs and put back, and a read model folded again from
the log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from hubbub.cli.common import console, fail, load_settings, print_json, run
from hubbub.operations import backup as backups
from hubbub.operations import streams
from hubbub.operations.copies import CopyFailed
from hubbub.operations.rebuild import Model, RebuildError, rebuild

app = typer.Typer(
    help="Back up an embedded platform's data directory, check a backup, restore one.",
    no_args_is_help=True,
)
Directory = Annotated[Path, typer.Argument(help="The backup's directory.")]


@contextmanager
def _bar() -> Iterator[backups.Progress]:
    """A byte progress bar, one line per stage (copying, checksumming, ...)."""
    with Progress(
        TextColumn("{task.description:<13}"), BarColumn(), DownloadColumn(),
        TimeRemainingColumn(), console=console,
    ) as bar:  # fmt: skip
        current: list[TaskID] = []

        def start(description: str, total: int | None) -> None:
            if current:
                bar.update(current[-1], completed=bar.tasks[-1].total)
            current.append(bar.add_task(description, total=total))

        def advance(n: int) -> None:
            bar.advance(current[-1], n)

        yield backups.Progress(start, advance)


@app.command()
def create(
    directory: Directory,
    json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Copy the data directory's state to DIRECTORY (new or empty), consistently, while
    the platform runs: read models first, the event log last, and a manifest of every
    file's size and sha256 and the log positions each part holds."""
    settings = load_settings()
    try:
        with _bar() as progress:
            manifest = backups.create(settings, directory, progress)
    except (backups.BackupError, CopyFailed) as error:
        fail(str(error), 1)
    if json:
        print_json(manifest)
        return
    size = sum(entry["bytes"] for entry in manifest["files"])
    console.print(f"backed up {len(manifest['files'])} files ({size:,} bytes) to {directory}")
    console.print(f"log heads: {_positions(manifest['log'])}")
    for model, stored in sorted(manifest["read_models"].items()):
        console.print(f"  {model}: {_positions(stored)}")
    for where in manifest["elsewhere"]:
        console.print(f"[yellow]not in this backup:[/] {where}")


@app.command()
def verify(directory: Directory) -> None:
    """Check a backup: its manifest lists every file, sizes and checksums match, each
    SQLite file passes its integrity check, the DuckDB file opens, and no read model is
    past the log. Exits 1 on any fault."""
    with _bar() as progress:
        verdict = backups.verify(directory, progress)
    for line in verdict.checked:
        console.print(f"[green]ok[/]    {line}")
    for line in verdict.faults:
        console.print(f"[bold red]fault[/] {line}")
    if not verdict.sound:
        console.print(f"{directory}: {len(verdict.faults)} fault(s); do not restore it")
        raise typer.Exit(1)
    console.print(f"{directory}: sound")


@app.command()
def restore(
    directory: Directory,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the state a non-empty data dir holds.")
    ] = False,
) -> None:
    """Verify the backup in DIRECTORY, then copy it into the data directory, which must
    be empty (or --force). Start the platform after: each read model folds on from its
    position, and ingest resumes from its cursors."""
    settings = load_settings()
    try:
        with _bar() as progress:
            backups.restore(directory, settings, force=force, progress=progress)
    except backups.BackupError as error:
        hint = " (--force replaces its state)" if "not empty" in str(error) else ""
        fail(f"{error}{hint}", 1)
    manifest = backups.read_manifest(directory)
    console.print(f"restored {directory} into {settings.data_dir}")
    console.print(f"log heads: {_positions(manifest['log'])}")


def _positions(positions: dict[str, int]) -> str:
    return ", ".join(f"{topic} {position:,}" for topic, position in sorted(positions.items()))


def rebuild_model(
    model: Annotated[Model, typer.Argument(help="mentions, analytics or listening.")],
) -> None:
    """Drop a read model and fold the whole log into it again (its positions from 0)."""
    settings = load_settings()
    with Progress(
        TextColumn(f"rebuilding {model}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task(model, total=None)
        try:
            done = run(
                rebuild(
                    model,
                    settings,
                    started=lambda total: bar.update(task, total=total),
                    advanced=lambda n: bar.advance(task, n),
                )
            )
        except RebuildError as error:
            fail(str(error), 1)
    console.print(f"rebuilt {model} from {done.folded:,} log records; now at {done.where}")


jetstream_app = typer.Typer(
    help="Back up the JetStream event log's streams (the scale-out log), and restore them.",
    no_args_is_help=True,
)
app.add_typer(jetstream_app, name="jetstream")


@jetstream_app.command("create")
def create_streams(directory: Directory) -> None:
    """Snapshot every stream of the log (HUBBUB_NATS_URL, HUBBUB_STREAM_PREFIX) into
    DIRECTORY through JetStream's snapshot API. Back up the read models' databases
    first."""
    settings = load_settings()
    url = settings.nats_url.get_secret_value()
    try:
        with _bar() as progress:
            progress.start("snapshotting", None)
            manifest = run(streams.save(url, settings.stream_prefix, directory, progress.advance))
    except streams.StreamBackupError as error:
        fail(str(error), 1)
    for name, saved in sorted(manifest["streams"].items()):
        messages = saved["state"].get("messages", 0)
        console.print(f"{name}: {messages:,} messages, {saved['bytes']:,} bytes")
    console.print(f"backed up {len(manifest['streams'])} streams to {directory}")


@jetstream_app.command("verify")
def verify_streams(directory: Directory) -> None:
    """Check that every archive of a JetStream backup has its size and checksum."""
    try:
        manifest = streams.verify(directory)
    except streams.StreamBackupError as error:
        fail(str(error), 1)
    console.print(f"{directory}: sound ({len(manifest['streams'])} streams)")


@jetstream_app.command("restore")
def restore_streams(
    directory: Directory,
    force: Annotated[
        bool, typer.Option("--force", help="Delete streams of the same names first.")
    ] = False,
) -> None:
    """Recreate the log's streams from a JetStream backup (verified first); streams
    that exist are refused unless --force."""
    settings = load_settings()
    url = settings.nats_url.get_secret_value()
    try:
        saved = streams.verify(directory)["streams"]
        with _bar() as progress:
            progress.start("restoring", sum(stream["bytes"] for stream in saved.values()))
            names = run(streams.restore(url, directory, replace=force, advance=progress.advance))
    except streams.StreamBackupError as error:
        fail(str(error), 1)
    console.print(f"restored {len(names)} streams: {', '.join(names)}")
