"""The scale-out rollup store: the same tables in PostgreSQL.

A batch's page and hashtag deltas are copied into temporary tables and added to every
tier of the rollups with `INSERT ... SELECT ... ON CONFLICT DO UPDATE`; the small ones
(languages, totals) go in row by row; and the positions are written, in one transaction, as
in the DuckDB store. Reads (reports) take a pooled connection each, so they run beside
the worker. The report queries are written once for both stores; `?` placeholders are
turned into psycopg's `%s` here.
"""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg_pool import ConnectionPool

from hubbub.analytics.rollups import (
    GLOBAL_COUNTERS,
    TIERED,
    Contribution,
    Deltas,
    schema,
    tier_upserts,
)

SCHEMA = schema("BYTEA")

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
_GLOBAL = _upsert("global_minute", ("minute",), GLOBAL_COUNTERS)


class PostgresRollups:
    """Rollups in PostgreSQL; several readers, one writer (the analytics worker)."""

    def __init__(self, conninfo: str, *, max_connections: int = 4) -> None:
        self._pool = ConnectionPool(
            conninfo, min_size=1, max_size=max_connections, open=False, kwargs={"autocommit": True}
        )
        self._pool.open(wait=True, timeout=10)
        with self._pool.connection() as conn, conn.transaction():
            for statement in SCHEMA:
                conn.execute(statement)

    def positions(self) -> dict[str, int]:
        return {
            topic: int(p)
            for topic, p in self.query("SELECT topic, position FROM consumer_position")
        }

    def contributions(self, posts: set[str]) -> dict[str, Contribution]:
        if not posts:
            return {}
        rows = self.query(
            "SELECT post, record FROM post_contribution WHERE post = ANY(?)", [list(posts)]
        )
        return {post: _decode(record) for post, record in rows}

    def apply(self, deltas: Deltas, positions: dict[str, int]) -> None:
        """Add the deltas and move the positions, all or nothing."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
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
            cursor.executemany(
                _GLOBAL,
                [
                    (minute, *(counts.get(name, 0) for name in GLOBAL_COUNTERS))
                    for minute, counts in deltas.totals.items()
                ],
            )
            cursor.executemany(
                "INSERT INTO post_contribution VALUES (%s, %s)"
                " ON CONFLICT (post) DO UPDATE SET record = excluded.record",
                [(post, _encode(c)) for post, c in deltas.contributions.items()],
            )
            cursor.executemany(
                "INSERT INTO consumer_position VALUES (%s, %s)"
                " ON CONFLICT (topic) DO UPDATE SET position = excluded.position",
                list(positions.items()),
            )

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a read query written with `?` placeholders."""
        with self._pool.connection() as conn:
            return conn.execute(sql.replace("?", "%s"), parameters or []).fetchall()

    def close(self) -> None:
        self._pool.close()
