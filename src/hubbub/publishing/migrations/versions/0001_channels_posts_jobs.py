"""Channels, posts and publish jobs.

Revision ID: p0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "publishing_channels",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(32), nullable=False, index=True),
        sa.Column("network", sa.String(16), nullable=False),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("service", sa.String(2048), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("limits", sa.JSON, nullable=False),
        sa.Column("sealed_credentials", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("tenant", "network", "account"),
    )
    op.create_table(
        "publishing_posts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("tenant", sa.String(32), nullable=False, index=True),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("variants", sa.JSON, nullable=False),
        sa.Column("language", sa.String(16)),
        sa.Column("spoiler", sa.Text),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "publishing_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(32), nullable=False, index=True),
        sa.Column("post", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("due_us", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("check_first", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(64)),
        sa.Column("lease_until_us", sa.BigInteger),
        sa.Column("sent_us", sa.BigInteger),
        sa.Column("remote_id", sa.String(512)),
        sa.Column("remote_url", sa.String(2048)),
        sa.Column("error", sa.Text),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("post", "version", "channel"),
    )
    op.create_index("publishing_jobs_due", "publishing_jobs", ["state", "due_us"])
    op.create_index("publishing_jobs_lease", "publishing_jobs", ["state", "lease_until_us"])


def downgrade() -> None:
    op.drop_table("publishing_jobs")
    op.drop_table("publishing_posts")
    op.drop_table("publishing_channels")
