"""Replay a JSONL file (one source event per line) through the ingest pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hubbub.ingest.pipeline import Ingestor, IngestSummary


def read_batches(path: Path, batch_size: int) -> Iterator[tuple[list[bytes], int]]:
    """Batches of non-blank lines, each with the number of bytes read for it."""
    batch: list[bytes] = []
    consumed = 0
    with path.open("rb") as file:
        for line in file:
            consumed += len(line)
            line = line.rstrip(b"\r\n")
            if line.strip():
                batch.append(line)
            if len(batch) >= batch_size:
                yield batch, consumed
                batch, consumed = [], 0
    if batch or consumed:
        yield batch, consumed


async def replay_file(
    ingestor: Ingestor,
    path: Path,
    *,
    rate: float | None = None,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Ingest every line of `path`, at `rate` lines/s or as fast as the pipeline goes.

    Batches are submitted without waiting for earlier ones to be appended (the
    pipeline's bounded queue provides the backpressure); the summary covers every line.
    """
    if rate is not None:
        # Small batches keep a slow replay smooth: about ten a second.
        batch_size = max(1, min(batch_size, int(rate / 10) or 1))
    pending: list[asyncio.Future[IngestSummary]] = []
    started, sent = time.monotonic(), 0
    for lines, consumed in read_batches(path, batch_size):
        if rate is not None:
            await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
        if lines:
            pending.append(await ingestor.submit(lines))
        sent += len(lines)
        if progress:
            progress(consumed)
    summary = IngestSummary()
    for outcome in await asyncio.gather(*pending):
        summary.add(outcome)
    return summary
