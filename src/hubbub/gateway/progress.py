"""How the platform keeps up: events per second into the log's firehose topics, and how
far behind the head of each topic every role that follows it is.

The gateway reads the log's head positions every `interval_s` and keeps the last
`window_s` of readings; a topic's rate is what was appended over that window, divided
by its length. A role's lag in a topic is the head minus the position the role last
said it had folded (its `/healthz`, kept by `Health`): the events it still has to fold.
Nothing here is a tenant's: the firehose is public, so any signed-in caller may ask.

Each reading is exported too, for Prometheus: every topic's head, and every role's
position and lag in each topic it follows (the dead-letter topic's head rising is
rejected input arriving; a lag that grows, or a position that stands still, is a role
falling behind).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import Gauge

from hubbub.eventlog.ports import EventLog
from hubbub.gateway.health import Health
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import DELETES, ENGAGEMENT, PAGES, POSTS

FIREHOSE: Final = (POSTS, ENGAGEMENT, DELETES, PAGES)
"""The topics ingest appends to: their rate is the ingest rate."""

HEADS: Final = Gauge(
    "hubbub_eventlog_head_position",
    "The last position ever appended to each topic of the log, as the gateway last read it.",
    ["topic"],
)
POSITIONS: Final = Gauge(
    "hubbub_consumer_position",
    "The last position of a topic a role said (in its /healthz) it had folded.",
    ["consumer", "topic"],
)
LAGS: Final = Gauge(
    "hubbub_consumer_lag_events",
    "Events of a topic a role has still to fold: the topic's head minus the role's position.",
    ["consumer", "topic"],
)


@dataclass(frozen=True)
class Reading:
    at_s: float
    heads: dict[str, int]


class Progress:
    def __init__(
        self,
        event_log: EventLog,
        health: Health,
        *,
        clock: Clock,
        interval_s: float = 1.0,
        window_s: float = 10.0,
    ) -> None:
        self._event_log = event_log
        self._health = health
        self._clock = clock
        self._interval_s = interval_s
        self._window_s = window_s
        self._readings: deque[Reading] = deque(maxlen=max(2, int(window_s / interval_s) + 2))

    async def read(self) -> None:
        """Read the log's heads once."""
        stats = await self._event_log.stats()
        now = self._clock.monotonic_s()
        self._readings.append(Reading(now, {t.topic: t.last_position for t in stats.topics}))
        while len(self._readings) > 2 and now - self._readings[1].at_s >= self._window_s:
            self._readings.popleft()
        self._export(self._readings[-1].heads)

    def _export(self, heads: dict[str, int]) -> None:
        """The heads, and each role's position and lag, as Prometheus gauges."""
        for topic, head in heads.items():
            HEADS.labels(topic).set(head)
        for role, positions in self._health.positions().items():
            for topic, position in positions.items():
                POSITIONS.labels(role, topic).set(position)
                LAGS.labels(role, topic).set(max(heads.get(topic, position) - position, 0))

    async def watch(self) -> None:
        while True:
            await self.read()
            await asyncio.sleep(self._interval_s)

    def report(self) -> dict[str, Any]:
        """Events per second per firehose topic and in all (None until two readings),
        each topic's head, and each role's status and lag per topic it follows."""
        heads = self._readings[-1].heads if self._readings else {}
        rates: dict[str, float | None] = dict.fromkeys(FIREHOSE)
        if len(self._readings) >= 2:
            first, last = self._readings[0], self._readings[-1]
            span = last.at_s - first.at_s
            if span > 0:
                for topic in FIREHOSE:
                    appended = last.heads.get(topic, 0) - first.heads.get(topic, 0)
                    rates[topic] = round(max(appended, 0) / span, 1)
        known = [r for r in rates.values() if r is not None]
        roles: dict[str, dict[str, Any]] = {}
        positions = self._health.positions()
        for name, status in self._health.report().items():
            role: dict[str, Any] = {"status": status}
            if name in positions:
                role["behind"] = {
                    topic: max(heads.get(topic, position) - position, 0)
                    for topic, position in sorted(positions[name].items())
                }
            roles[name] = role
        return {
            "ingest_per_s": round(sum(known), 1) if known else None,
            "topics": {
                topic: {"per_s": rates[topic], "head": heads.get(topic, 0)} for topic in FIREHOSE
            },
            "roles": roles,
        }
