"""The event log port: the durable, replayable source of truth every service reads.

Contract, which every adapter meets (tests/contract/test_eventlog.py checks it):

- Topics. Each event goes to the topic of its type (`hubbub.kernel.events.topic_of`).
- Positions. Within a topic, events get dense positions 1, 2, 3, ... in append order.
  Order across topics is not defined.
- Idempotent append. `append` writes a batch and skips every event whose id is
  already in the log or earlier in the same batch, counting it as a duplicate. The
  embedded adapter remembers every id; the JetStream adapter remembers the ids of the
  last `dedupe_window` events of each topic (like JetStream's own duplicate window),
  which covers every redelivery a connector makes.
- Atomicity. A batch is written whole or not at all (SQLite); on JetStream each packed
  message is atomic and retrying the same call writes nothing twice.
- Replay. `read(topic, position)` returns events from any position, however old.
- Consumer groups. `fetch(group, topic)` returns the events after the last one this
  process fetched for the group, starting after the group's committed position.
  `commit` makes a position durable: a new process of the same group resumes right
  after it. A group is consumed by one process at a time on the embedded adapter.
- Errors. `LogUnavailable` when the backend cannot be reached; nothing is half-written
  that a retry would duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from hubbub.kernel.events import Event


class LogUnavailable(RuntimeError):
    """The log's backend cannot be reached or refused the write."""


class Record(msgspec.Struct, frozen=True):
    topic: str
    position: int
    event: Event


class AppendResult(msgspec.Struct):
    appended: int = 0
    duplicates: int = 0
    duplicate_ids: list[str] = []


class TopicStats(msgspec.Struct, frozen=True):
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
        """Up to `limit` records of `topic` with position >= `position`, in order."""
        ...

    async def fetch(
        self, group: str, topic: str, limit: int = 1000, wait: float = 0.0
    ) -> list[Record]:
        """The group's next records; waits up to `wait` seconds when there are none."""
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
