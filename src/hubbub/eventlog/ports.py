"""The event log port: the durable, replayable source of truth every service reads.

Contract, which every adapter meets (tests/contract/test_eventlog.py checks it):

- Topics. Each event goes to the topic of its type (`hubbub.kernel.events.topic_of`).
- Positions. Within a topic, events get positions 1, 2, 3, ... in append order, dense
  when appended; retention never reuses one. Order across topics is not defined.
- Idempotent append. `append` writes a batch and skips every event whose id is
  already in the log or earlier in the same batch, counting it as a duplicate. The
  embedded adapter remembers the id of every event retention has kept; the JetStream
  adapter remembers the ids of the last `dedupe_window` events of each topic (like
  JetStream's own duplicate window), which covers every redelivery a connector makes.
- Atomicity. A batch is written whole or not at all (SQLite); on JetStream each packed
  message is atomic and retrying the same call writes nothing twice.
- Retention (`hubbub.eventlog.retention`; settings `HUBBUB_RETAIN_*`). Each topic
  keeps what its rule says: topics kept by age and size (`posts`, `engagement`,
  `deletes` 30 days; `usage` 90; `deadletter`, `deliveries`, `alerts` 30; no size cap by
  default) lose a prefix, oldest first, never events in between; `control` is compacted
  to the latest event of each key (positions then have holes, and no live setting is
  lost); `pages` is kept whole, so the mentions index can always be rebuilt from it.
  Ids of removed events leave the dedupe memory with them.
- Replay. `read(topic, position)` returns the kept events from `position` on, in
  order, skipping the holes compaction leaves. Position 1 means "from the start": it
  reads from the first kept event, whatever retention removed.
- Falling behind. A reader whose position (greater than 1) lies in a prefix retention
  removed gets `PositionExpired`, from `read` and from `fetch` (when the group's next
  position was removed, or the server removed messages it had not delivered yet),
  and the Prometheus counter `hubbub_eventlog_position_expired_total{topic}` goes up.
  Nothing is skipped silently: the error names the first kept position, and the
  reader decides (rebuild from position 1, or accept the gap by moving past it). It
  keeps raising until the reader moves; a compacted topic never raises.
- Consumer groups. `fetch(group, topic)` returns the events after the last one this
  process fetched for the group, starting after the group's committed position.
  `commit` makes a position durable: a new process of the same group resumes right
  after it. A group is consumed by one process at a time on the embedded adapter.
- Errors. `LogUnavailable` when the backend cannot be reached; nothing is half-written
  that a retry would duplicate. `LogMisconfigured` at start when the backend holds the
  log somewhere that cannot keep what the settings ask (JetStream: a memory stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from hubbub.eventlog.retention import PositionExpired
from hubbub.kernel.events import Event

__all__ = [
    "AppendResult",
    "EventLog",
    "GroupStats",
    "LogMisconfigured",
    "LogStats",
    "LogUnavailable",
    "PositionExpired",
    "Record",
    "TopicStats",
]


class LogUnavailable(RuntimeError):
    """The log's backend cannot be reached or refused the write."""


class LogMisconfigured(RuntimeError):
    """The backend's configuration cannot keep what the settings ask; the message says
    what to change."""


class Record(msgspec.Struct, frozen=True):
    topic: str
    position: int
    event: Event


class AppendResult(msgspec.Struct):
    appended: int = 0
    duplicates: int = 0
    duplicate_ids: list[str] = []


class TopicStats(msgspec.Struct, frozen=True):
    """`count` is the events retention has kept; `last_position` the last ever appended."""

    topic: str
    count: int
    last_position: int


class GroupStats(msgspec.Struct, frozen=True):
    group: str
    topic: str
    position: int
    lag: int


class LogStats(msgspec.Struct, frozen=True):
    backend: str
    topics: list[TopicStats]
    groups: list[GroupStats]


class EventLog(Protocol):
    """See the module docstring for the contract."""

    async def append(self, events: Sequence[Event]) -> AppendResult:
        """Append a batch, skipping ids already written; returns the counts."""
        ...

    async def read(self, topic: str, position: int = 1, limit: int = 1000) -> list[Record]:
        """Up to `limit` kept records of `topic` with position >= `position`, in order;
        PositionExpired when retention removed `position` (> 1)."""
        ...

    async def fetch(
        self, group: str, topic: str, limit: int = 1000, wait: float = 0.0
    ) -> list[Record]:
        """The group's next records; waits up to `wait` seconds when there are none;
        PositionExpired when retention removed the group's next position."""
        ...

    async def commit(self, group: str, topic: str, position: int) -> None:
        """Make `position` (and all before it) the group's durable position in `topic`."""
        ...

    async def committed(self, group: str, topic: str) -> int:
        """The group's committed position in `topic`, 0 when it has none."""
        ...

    async def stats(self) -> LogStats:
        """Per-topic counts and last positions, and every group's position and lag."""
        ...

    async def close(self) -> None: ...
