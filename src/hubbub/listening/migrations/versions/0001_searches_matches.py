"""Saved searches, their stored matches, and the log positions they were folded to.

Revision ID: l0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "l0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "listening_searches",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("terms", sa.Integer, nullable=False),
        sa.Column("costly", sa.Boolean, nullable=False),
        sa.Column("pages", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("from_position", sa.BigInteger, nullable=False),
        sa.Column("backfilled_to", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "listening_matches",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("search", sa.String(128), primary_key=True),
        sa.Column("post", sa.String(512), primary_key=True),
        sa.Column("author", sa.String(512), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("folded", sa.Text, nullable=False),
        sa.Column("langs", sa.JSON, nullable=False),
        sa.Column("links", sa.JSON, nullable=False),
        sa.Column("media", sa.Integer, nullable=False),
        sa.Column("reply_parent", sa.String(512)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
    )
    op.create_index(
        "listening_matches_newest", "listening_matches", ["tenant", "search", "position"]
    )
    op.create_index("listening_matches_post", "listening_matches", ["post"])
    op.create_index("listening_matches_created", "listening_matches", ["created_at"])
    op.create_table(
        "listening_positions",
        sa.Column("topic", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("listening_positions")
    op.drop_table("listening_matches")
    op.drop_table("listening_searches")
