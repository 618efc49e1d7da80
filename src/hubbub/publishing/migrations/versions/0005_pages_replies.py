"""Each channel's page id as ingest names it (its account's DID or URL), so listening
knows which posts mention the tenant; and the post a post replies to.

Revision ID: p0005
Revises: p0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0005"
down_revision = "p0004"


def upgrade() -> None:
    op.add_column(
        "publishing_channels",
        sa.Column("page", sa.String(2048), nullable=False, server_default=""),
    )
    op.add_column("publishing_posts", sa.Column("reply_to", sa.String(2048)))


def downgrade() -> None:
    op.drop_column("publishing_posts", "reply_to")
    op.drop_column("publishing_channels", "page")
