"""A small day of posts, likes and a delete whose rollups the reports tests know by heart."""

from __future__ import annotations

from datetime import UTC, datetime

from hubbub.kernel.events import EngagementRecorded, Event, PostDeleted, PostPublished

# 2026-03-29 is the day Europe/Paris moves to summer time: 01:00 UTC is 03:00 there.
DAY = datetime(2026, 3, 29, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> int:
    return int(DAY.replace(hour=hour, minute=minute).timestamp() * 1_000_000)


def post(n: int, author: str, ts: int, tags: list[str], mentions: list[str] = []) -> Event:  # noqa: B006
    return PostPublished(
        id=f"p{n}", key=author, ts=ts, source="jetstream", post=f"post{n}", author=author,
        text="…", tags=tags, mentions=mentions,
    )  # fmt: skip


def like(n: int, author: str, ts: int, delta: int = 1) -> Event:
    return EngagementRecorded(
        id=f"l{n}", key=author, ts=ts, source="jetstream", kind="like", post="post1",
        post_author=author, actor=f"fan{n}", delta=delta,
    )  # fmt: skip


EVENTS = [
    post(1, "alice", at(0, 10), ["python", "duckdb"], ["bob"]),
    post(2, "alice", at(0, 50), ["python"]),
    post(3, "bob", at(1, 5), ["python", "rust"], ["alice"]),
    post(4, "bob", at(2, 30), ["rust"]),
    post(5, "carol", at(2, 31), ["python"]),
    PostDeleted(id="d5", key="carol", ts=at(3), source="jetstream", post="post5", author="carol"),
    like(1, "alice", at(0, 11)),
    like(2, "alice", at(1, 20)),
    like(3, "alice", at(1, 21), -1),
    like(4, "bob", at(2, 40)),
]
