"""What the streaming connectors share: batching lines into an `Ingestor`, backoff, stopping.

- `LineBatcher` groups lines into batches (by size, or by age of the oldest line) and
  submits them in order. `submit` waits while the ingestor's queue is full, and so does
  `add`: a connector that awaits `add` reads no faster than the log appends.
- Submitted batches resolve in order in a task of their own, so reading goes on while
  earlier batches are still being appended; a callback only ever sees a batch once it and
  every batch before it were settled.
- `Backoff` spaces reconnects; `run_until_stopped` ends a connector's loop when asked.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import structlog

from hubbub.ingest.service import BatchSink, IngestSummary

log = structlog.get_logger("hubbub.ingest.connectors")

OnBatch = Callable[[IngestSummary], None]
OnAppended = Callable[[Sequence[bytes]], Awaitable[None]]

_MAX_DOUBLINGS = 32


class Backoff:
    """Exponential backoff with jitter, from about `initial_s` up to `max_s`.

    Each `next_delay` doubles the ceiling (capped at `max_s`) and returns a delay between
    half the ceiling and the ceiling. `reset` after a healthy connection starts over.
    """

    def __init__(self, max_s: float, initial_s: float = 0.5) -> None:
        self.max_s = max(max_s, 0.0)
        self.initial_s = min(initial_s, self.max_s)
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * 2.0**self._attempt)
        self._attempt = min(self._attempt + 1, _MAX_DOUBLINGS)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self._attempt = 0


class LineBatcher:
    """Batches lines for an `Ingestor`; use it as an async context manager.

    - `add(line)` buffers a line; the buffer is submitted when it holds `batch_size` lines,
      or `max_wait_s` after the first line of a partial batch. Batches are submitted in the
      order their lines were added, and `add` waits while the ingestor is full.
    - Once a batch is appended, `on_appended(lines)` runs (awaited, in submission order,
      never for a batch after one that failed until `reset_failure`), then
      `on_batch(summary)`. Errors of either callback are logged, not raised.
    - A batch that fails to append is logged and sets `failed`.
    - `settle()` submits the partial batch and waits until every submitted batch resolved;
      leaving the context settles, so no line that was added is dropped on the way out.
    """

    def __init__(
        self,
        ingestor: BatchSink,
        *,
        batch_size: int,
        max_wait_s: float,
        on_batch: OnBatch | None = None,
        on_appended: OnAppended | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._ingestor = ingestor
        self._batch_size = batch_size
        self._max_wait_s = max(max_wait_s, 0.0)
        self._on_batch = on_batch
        self._on_appended = on_appended
        self._lines: list[bytes] = []
        self._deadline = 0.0
        self._has_lines = asyncio.Event()
        self._submitting = asyncio.Lock()
        self._pending: asyncio.Queue[tuple[Sequence[bytes], asyncio.Future[IngestSummary]]]
        self._pending = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.failed = False

    async def __aenter__(self) -> LineBatcher:
        source = self._ingestor.source
        self._tasks = [
            asyncio.create_task(self._flush_when_due(), name=f"batcher-timer-{source}"),
            asyncio.create_task(self._resolve(), name=f"batcher-resolve-{source}"),
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.settle()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []

    async def add(self, line: bytes) -> None:
        """Buffer a line; submits the batch when it is full (waiting while the ingestor is)."""
        self._lines.append(line)
        if len(self._lines) == 1:
            self._deadline = asyncio.get_running_loop().time() + self._max_wait_s
            self._has_lines.set()
        if len(self._lines) >= self._batch_size:
            await self.flush()

    async def flush(self) -> None:
        """Submit the buffered lines, if any; on cancellation they stay buffered."""
        async with self._submitting:
            lines, self._lines = self._lines, []
            self._has_lines.clear()
            if not lines:
                return
            try:
                done = await self._ingestor.submit(lines)
            except BaseException:
                self._lines[:0] = lines
                self._deadline = asyncio.get_running_loop().time()
                self._has_lines.set()
                raise
            self._pending.put_nowait((lines, done))

    async def settle(self) -> None:
        """Submit the partial batch, then wait until every submitted batch has resolved."""
        await self.flush()
        await self._pending.join()

    def reset_failure(self) -> None:
        """Let `on_appended` run again (call it once the failed lines will be sent again)."""
        self.failed = False

    async def _flush_when_due(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._has_lines.wait()
            delay = self._deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            try:
                await self.flush()
            except Exception as error:
                log.error(
                    "batch could not be submitted",
                    source=self._ingestor.source,
                    lines=len(self._lines),
                    error=str(error),
                )
                await asyncio.sleep(self._max_wait_s or 0.1)

    async def _resolve(self) -> None:
        while True:
            lines, done = await self._pending.get()
            try:
                await self._settle_one(lines, done)
            finally:
                self._pending.task_done()

    async def _settle_one(
        self, lines: Sequence[bytes], done: asyncio.Future[IngestSummary]
    ) -> None:
        await asyncio.wait([done])
        error = None if done.cancelled() else done.exception()
        if done.cancelled() or error is not None:
            self.failed = True
            log.error(
                "batch was not appended",
                source=self._ingestor.source,
                lines=len(lines),
                error=str(error) if error else "cancelled",
            )
            return
        if self._on_appended is not None and not self.failed:
            try:
                await self._on_appended(lines)
            except Exception as callback_error:
                log.error(
                    "after-append step failed",
                    source=self._ingestor.source,
                    error=str(callback_error),
                )
        if self._on_batch is not None:
            try:
                self._on_batch(done.result())
            except Exception as callback_error:
                log.error(
                    "on_batch callback failed",
                    source=self._ingestor.source,
                    error=str(callback_error),
                )


async def run_until_stopped(stop: asyncio.Event | None, work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until it returns, or until `stop` is set, which cancels it.

    Either way `work` has finished when this returns; an exception it raised propagates.
    """
    task = asyncio.create_task(work)
    stopper = asyncio.create_task((stop or asyncio.Event()).wait())
    try:
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        task.cancel()
        outcome, _ = await asyncio.gather(task, stopper, return_exceptions=True)
    if isinstance(outcome, Exception):
        raise outcome
