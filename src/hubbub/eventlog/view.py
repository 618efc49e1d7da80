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

from hubbub.eventlog.follow import every
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.events import Event

READ_BATCH: Final = 1000


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
        """Catch up every `interval_s` seconds, forever (`hubbub.eventlog.follow.every`):
        a failed read is logged and retried at the next tick, and the view keeps
        answering with what it has meanwhile."""
        await every(interval_s, self.catch_up, what=f"{self.what} following {self._topic}")

    def _fold(self, events: Iterable[Event]) -> int:
        """Fold these events, in order; returns how many changed the view."""
        raise NotImplementedError

    def _changed(self) -> None:
        """Called once a catch-up folded changes in (to rebuild what derives from them)."""
