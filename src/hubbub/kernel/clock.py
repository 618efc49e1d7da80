"""Time comes from an injected clock, so tests and replays control it.

A clock gives two readings: wall time (`now_us`), for what is stamped or compared with
other machines, and a monotonic one (`monotonic_s`), for timeouts, TTLs and rates within
the process, which a wall clock set back or forward must not disturb.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch."""
        ...

    def monotonic_s(self) -> float:
        """Seconds from an arbitrary start; never goes back. Only differences mean anything."""
        ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic_s(self) -> float:
        return time.monotonic()


class FixedClock:
    """A clock that only moves when told to; `advance` moves both its readings."""

    def __init__(self, now_us: int = 1_700_000_000_000_000, monotonic_s: float = 1_000.0) -> None:
        self._now = now_us
        self._monotonic_s = monotonic_s

    def now_us(self) -> int:
        return self._now

    def monotonic_s(self) -> float:
        return self._monotonic_s

    def advance(self, seconds: float) -> None:
        self._now += int(seconds * 1_000_000)
        self._monotonic_s += seconds


def moment_of(now_us: int) -> datetime:
    """The aware UTC datetime of a clock's `now_us` (exact to the microsecond)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_us)
