"""Each person's calendar feed generation (a new address ends the old one), and the
people of every tenant as the log tells them (`PersonChanged`), with where that fold has
read the log to.

Revision ID: p0006
Revises: p0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0006"
down_revision = "p0005"


def upgrade() -> None:
    op.create_table(
        "publishing_feeds",
        sa.Column("tenant", sa.String(32), primary_key=True),
        sa.Column("person", sa.String(255), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
    )
    op.create_table(
        "publishing_people",
        sa.Column("tenant", sa.String(32), primary_key=True),
        sa.Column("user", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "publishing_positions",
        sa.Column("topic", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("publishing_positions")
    op.drop_table("publishing_people")
    op.drop_table("publishing_feeds")
