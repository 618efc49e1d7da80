"""The scale-out rollup store: the same tables in PostgreSQL.

A batch's page and hashtag deltas are copied into temporary tables and added to every
tier of the rollups with `INSERT ... SELECT ... ON CONFLICT DO UPDATE`; the small ones
(languages, totals) go in row by row; and the positions are written, in one transaction, as
in the DuckDB store. Reads (reports) take a pooled connection each, so they run beside
the worker. The report queries are written once for both stores; `?` placeholders are
turned into psycopg's `%s` here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from hubbub.analytics.ports import RejectedBatch, StalePositions
from hubbub.analytics.rollups import (
    GLOBAL_COUNTERS,
    TIERED,
    TIERS,
    Contribution,
    Deltas,
    global_backfills,
    prune_statements,
    schema,
    tier_upserts,
)

SCHEMA = (
    *schema("BYTEA"),
    # The primary key (key, minute) finds one key's rows; top lists read every key of a
    # time range, through this.
    *(
        f"CREATE INDEX IF NOT EXISTS {key}_{tier}_minute ON {key}_{tier} (minute)"
        for key in TIERED
        for tier, _ in TIERS
    ),
)

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Contribution).decode


def _upsert(table: str, key: tuple[str, ...], values: tuple[str, ...]) -> str:
    """The statement adding one row of deltas to `table` (identifiers are ours)."""
    columns = (*key, *values)
    adds = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in values)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {adds}"
    )


_LANG = _upsert("lang_minute", ("lang", "source", "minute"), ("posts",))
_SLOT = _upsert("slot_halfhour", ("scope", "half"), ("posts", "engagement"))
_GLOBAL = {tier: _upsert(f"global_{tier}", ("minute",), GLOBAL_COUNTERS) for tier, _ in TIERS}


LIVE_SCHEMA = "rollups"


@contextlib.contextmanager
def _rejecting_bad_values() -> Iterator[None]:
    """PostgreSQL's errors about a value (out of range, a NUL in text) as `RejectedBatch`:
    folded again, the batch would fail the same way."""
    try:
        yield
    except psycopg.DataError as error:
        raise RejectedBatch(f"{type(error).__name__}: {error}") from error


class PostgresRollups:
    """Rollups in one schema of a PostgreSQL database (`rollups`; a rebuild fills
    another, then swaps the names). Several readers, and writers fenced by positions."""

    def __init__(
        self, conninfo: str, *, schema: str = LIVE_SCHEMA, max_connections: int = 4
    ) -> None:
        self.schema = schema
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_connections,
            open=False,
            # Names resolve through the search path, so a swap of schemas reaches every
            # connection's next statement.
            kwargs={"autocommit": True, "options": f"-c search_path={schema}"},
        )
        self._pool.open(wait=True, timeout=10)
        with self._pool.connection() as conn, conn.transaction():
            existing = {
                name
                for (name,) in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    [schema],
                )
            }
            # Tables added since the database was made are added, and filled from it.
            for statement in (*SCHEMA, *global_backfills(existing)):
                conn.execute(statement)

    def positions(self) -> dict[str, int]:
        return {
            topic: int(p)
            for topic, p in self.query("SELECT topic, position FROM consumer_position")
        }

    def contributions(self, posts: set[str]) -> dict[str, Contribution]:
        if not posts:
            return {}
        with _rejecting_bad_values():
            rows = self.query(
                "SELECT post, record FROM post_contribution WHERE post = ANY(?)", [list(posts)]
            )
        return {post: _decode(record) for post, record in rows}

    def apply(self, deltas: Deltas, positions: dict[str, int], since: dict[str, int]) -> None:
        """Add the deltas and move the positions, all or nothing; `StalePositions` if the
        stored positions are no longer `since`. Writers take turns on the positions."""
        with (
            _rejecting_bad_values(),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cursor,
        ):
            cursor.execute("LOCK TABLE consumer_position IN EXCLUSIVE MODE")
            stored: dict[str, int] = dict(
                cursor.execute("SELECT topic, position FROM consumer_position")
            )
            if any(stored.get(topic, 0) != since.get(topic, 0) for topic in positions):
                raise StalePositions(f"positions moved to {stored}, the batch read after {since}")
            for key in TIERED:
                columns = deltas.columns(key)
                if not columns["minute"]:
                    continue
                cursor.execute(
                    f"CREATE TEMPORARY TABLE delta_{key} (LIKE {key}_minute) ON COMMIT DROP"
                )
                with cursor.copy(f"COPY delta_{key} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in zip(*columns.values(), strict=True):
                        copy.write_row(row)
                for statement in tier_upserts(key, f"delta_{key}"):
                    cursor.execute(statement)
            cursor.executemany(_LANG, [(*key, n) for key, n in deltas.langs.items()])
            cursor.executemany(_SLOT, [(*key, *n) for key, n in deltas.slots.items()])
            for tier, minutes in TIERS:
                rows = deltas.total_rows(minutes)
                cursor.executemany(
                    _GLOBAL[tier], [(minute, *sums) for minute, sums in rows.items()]
                )
            cursor.executemany(
                "INSERT INTO post_contribution VALUES (%s, %s, %s)"
                " ON CONFLICT (post) DO UPDATE SET record = excluded.record",
                [(post, c.minute, _encode(c)) for post, c in deltas.contributions.items()],
            )
            cursor.executemany(
                "INSERT INTO tracked_term VALUES (%s, %s) ON CONFLICT DO NOTHING",
                list(deltas.tracked.items()),
            )
            cursor.executemany(
                "INSERT INTO consumer_position VALUES (%s, %s)"
                " ON CONFLICT (topic) DO UPDATE SET position = excluded.position",
                list(positions.items()),
            )

    def prune(self, horizons: dict[str, int]) -> int:
        """Delete each tier's rows before its horizon, and older post records."""
        deleted = 0
        with self._pool.connection() as conn:
            for statement, parameter in prune_statements(horizons):
                deleted += conn.execute(statement.replace("?", "%s"), [parameter]).rowcount
        return deleted

    def compact(self, *, force: bool = False) -> int:
        """Nothing to do: upserts keep one row per bucket, and indexes find them."""
        return 0

    def query(self, text: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a read query written with `?` placeholders."""
        with self._pool.connection() as conn:
            return conn.execute(text.replace("?", "%s"), parameters or []).fetchall()

    def promote(self) -> None:
        """Make this store's schema the live one, in one transaction: readers see the old
        rollups up to the swap and these from the next statement on; a live worker's
        next batch is fenced off by the positions and folds on from these."""
        if self.schema == LIVE_SCHEMA:
            return
        live, old = sql.Identifier(LIVE_SCHEMA), sql.Identifier(f"{LIVE_SCHEMA}_replaced")
        with self._pool.connection() as conn, conn.transaction():
            # A first rebuild, before any live rollups, has no schema to move aside.
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(live))
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(old))
            conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(live, old))
            conn.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(self.schema), live)
            )
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(old))
        self.schema = LIVE_SCHEMA

    def close(self) -> None:
        self._pool.close()


class PostgresStaging:
    """A rebuild's fresh schema in the same database; promoted by renaming schemas."""

    def __init__(self, conninfo: str) -> None:
        staging = f"{LIVE_SCHEMA}_rebuild"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(staging))
            )
        self.store = PostgresRollups(conninfo, schema=staging)

    def promote(self) -> str:
        self.store.promote()
        self.store.close()
        return f"schema {LIVE_SCHEMA}"

    def discard(self) -> None:
        self.store.close()
