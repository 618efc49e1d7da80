"""What every process folds from the log's `control` topic: state that operators change
live (flags, routes), read by each replica on its own, without a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Final

import structlog

from hubbub.eventlog.port import EventLog, LogUnavailable
from hubbub.kernel.events import CONTROL, Event

READ_BATCH: Final = 1000
log = structlog.get_logger()


class ControlView:
    """A view of the `control` topic: `catch_up` folds what is new (`_fold`, in a
    subclass, picks the events it cares for), `follow` keeps doing so. Reads of the view
    never touch the log, so they answer at most one poll interval behind it."""

    what = "control state"

    def __init__(self, event_log: EventLog) -> None:
        self._event_log = event_log
        self._position = 0
        # One reader at a time, so a slow read never folds older changes over newer ones.
        self._reading = asyncio.Lock()

    @property
    def position(self) -> int:
        """The last `control` position folded in (0 before the first)."""
        return self._position

    async def catch_up(self) -> int:
        """Fold every change appended since the last call; returns how many mattered.
        Raises `LogUnavailable` when the log cannot be read (the view keeps its state)."""
        changed = 0
        async with self._reading:
            while records := await self._event_log.read(CONTROL, self._position + 1, READ_BATCH):
                changed += self._fold(r.event for r in records)
                self._position = records[-1].position
            if changed:
                self._changed()
        return changed

    async def follow(self, interval_s: float) -> None:
        """Catch up every `interval_s` seconds, forever. A failed read is logged and
        retried at the next tick: the view keeps answering with what it has."""
        while True:
            try:
                await self.catch_up()
            except LogUnavailable as error:
                log.warning(f"{self.what} cannot read the control topic", error=str(error))
            except Exception:
                log.exception(f"{self.what} failed to fold the control topic")
            await asyncio.sleep(interval_s)

    def _fold(self, events: Iterable[Event]) -> int:
        raise NotImplementedError

    def _changed(self) -> None:
        """Called once a catch-up folded changes in (to rebuild what derives from them)."""
