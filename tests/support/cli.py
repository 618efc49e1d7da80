"""The `hubbub` command run as a person runs it, on a data directory of the test's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from hubbub.cli import app


def hubbub(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), *args])
    return result.exit_code, result.output


async def cli(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    """Run a command as a person would (in a thread: the command runs its own loop),
    with `stdin` as its input."""
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["--data-dir", str(data_dir), *args], input=stdin
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip()
