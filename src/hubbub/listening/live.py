"""The matches topic read once per process and handed to every live stream.

A live stream wants its own search's matches past a position. Read by each stream, the
topic would be decoded once per open stream (every tenant's matches, to keep a few);
`LiveTail` reads it once, from the head when the first stream opens, keeps the latest
`keep` records by (tenant, search), and wakes the streams when more arrive. A stream
resuming from before what the tail holds (a client back after a long while) reads the
log itself until it reaches the tail, filtering as it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import structlog

from hubbub.eventlog.ports import EventLog, Record
from hubbub.eventlog.retention import PositionExpired
from hubbub.kernel.events import MATCHES, MatchWithdrawn, SearchMatched

log = structlog.get_logger("hubbub.listening")
READ_BATCH: Final = 5000

Key = tuple[str, str]


@dataclass(frozen=True)
class Arrival:
    """A match (or its withdrawal) at its position in `matches`."""

    position: int
    event: SearchMatched | MatchWithdrawn


class LiveTail:
    """The latest `keep` records of `matches`, by tenant and search."""

    def __init__(self, event_log: EventLog, poll_s: float = 0.05, keep: int = 200_000) -> None:
        self._log = event_log
        self._poll_s = poll_s
        self._keep = keep
        self._by_key: dict[Key, deque[Arrival]] = {}
        self._searches: dict[str, set[str]] = {}
        """Each tenant's searches that have arrivals held."""
        self._order: deque[tuple[int, Key]] = deque()
        self._first = 0
        """Every record past `_first` is held (or was no stream's)."""
        self._last = 0
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Lock()

    async def start(self) -> None:
        """Begin reading at the head of the topic (once)."""
        async with self._started:
            if self._task is not None:
                return
            stats = await self._log.stats()
            head = next((t.last_position for t in stats.topics if t.topic == MATCHES), 0)
            self._first = self._last = head
            self._task = asyncio.create_task(self._follow(), name="listening-live-tail")

    @property
    def head(self) -> int:
        return self._last

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        while True:
            try:
                records = await self._log.read(MATCHES, self._last + 1, READ_BATCH)
            except Exception as error:  # the log is away: the streams wait, then go on
                log.warning("the live tail cannot read the matches", error=str(error))
                records = []
                await asyncio.sleep(1.0)
            if records:
                self._hold(records)
                self._arrived.set()
                self._arrived = asyncio.Event()
            if len(records) < READ_BATCH:
                await asyncio.sleep(self._poll_s)

    def _hold(self, records: Iterable[Record]) -> None:
        for record in records:
            event = record.event
            if isinstance(event, SearchMatched | MatchWithdrawn):
                key = (event.tenant, event.search)
                if key not in self._by_key:
                    self._by_key[key] = deque()
                    self._searches.setdefault(event.tenant, set()).add(event.search)
                self._by_key[key].append(Arrival(record.position, event))
                self._order.append((record.position, key))
            self._last = record.position
        while len(self._order) > self._keep:
            position, key = self._order.popleft()
            held = self._by_key[key]
            held.popleft()
            if not held:
                del self._by_key[key]
                searches = self._searches[key[0]]
                searches.discard(key[1])
                if not searches:
                    del self._searches[key[0]]
            self._first = position

    async def since(
        self, tenant: str, search: str, cursor: int, wait_s: float
    ) -> tuple[list[Arrival], int]:
        """The search's arrivals past `cursor`, waiting up to `wait_s` for some when there
        are none yet; and the position every record up to which has been looked at (the
        next call's `cursor`)."""
        return await self.since_where(tenant, lambda name: name == search, cursor, wait_s)

    async def since_where(
        self, tenant: str, wanted: Callable[[str], bool], cursor: int, wait_s: float
    ) -> tuple[list[Arrival], int]:
        """As `since`, for every search of the tenant whose name is `wanted` (an inbox's
        channels: the searches named `inbox:...`), in log order."""
        await self.start()
        if cursor < self._first:
            return await self._from_log(tenant, wanted, cursor)
        cursor = min(cursor, self._last)
        if wait_s > 0 and self._last <= cursor:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._arrived.wait()
        return self._held(tenant, wanted, cursor), self._last

    def _held(self, tenant: str, wanted: Callable[[str], bool], cursor: int) -> list[Arrival]:
        runs = [
            [arrival for arrival in held if arrival.position > cursor]
            for search in self._searches.get(tenant, ())
            if wanted(search)
            and (held := self._by_key[(tenant, search)])
            and held[-1].position > cursor
        ]
        if len(runs) == 1:
            return runs[0]
        return list(heapq.merge(*runs, key=lambda arrival: arrival.position))

    async def _from_log(
        self, tenant: str, wanted: Callable[[str], bool], cursor: int
    ) -> tuple[list[Arrival], int]:
        """One batch of the log past `cursor`, not beyond what the tail holds, keeping the
        search's; a cursor in a prefix retention removed starts at the first kept record."""
        first = self._first
        try:
            records = await self._log.read(MATCHES, cursor + 1, min(READ_BATCH, first - cursor))
        except PositionExpired as expired:
            return [], min(expired.first_kept - 1, first)
        found = [
            Arrival(record.position, record.event)
            for record in records
            if record.position <= first
            and isinstance(record.event, SearchMatched | MatchWithdrawn)
            and record.event.tenant == tenant
            and wanted(record.event.search)
        ]
        return found, min(records[-1].position, first) if records else first
