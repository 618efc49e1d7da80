"""What every command shares: settings from options, the platform, output helpers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import msgspec
import typer
import uvloop
from pydantic import ValidationError
from rich.console import Console

from hubbub.bootstrap import ConfigurationError, Platform, build_platform, open_event_log
from hubbub.eventlog.ports import EventLog, LogUnavailable
from hubbub.kernel.commands import stamped
from hubbub.kernel.events import Event
from hubbub.kernel.telemetry import configure_logging
from hubbub.settings import Settings

T = TypeVar("T")
console = Console(stderr=True)


class State:
    """Options given before the command (`hubbub --data-dir X ingest ...`)."""

    data_dir: Path | None = None
    event_log: str | None = None


def load_settings() -> Settings:
    overrides: dict[str, Any] = {}
    if State.data_dir is not None:
        overrides["data_dir"] = State.data_dir
    if State.event_log is not None:
        overrides["event_log"] = State.event_log
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        fail(
            "invalid settings:\n"
            + "\n".join(f"  {e['loc'][0]}: {e['msg']}" for e in error.errors())
        )
    configure_logging(settings.log_level, settings.log_format)
    return settings


def fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop, turning setup failures into one clear line."""
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    except (ConfigurationError, LogUnavailable) as error:
        fail(str(error))
    except KeyboardInterrupt:
        console.print("stopped")
        raise typer.Exit(130) from None
    raise AssertionError("unreachable")  # pragma: no cover


async def with_platform(settings: Settings, work: Callable[[Platform], Awaitable[T]]) -> T:
    platform = await build_platform(settings)
    try:
        return await work(platform)
    finally:
        await platform.close()


async def with_log(settings: Settings, work: Callable[[EventLog], Awaitable[T]]) -> T:
    """Run `work` on the settings' event log, closed after."""
    event_log = await open_event_log(settings)
    try:
        return await work(event_log)
    finally:
        await event_log.close()


async def append_command(settings: Settings, event: Event, identity: str) -> None:
    """Append an operator's change (`identity` names it) to the log, stamped now."""
    change = stamped(event, identity, source="cli", now_us=time.time_ns() // 1000)
    await with_log(settings, lambda event_log: event_log.append([change]))


def stop_on_signals(stop: asyncio.Event) -> None:
    """Ctrl-C and SIGTERM set `stop`, so a long command finishes its work and exits."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def print_json(value: object) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
    sys.stdout.flush()
