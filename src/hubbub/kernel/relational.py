"""How a service opens its relational store (SQLAlchemy Core): SQLite embedded, or
PostgreSQL at scale, brought to the service's newest schema by its own Alembic
migrations before anything else is done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config


def migrate(engine: sa.Engine, migrations: Path) -> None:
    """Bring the database to the newest schema of the migrations in `migrations`."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as connection:
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
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()
