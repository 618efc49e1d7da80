"""A replica of the mentions role: its backends, fed from the log, and which one serves.

Every backend a replica runs reads the `pages` topic itself from its own position, so
replicas scale out by being added. One backend serves queries. Another may shadow it:
each query is also sent to the shadow off the request path, and the two answers and
latencies are compared (`ShadowReport`). The serving backend is switched live by a
`SettingChanged("mentions.backend", ...)` on the `control` topic, which every replica
follows (`hubbub mentions cutover`): the target is opened and caught up while the old
one goes on serving, then a reference is swapped, so no request fails.

The log is the source of truth for that setting: a replica starting up applies the last
such change, and only falls back to `HUBBUB_MENTIONS_BACKEND` when there is none.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import structlog

from hubbub.eventlog.ports import EventLog, LogUnavailable
from hubbub.kernel.background import note_failure
from hubbub.kernel.events import CONTROL, PAGES, SettingChanged
from hubbub.mentions.matching import Suggestion
from hubbub.mentions.memory import MemoryMentions
from hubbub.mentions.ports import BACKENDS, MentionsBackend
from hubbub.settings import MentionsBackendName

READ_BATCH = 20_000
SERVING_SETTING = "mentions.backend"
log = structlog.get_logger("hubbub.mentions")

Opener = Callable[[MentionsBackendName], Awaitable[MentionsBackend]]


async def catch_up(backend: MentionsBackend, event_log: EventLog) -> int:
    """Fold every page event after the backend's position into it; returns how many."""
    folded = 0
    position = await backend.position()
    while records := await event_log.read(PAGES, position + 1, READ_BATCH):
        await backend.apply(records)
        position = records[-1].position
        folded += len(records)
    return folded


