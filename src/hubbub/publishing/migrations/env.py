"""Alembic's entry point: runs publishing's migrations on the connection its store hands
over, with a version table of its own (the relational database is shared with the
gateway's tenants and people, whose migrations are separate)."""

from __future__ import annotations

from alembic import context

from hubbub.publishing.sql import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
