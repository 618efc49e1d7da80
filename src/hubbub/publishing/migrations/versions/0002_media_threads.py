"""Images with alt text, and threads: a table of the tenants' media, and each post's
media and further parts.

Revision ID: p0002
Revises: p0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0002"
down_revision = "p0001"


def upgrade() -> None:
    op.create_table(
        "publishing_media",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("post", sa.String(32)),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("alt", sa.Text),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index("publishing_media_tenant", "publishing_media", ["tenant"])
    op.create_index("publishing_media_post", "publishing_media", ["post", "created_us"])
    # Nullable: the posts kept before this revision have neither (read as none).
    op.add_column("publishing_posts", sa.Column("media", sa.JSON))
    op.add_column("publishing_posts", sa.Column("thread", sa.JSON))


def downgrade() -> None:
    op.drop_column("publishing_posts", "thread")
    op.drop_column("publishing_posts", "media")
    op.drop_table("publishing_media")
