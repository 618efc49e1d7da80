"""How a service opens its relational store (SQLAlchemy Core): SQLite embedded, or
PostgreSQL at scale, brought to the service's newest schema by its own Alembic
migrations before anything else is done."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATING_LOCK: Final = "hubbub: migrating"
"""Named by a PostgreSQL advisory lock while a process migrates a database."""


def migrate(engine: sa.Engine, migrations: Path) -> None:
    """Bring the database to the newest schema of the migrations in `migrations`. On
    PostgreSQL the migration holds an advisory lock until it commits: replicas starting
    together (a first start, a release with a migration) take turns, and those after the
    first find the schema done, rather than all but one failing on a duplicate key."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": MIGRATING_LOCK}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_engine(url: str, migrations: Path) -> sa.Engine:
    """An engine on `url`, its schema migrated. On SQLite: WAL, so readers go on while
    one writes and several processes share the file; commits synced at checkpoints
    rather than each time (a crash of the machine may lose the last changes, never
    corrupt them); and a wait on a writer rather than an error."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine, migrations)
    return engine


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    # The wait first: turning WAL on takes the file's lock, and roles starting together
    # (`hubbub serve`) open it at once; without the wait one of them fails "locked".
    cursor = connection.cursor()
    for pragma in ("busy_timeout=10000", "journal_mode=WAL", "synchronous=NORMAL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def move_positions(
    db: sa.Connection,
    positions: sa.Table,
    reached: Mapping[str, int],
    read_from: Mapping[str, int],
    stale: type[Exception],
) -> None:
    """Move each log position a fold read from (a row of `positions`: `topic`,
    `position`) to where it reached, only where it is still what the fold read: a
    compare-and-set in the fold's transaction, which also takes the write lock (rows on
    PostgreSQL), so a second worker's fold of the same records raises `stale`. A topic
    the fold found no position for is inserted (a row made meanwhile by another worker
    fails the insert, which the caller takes as `stale` too)."""
    for topic in sorted(set(reached) | set(read_from)):
        was = read_from.get(topic, 0)
        now = reached.get(topic, was)
        if topic not in read_from:
            db.execute(positions.insert().values(topic=topic, position=now))
            continue
        moved = db.execute(
            positions.update()
            .where((positions.c.topic == topic) & (positions.c.position == was))
            .values(position=now)
        )
        if moved.rowcount != 1:
            raise stale(f"the position in {topic} is no longer {was}")