class Latencies:
    """The most recent latencies of one backend, for percentiles."""

    def __init__(self, keep: int = 100_000) -> None:
        self._seconds: deque[float] = deque(maxlen=keep)

    def add(self, seconds: float) -> None:
        self._seconds.append(seconds)

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self._seconds)
        if not ordered:
            return {"count": 0}

        def ms(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

        return {"count": len(ordered), "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99)}


class Difference(msgspec.Struct):
    query: str
    serving: list[str]
    shadow: list[str]


class ShadowReport(msgspec.Struct):
    """How the shadow backend's answers compare with the serving one's."""

    serving: str
    shadow: str | None
    compared: int
    identical: int
    agreement: float | None
    skipped: int
    errors: int
    latency: dict[str, dict[str, float | int]]
    positions: dict[str, int]
    recent_differences: list[Difference]


class MentionsReplica:
    """The backends one process runs for the mentions role; see the module docstring."""

    def __init__(
        self,
        event_log: EventLog,
        opener: Opener,
        *,
        serving: MentionsBackendName,
        shadow: MentionsBackendName | None = None,
        interval_s: float = 0.2,
        shadow_queue: int = 1000,
    ) -> None:
        self.event_log = event_log
        self.serving = serving
        self.shadow = shadow if shadow != serving else None
        self.backends: dict[str, MentionsBackend] = {}
        self._opener = opener
        self.interval_s = interval_s
        self._control_position = 0
        self._switching: asyncio.Lock = asyncio.Lock()
        self._queue: asyncio.Queue[tuple[str, int, list[str]]] = asyncio.Queue(shadow_queue)
        self._latency: dict[str, Latencies] = {name: Latencies() for name in BACKENDS}
        self._compared = self._identical = self._skipped = self._errors = 0
        self._differences: deque[Difference] = deque(maxlen=20)

    async def start(self) -> None:
        """Open and catch up the serving backend (and the shadow); `run` then keeps them
        up with the log."""
        await self._read_control(apply=False)
        for name in (self.serving, self.shadow):
            if name is not None:
                await self._open(name)

    async def suggest(self, query: str, limit: int = 10) -> tuple[str, list[Suggestion]]:
        """The serving backend's name and answer; the shadow gets the query too, later."""
        name = self.serving
        started = time.perf_counter()
        found = await self.backends[name].suggest(query, limit)
        self._latency[name].add(time.perf_counter() - started)
        if self.shadow is not None:
            self._compare_later(query, limit, [s.id for s in found])
        return name, found

    async def suggest_json(self, query: str, limit: int = 10) -> tuple[str, bytes]:
        """`suggest`, encoded as the API's JSON answer."""
        name = self.serving
        started = time.perf_counter()
        found = await self.backends[name].suggest_json(query, limit)
        self._latency[name].add(time.perf_counter() - started)
        if self.shadow is not None:
            served = [s.id for s in msgspec.json.decode(found, type=list[Suggestion])]
            self._compare_later(query, limit, served)
        return name, found

    def _compare_later(self, query: str, limit: int, served: list[str]) -> None:
        try:
            self._queue.put_nowait((query, limit, served))
        except asyncio.QueueFull:
            self._skipped += 1

    async def cutover(self, to: MentionsBackendName) -> None:
        """Serve from `to` from now on, once it has caught up with the log."""
        async with self._switching:
            if to == self.serving:
                return
            if to not in self.backends:
                await self._open(to)
            await catch_up(self.backends[to], self.event_log)
            before = self.serving
            self.serving = to
            self.shadow = before if self.shadow == to else self.shadow
            log.info("mentions backend switched", serving=to, before=before, shadow=self.shadow)

    async def report(self) -> ShadowReport:
        positions = {name: await b.position() for name, b in self.backends.items()}
        compared = self._compared
        return ShadowReport(
            serving=self.serving,
            shadow=self.shadow,
            compared=compared,
            identical=self._identical,
            agreement=round(self._identical / compared, 4) if compared else None,
            skipped=self._skipped,
            errors=self._errors,
            latency={name: self._latency[name].summary() for name in self.backends},
            positions=positions,
            recent_differences=list(self._differences),
        )

    def save(self, directory: Path) -> None:
        """Snapshot the memory backend, if this replica runs one."""
        memory = self.backends.get("memory")
        if isinstance(memory, MemoryMentions):
            memory.save(directory)

    async def close(self) -> None:
        """Close the backends (stop what `run` started first)."""
        for backend in self.backends.values():
            await backend.close()
        self.backends.clear()

    async def _open(self, name: MentionsBackendName) -> None:
        backend = await self._opener(name)
        folded = await catch_up(backend, self.event_log)
        self.backends[name] = backend
        log.info("mentions backend ready", backend=name, caught_up=folded)

    async def catch_up(self) -> None:
        """Fold what the log holds past each backend's position into it. A backend that
        fails is logged and reported, and the others are still brought up to date."""
        for backend in list(self.backends.values()):
            try:
                await catch_up(backend, self.event_log)
            except LogUnavailable:
                raise
            except Exception as failure:  # a bad backend must not hold the others back
                log.exception("mentions backend failed to fold events", backend=backend.name)
                note_failure(failure)

    async def follow_control(self) -> None:
        """Apply what was appended to the `control` topic since the last call (a cutover)."""
        await self._read_control(apply=True)

    async def _read_control(self, *, apply: bool) -> None:
        while records := await self.event_log.read(CONTROL, self._control_position + 1, 1000):
            self._control_position = records[-1].position
            for record in records:
                event = record.event
                if not isinstance(event, SettingChanged) or event.name != SERVING_SETTING:
                    continue
                if event.value not in BACKENDS:
                    log.warning("unknown mentions backend in the log", value=event.value)
                elif apply:
                    await self.cutover(event.value)
                else:
                    self.shadow = None if self.shadow == event.value else self.shadow
                    self.serving = event.value

    async def compare_shadow(self) -> None:
        """Send the queries served to the shadow backend and compare, until cancelled."""
        while True:
            query, limit, served = await self._queue.get()
            name = self.shadow
            backend = self.backends.get(name) if name else None
            if name is None or backend is None:
                continue
            started = time.perf_counter()
            try:
                shadowed = [s.id for s in await backend.suggest(query, limit)]
            except Exception as error:
                self._errors += 1
                log.warning("mentions shadow query failed", backend=name, error=str(error))
                continue
            self._latency[name].add(time.perf_counter() - started)
            self._compared += 1
            if shadowed == served:
                self._identical += 1
            else:
                self._differences.append(Difference(query, served, shadowed))
