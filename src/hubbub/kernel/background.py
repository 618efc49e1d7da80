"""The long-running tasks of a process (log followers, monitors, flushes), kept alive.

A task that raises is logged with its name and the error, counted, and started again
after a backoff that doubles from `initial_s` up to `cap_s` (and resets once a run has
lasted `healthy_after_s`); one that returns is started again the same way. A process
whose background work died silently would answer requests from a view that no longer
moves, so `report` tells health which tasks failed in the last `recent_s`, and health
says `degraded`. A loop that survives its own errors (a log follower retrying a read)
says so with `note_failure`, and the task it runs in counts as failing too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final, Literal

import structlog
from prometheus_client import Counter

from hubbub.kernel.clock import Clock, SystemClock

TaskState = Literal["ok", "failing"]
FAILURES: Final = Counter(
    "hubbub_background_task_failures",
    "Background tasks that raised (or ended) and were started again, by task.",
    ["task"],
)
log = structlog.get_logger("hubbub.background")


@dataclass
class _Kept:
    name: str
    run: Callable[[], Awaitable[None]]
    clock: Clock
    task: asyncio.Task[None] | None = None
    failures: int = 0
    last_error: str = ""
    failed_at: float | None = None

    def failed(self, error: str) -> None:
        self.failures += 1
        self.last_error, self.failed_at = error, self.clock.monotonic_s()
        FAILURES.labels(self.name).inc()


_running: ContextVar[_Kept | None] = ContextVar("hubbub_background_task", default=None)


def note_failure(error: BaseException) -> None:
    """For a loop that outlives an error of its own: the background task it runs in (if
    it runs in one) is reported failing, as if it had raised."""
    kept = _running.get()
    if kept is not None:
        kept.failed(f"{type(error).__name__}: {error}")


@dataclass
class Background:
    """Named tasks, each restarted when it fails; `close` cancels them all."""

    initial_s: float = 1.0
    cap_s: float = 30.0
    healthy_after_s: float = 60.0
    recent_s: float = 60.0
    clock: Clock = field(default_factory=SystemClock)
    _kept: dict[str, _Kept] = field(default_factory=dict)

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` as the task `name`, again whenever it raises or returns."""
        if name in self._kept:
            raise ValueError(f"a background task named {name!r} runs already")
        kept = self._kept[name] = _Kept(name, run, self.clock)
        kept.task = asyncio.create_task(self._keep(kept), name=name)

    def report(self) -> dict[str, TaskState]:
        """Each task's state: `failing` when it failed in the last `recent_s`."""
        return {name: "failing" if self._failing(k) else "ok" for name, k in self._kept.items()}

    def failing(self) -> dict[str, str]:
        """The tasks that failed in the last `recent_s`, with their last error."""
        return {name: k.last_error for name, k in self._kept.items() if self._failing(k)}

    def _failing(self, kept: _Kept) -> bool:
        return (
            kept.failed_at is not None and self.clock.monotonic_s() - kept.failed_at < self.recent_s
        )

    async def close(self) -> None:
        tasks = [k.task for k in self._kept.values() if k.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._kept.clear()

    async def _keep(self, kept: _Kept) -> None:
        _running.set(kept)  # this task's context: what it runs may `note_failure`
        delay = self.initial_s
        while True:
            started = self.clock.monotonic_s()
            try:
                await kept.run()
                error = "it ended"
            except Exception as failure:  # any error: the task must outlive it
                error = f"{type(failure).__name__}: {failure}"
                with contextlib.suppress(Exception):
                    log.exception("background task failed", task=kept.name, retry_in_s=delay)
            else:
                with contextlib.suppress(Exception):
                    log.warning("background task ended", task=kept.name, retry_in_s=delay)
            if self.clock.monotonic_s() - started >= self.healthy_after_s:
                delay = self.initial_s
            kept.failed(error)
            await asyncio.sleep(delay)
            delay = min(self.cap_s, delay * 2)
