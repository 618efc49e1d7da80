"""What the rollup stores' tests share: the stores' shape, a busy two hours of events,
and every counter a report can read, to compare a store with another."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.postgres import PostgresRollups
from hubbub.analytics.rollups import GLOBAL_TIERS, TIERED, TIERS, Contribution, Deltas
from hubbub.kernel.events import EngagementRecorded, Event, PostDeleted, PostEdited, PostPublished
from tests.conftest import postgres_database
from tests.support.reports import at


class Store(Protocol):
    def positions(self) -> dict[str, int]: ...
    def contributions(self, posts: set[str]) -> dict[str, Contribution]: ...
    def apply(self, deltas: Deltas, positions: dict[str, int], since: dict[str, int]) -> None: ...
    def prune(self, horizons: dict[str, int]) -> int: ...
    def compact(self, *, force: bool = False) -> int: ...
    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]: ...
    def close(self) -> None: ...


def posts(first: int, count: int) -> list[Event]:
    """Posts by alice numbered `first` on, a minute apart within hour 1."""
    return [
        PostPublished(
            id=f"p{n}", key="alice", ts=at(1, n % 60), source="jetstream", post=f"post{n}",
            author="alice", text="hello", tags=["ok"],
        )
        for n in range(first, first + count)
    ]  # fmt: skip


def activity() -> tuple[list[Event], list[Event]]:
    """Posts (some replies, some edited) over two hours, likes and reposts of them, and
    deletes of every third, a third of those deleted after an edit: (posts topic, others)."""
    posts: list[Event] = []
    others: list[Event] = []
    for n in range(60):
        author, ts = f"page{n % 7}", at(n % 2, n)
        posts.append(
            PostPublished(
                id=f"p{n}", key=author, ts=ts, source="jetstream", post=f"post{n}",
                author=author, text=f"post {n}", tags=[f"tag{n % 5}"],
                mentions=[f"page{(n + 1) % 7}"], langs=["en"],
                reply_parent="post0" if n % 4 == 0 else None,
            )
        )  # fmt: skip
        if n % 9 == 0:
            posts.append(
                PostEdited(
                    id=f"e{n}", key=author, ts=ts + 1, source="jetstream", post=f"post{n}",
                    author=author, text="edited", tags=["edited"],
                )
            )  # fmt: skip
        others.append(
            EngagementRecorded(
                id=f"l{n}", key=author, ts=ts + 2, source="jetstream",
                kind=("like", "repost", "reply")[n % 3], post=f"post{n}", post_author=author,
                actor=f"fan{n}", delta=1,
            )
        )  # fmt: skip
        if n % 3 == 0:
            others.append(
                PostDeleted(
                    id=f"d{n}", key=author, ts=ts + 3, source="jetstream", post=f"post{n}",
                    author=author,
                )
            )  # fmt: skip
    return posts, others


def everything(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every counter a report can read, rows with only zeros left out."""
    found = {
        table: store.query(
            f"SELECT minute, posts, replies, likes, reposts, deleted FROM {table}"
            " WHERE posts <> 0 OR replies <> 0 OR likes <> 0 OR reposts <> 0 OR deleted <> 0"
        )
        for table in ("global_minute", *GLOBAL_TIERS)
    }
    found["langs"] = store.query(
        "SELECT lang, source, minute, posts FROM lang_minute WHERE posts <> 0"
    )
    for key, counters in TIERED.items():
        for tier, _ in TIERS:
            sums = ", ".join(f"sum({name}) AS {name}" for name in counters)
            rows = store.query(
                f"SELECT {key}, minute, {sums} FROM {key}_{tier} GROUP BY {key}, minute"
            )
            found[f"{key}_{tier}"] = [
                tuple(int(v) if isinstance(v, int) else v for v in row)
                for row in rows
                if any(row[2:])
            ]
    return {name: sorted(rows) for name, rows in found.items()}


@contextmanager
def rollup_store(kind: Literal["duckdb", "postgres"], folder: Path, name: str) -> Iterator[Store]:
    """A fresh store: DuckDB in `folder`, or PostgreSQL in a database of its own (named
    after `name`, dropped after); closed when the block ends."""
    if kind == "duckdb":
        built: Store = DuckDBRollups(folder / "rollups.duckdb")
        try:
            yield built
        finally:
            built.close()
        return
    with postgres_database(name) as dsn:
        built = PostgresRollups(dsn)
        try:
            yield built
        finally:
            built.close()
