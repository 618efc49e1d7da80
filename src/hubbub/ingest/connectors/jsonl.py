"""Replay a JSONL file (one source event per line) through the ingest pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hubbub.ingest.service import BatchSink, IngestSummary

CHUNK_BYTES = 8 * 1024 * 1024


def read_batches(path: Path, batch_size: int) -> Iterator[tuple[list[bytes], int]]:
    """Batches of non-blank lines, each with the number of bytes read for it.

    The file is read in large chunks and split in C: reading it line by line cost more
    than decoding the lines.
    """
    pending: list[bytes] = []
    consumed = 0
    tail = b""
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            consumed += len(chunk)
            pending.extend(line for line in lines if line.strip())
            while len(pending) >= batch_size:
                yield pending[:batch_size], consumed
                pending, consumed = pending[batch_size:], 0
    if tail.strip():
        pending.append(tail)
    if pending or consumed:
        yield pending, consumed


async def replay_file(
    ingestor: BatchSink,
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
