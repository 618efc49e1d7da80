"""The inbox: what a team did with each post that reached a channel's inbox (who it is
assigned to, its tags, whether it is read and done). The post itself is its match
(`listening_matches`, search `inbox:CHANNEL`); a post nobody touched has no row here.

Revision ID: l0002
Revises: l0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "l0002"
down_revision = "l0001"


def upgrade() -> None:
    op.create_table(
        "listening_inbox",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(64), primary_key=True),
        sa.Column("post", sa.String(512), primary_key=True),
        sa.Column("assignee", sa.String(255)),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("read", sa.Boolean, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
    )
    op.create_index("listening_inbox_assignee", "listening_inbox", ["tenant", "assignee"])


def downgrade() -> None:
    op.drop_table("listening_inbox")
