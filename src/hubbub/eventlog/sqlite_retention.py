"""Retention of the SQLite event log: whole expired segments go, control is compacted.

These functions run on the log's write connection, in its write thread, under its
write lock; each transaction is short (`_SEGMENTS_PER_STEP` segments) so appends wait
little behind them. See `hubbub.eventlog.retention` for what each topic keeps.

- Expiring removes the oldest segments of a topic while they are older than the
  topic's `max_age_s` (by the time they were appended) or the topic is over its
  `max_bytes`, with the ids of their events in `event_ids`: an event replayed after its
  segment expired is appended again. It stops at the first segment to keep, so only a
  prefix is ever removed, and `topics.last` keeps the numbering going.
- Compacting rewrites a topic as one event per segment, keeping at its position the
  latest event of each compaction key. Ids stay in `event_ids` (control is small), so
  a late retry of a superseded command cannot come back as the latest state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from hubbub.eventlog.packing import packed_ids
from hubbub.eventlog.retention import TopicRetention, compaction_key
from hubbub.kernel.events import AnyEvent, decode_many, encode_many
from hubbub.kernel.sqlite import WriteLock

T = TypeVar("T")

_SEGMENTS_PER_STEP = 200
_IDS_PER_STATEMENT = 30_000


def in_transaction(db: sqlite3.Connection, lock: WriteLock, work: Callable[[], T]) -> T:
    """Run `work` in one write transaction under the cross-process write lock."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite rolled back itself (a full disk): say why
                db.execute("ROLLBACK")
            raise
    return result


def expire(
    db: sqlite3.Connection, lock: WriteLock, topic: str, rule: TopicRetention, now_s: float
) -> int:
    """Remove the topic's expired prefix, a few segments per transaction; the events removed."""
    cutoff = now_s - rule.max_age_s if rule.max_age_s else None
    excess = _bytes_over(db, topic, rule.max_bytes)
    removed = 0
    while True:
        rows = db.execute(
            "SELECT last, appended, length(payload) FROM segments WHERE topic = ? "
            "ORDER BY last LIMIT ?",
            (topic, _SEGMENTS_PER_STEP),
        ).fetchall()
        through = 0
        for last, appended, size in rows:
            if not (excess > 0 or (cutoff is not None and appended < cutoff)):
                break
            through, excess = last, excess - size
        if not through:
            return removed
        removed += in_transaction(db, lock, partial(_remove_through, db, topic, through))


def _bytes_over(db: sqlite3.Connection, topic: str, max_bytes: int) -> int:
    """How many bytes the topic holds beyond `max_bytes` (0 when uncapped)."""
    if not max_bytes:
        return 0
    (total,) = db.execute(
        "SELECT coalesce(sum(length(payload)), 0) FROM segments WHERE topic = ?", (topic,)
    ).fetchone()
    return max(int(total) - max_bytes, 0)


def _remove_through(db: sqlite3.Connection, topic: str, last: int) -> int:
    """Delete the topic's segments up to position `last` and their ids; the events removed."""
    payloads = db.execute(
        "SELECT payload FROM segments WHERE topic = ? AND last <= ?", (topic, last)
    ).fetchall()
    ids = [event_id for (payload,) in payloads for event_id in packed_ids(payload)]
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = ids[start : start + _IDS_PER_STATEMENT]
        db.execute(f"DELETE FROM event_ids WHERE id IN ({','.join('?' * len(chunk))})", chunk)
    db.execute("DELETE FROM segments WHERE topic = ? AND last <= ?", (topic, last))
    return len(ids)


def compact(db: sqlite3.Connection, lock: WriteLock, topic: str) -> int:
    """Keep only the latest event of each compaction key; the events removed."""
    return in_transaction(db, lock, partial(_compact, db, topic))


def _compact(db: sqlite3.Connection, topic: str) -> int:
    rows = db.execute(
        "SELECT first, payload, appended FROM segments WHERE topic = ? ORDER BY last", (topic,)
    ).fetchall()
    latest: dict[str, tuple[int, AnyEvent, float]] = {}
    total = 0
    for first, payload, appended in rows:
        for offset, event in enumerate(decode_many(payload)):
            latest[compaction_key(event)] = (first + offset, event, appended)
            total += 1
    if total == len(latest) == len(rows):
        return 0
    db.execute("DELETE FROM segments WHERE topic = ?", (topic,))
    db.executemany(
        "INSERT INTO segments (topic, first, last, payload, appended) VALUES (?, ?, ?, ?, ?)",
        [
            (topic, position, position, encode_many([event]), appended)
            for position, event, appended in sorted(latest.values(), key=lambda kept: kept[0])
        ],
    )
    return total - len(latest)
