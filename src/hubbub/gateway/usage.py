"""Usage analytics: which tenant used which feature, on the log's `usage` topic.

Product questions (who uses reports, which keys call ingest) are answered from this
topic, never from the operations logs, which carry no tenant activity. Records are
gathered in memory and appended once a second, so a request never waits on the log;
a buffer the log cannot take is kept (up to `max_buffer`) for the next flush, and
beyond that the oldest are dropped and counted.
"""

from __future__ import annotations

import asyncio
from typing import Final

import structlog
from prometheus_client import Counter

from hubbub.eventlog.ports import EventLog, LogUnavailable
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import FeatureUsed
from hubbub.kernel.ids import event_id

USAGE_DROPPED: Final = Counter(
    "hubbub_usage_dropped", "Usage records dropped because the log could not take them."
)
log = structlog.get_logger()


class UsageRecorder:
    def __init__(
        self,
        event_log: EventLog,
        interval_s: float = 1.0,
        max_buffer: int = 100_000,
        *,
        clock: Clock,
    ) -> None:
        self._event_log = event_log
        self._clock = clock
        self._interval_s = interval_s
        self._max_buffer = max_buffer
        self._buffer: list[FeatureUsed] = []
        self._sequence = 0

    def record(
        self, tenant: str, api_key: str, feature: str, method: str, status: int, seconds: float
    ) -> None:
        now_us = self._clock.now_us()
        self._sequence += 1
        self._buffer.append(
            FeatureUsed(
                id=event_id(f"{now_us:016d}", f"{api_key}/{self._sequence}/{id(self)}"),
                key=tenant, ts=now_us, source="gateway", tenant=tenant, api_key=api_key,
                feature=feature, method=method, status=status,
                duration_ms=round(seconds * 1000, 3),
            )
        )  # fmt: skip
        if len(self._buffer) > self._max_buffer:
            del self._buffer[: len(self._buffer) - self._max_buffer]
            USAGE_DROPPED.inc()

    async def flush(self) -> int:
        """Append what was recorded; returns how many records went to the log."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            await self._event_log.append(batch)
        except LogUnavailable as error:
            log.warning("usage records wait for the log", records=len(batch), error=str(error))
            self._buffer = batch + self._buffer
            return 0
        return len(batch)

    async def run(self) -> None:
        """Flush every `interval_s`, forever; flush once more when cancelled."""
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                await self.flush()
        finally:
            await self.flush()
