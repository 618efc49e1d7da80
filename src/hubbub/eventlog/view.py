"""Follow one topic of the log and fold it into a view kept in memory.

Every read model a request needs (flags, routes, watches, webhooks, the alerts'
cooldown, the deliveries list) is one of these: a subclass says which events it cares
for (`_fold`) and what it keeps; this class reads the topic from where the view left
off, never from position 1 on a request path.

- `catch_up` folds what was appended since the last call, at most `limit` records when
  given, so a read that catches up first costs what is new, bounded.
- `follow` keeps catching up in the background; a failed read is logged and retried.
- `fresh` is what a read calls: the first time it folds the whole topic, then at most
  `limit` records, so a write is visible to the next read in the same process.
- One reader at a time (a lock), so a slow read never folds older events over newer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Final

import structlog

from hubbub.eventlog.ports import EventLog, LogUnavailable
from hubbub.kernel.background import note_failure
from hubbub.kernel.events import Event

READ_BATCH: Final = 1000
log = structlog.get_logger("hubbub.view")


class LogView:
    """A view of one topic, folded in order. Subclasses implement `_fold` (and, if
    something derives from the folded state, `_changed`)."""

    what = "view"
    """What the view is, for log lines."""

    def __init__(self, event_log: EventLog, topic: str, *, read_batch: int = READ_BATCH) -> None:
        self._event_log = event_log
        self._topic = topic
        self._read_batch = read_batch
        self._position = 0
        self._loaded = False
        # One reader at a time, so a slow read never folds older changes over newer ones.
        self._reading = asyncio.Lock()

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def position(self) -> int:
        """The last position of the topic folded in (0 before the first)."""
        return self._position

    async def catch_up(self, limit: int | None = None) -> int:
        """Fold what was appended since the last call (at most `limit` records when
        given); returns how many events mattered. Raises `LogUnavailable` when the log
        cannot be read: the view keeps what it had, and its position."""
        changed = 0
        async with self._reading:
            left = limit
            while left is None or left > 0:
                batch = self._read_batch if left is None else min(left, self._read_batch)
                records = await self._event_log.read(self._topic, self._position + 1, batch)
                if not records:
                    self._loaded = limit is None or self._loaded
                    break
                changed += self._fold(r.event for r in records)
                self._position = records[-1].position
                left = None if left is None else left - len(records)
            if changed:
                self._changed()
        return changed

    async def fresh(self, limit: int) -> None:
        """Catch up before a read: the whole topic the first time (the view is empty
        until then), at most `limit` records after; the background `follow` does the
        rest of a backlog larger than that."""
        await self.catch_up(limit if self._loaded else None)

    async def follow(self, interval_s: float) -> None:
        """Catch up every `interval_s` seconds, forever. A failed read is logged and
        retried at the next tick: the view keeps answering with what it has."""
        while True:
            try:
                await self.catch_up()
            except LogUnavailable as error:
                log.warning(f"{self.what} cannot read the {self._topic} topic", error=str(error))
                note_failure(error)
            except Exception as failure:
                log.exception(f"{self.what} failed to fold the {self._topic} topic")
                note_failure(failure)
            await asyncio.sleep(interval_s)

    def _fold(self, events: Iterable[Event]) -> int:
        """Fold these events, in order; returns how many changed the view."""
        raise NotImplementedError

    def _changed(self) -> None:
        """Called once a catch-up folded changes in (to rebuild what derives from them)."""
