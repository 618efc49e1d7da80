"""The embedded rollup store: one DuckDB file, owned by the analytics worker.

Each batch of deltas is added to the rollup tables, and the consumer's log positions are
written, in one transaction: after a crash at any moment the file holds either the
whole batch and its positions or neither, so a restart neither loses nor repeats an
event. Deltas go in as Arrow tables, added to the rows they meet with
`INSERT ... ON CONFLICT DO UPDATE`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from hubbub.analytics.rollups import (
    GLOBAL_COUNTERS,
    TIERED,
    TIERS,
    Contribution,
    Deltas,
    schema,
    tier_upserts,
)

SCHEMA = (
    *schema("BLOB"),
    # A key's rows for a long window, found without reading the whole tier: DuckDB scans
    # by column and prunes by zone maps, which a key scattered over the year defeats, and
    # it uses an index for `key = ?` only when the index is on that column alone. Minute
    # windows are short, so time pruning serves the minute tier.
    *(
        f"CREATE INDEX IF NOT EXISTS {key}_{tier}_key ON {key}_{tier} ({key})"
        for key in TIERED
        for tier, _ in TIERS[1:]
    ),
)

_add_totals = ", ".join(
    f"{name} = global_minute.{name} + excluded.{name}" for name in GLOBAL_COUNTERS
)
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Contribution).decode


class DuckDBRollups:
    """Rollups in a DuckDB file; one writer process at a time (DuckDB's rule)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = duckdb.connect(str(path))
        self._writing = threading.Lock()  # close() waits for a batch being applied
        for statement in SCHEMA:
            self._db.execute(statement)

    def positions(self) -> dict[str, int]:
        """The last log position folded, per topic."""
        rows = self.query("SELECT topic, position FROM consumer_position")
        return {topic: int(position) for topic, position in rows}

    def contributions(self, posts: set[str]) -> dict[str, Contribution]:
        """What these posts added so far (those never seen are left out)."""
        if not posts:
            return {}
        cursor = self._db.cursor()
        try:
            cursor.register("wanted_posts", pa.table({"post": list(posts)}))
            rows = cursor.execute(
                "SELECT c.post, c.record FROM post_contribution c"
                " JOIN wanted_posts w ON c.post = w.post"
            ).fetchall()
        finally:
            cursor.close()
        return {post: _decode(record) for post, record in rows}

    def apply(self, deltas: Deltas, positions: dict[str, int]) -> None:
        """Add the deltas and move the positions, all or nothing."""
        with self._writing:
            self._apply(deltas, positions)

    def _apply(self, deltas: Deltas, positions: dict[str, int]) -> None:
        db = self._db
        db.begin()
        try:
            for key in TIERED:
                columns = deltas.columns(key)
                if columns["minute"]:
                    db.register("delta_rows", pa.table(columns))
                    try:
                        for statement in tier_upserts(key, "delta_rows"):
                            db.execute(statement)
                    finally:
                        db.unregister("delta_rows")
            self._upsert(
                "lang_minute",
                {
                    "lang": [lang for lang, _, _ in deltas.langs],
                    "source": [source for _, source, _ in deltas.langs],
                    "minute": [minute for _, _, minute in deltas.langs],
                    "posts": list(deltas.langs.values()),
                },
                "(lang, source, minute)",
                "posts = lang_minute.posts + excluded.posts",
            )
            self._upsert(
                "global_minute",
                {
                    "minute": list(deltas.totals),
                    **{
                        name: [counts.get(name, 0) for counts in deltas.totals.values()]
                        for name in GLOBAL_COUNTERS
                    },
                },
                "(minute)",
                _add_totals,
            )
            if deltas.contributions:
                records = pa.table(
                    {
                        "post": list(deltas.contributions),
                        "record": [_encode(c) for c in deltas.contributions.values()],
                    }
                )
                db.register("delta_posts", records)
                db.execute("INSERT OR REPLACE INTO post_contribution SELECT * FROM delta_posts")
                db.unregister("delta_posts")
            for topic, position in positions.items():
                db.execute(
                    "INSERT OR REPLACE INTO consumer_position VALUES (?, ?)", [topic, position]
                )
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def _upsert(self, table: str, columns: dict[str, list[Any]], key: str, update: str) -> None:
        if not next(iter(columns.values())):
            return
        self._db.register("delta_rows", pa.table(columns))
        try:
            names = ", ".join(columns)
            self._db.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM delta_rows"
                f" ON CONFLICT {key} DO UPDATE SET {update}"
            )
        finally:
            self._db.unregister("delta_rows")

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a read query (reports, checks), on a cursor of its own: reads may run
        in other threads while the worker writes, each seeing committed batches only."""
        cursor = self._db.cursor()
        try:
            return cursor.execute(sql, parameters or []).fetchall()
        finally:
            cursor.close()

    def close(self) -> None:
        with self._writing:
            self._db.close()
