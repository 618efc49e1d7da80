"""Alembic's entry point: runs listening's migrations on the connection its store hands
over, with a version table of its own (its database may be shared with others)."""

from __future__ import annotations

from alembic import context

from hubbub.listening.sql import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
