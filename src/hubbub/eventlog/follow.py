"""The one way a process follows the log.

Every consumer keeps its own position with the state it produced (a view in memory, the
rollups' positions in their own transaction, the archive's in its files, a mentions
backend's in its index) and catches up from there. What they share is here:

- `read_past` reads up to a batch of each topic past the positions a consumer stored;
- `every` runs a consumer's catch-up step forever, every `interval_s`: a log that cannot
  be read, or a step that fails, is logged, reported to the process's background health
  (`note_failure`), and tried again at the next tick, from the stored position, so
  nothing is skipped and nothing counted twice.

`hubbub.eventlog.view.LogView` is the consumer for a read model folded in memory;
consumer groups (`EventLog.fetch` / `commit`) are the other way, for work handed out
once across replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import NoReturn

import structlog

from hubbub.eventlog.ports import EventLog, LogUnavailable, Record
from hubbub.kernel.background import note_failure

log = structlog.get_logger("hubbub.follow")


async def read_past(
    event_log: EventLog, topics: Iterable[str], positions: Mapping[str, int], batch: int
) -> list[Record]:
    """Up to `batch` records of each of `topics` past `positions` (a topic missing from
    them is read from its start), topic after topic, each in log order."""
    records: list[Record] = []
    for topic in topics:
        records += await event_log.read(topic, positions.get(topic, 0) + 1, batch)
    return records


async def every(interval_s: float, step: Callable[[], Awaitable[object]], *, what: str) -> NoReturn:
    """Run `step` now and every `interval_s` seconds after it ends, until cancelled. A
    failure is logged as `what` failing, noted for health, and retried at the next tick."""
    while True:
        try:
            await step()
        except LogUnavailable as error:
            log.warning(f"{what}: the log cannot be read", error=str(error))
            note_failure(error)
        except Exception as failure:  # the next tick tries again from the stored position
            log.exception(f"{what} failed")
            note_failure(failure)
        await asyncio.sleep(interval_s)
