"""People, notifications, the email outbox and the log positions they were folded to.

Revision ID: n0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "n0001"
down_revision = None
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notifications_people",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(255), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "notifications_items",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("notice", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("link", sa.Text, nullable=False),
        sa.Column("post", sa.String(255), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("read_us", sa.BigInteger),
        sa.UniqueConstraint("tenant", "notice", "user", name="notifications_items_once"),
    )
    op.create_index("notifications_items_person", "notifications_items", ["tenant", "user", "id"])
    op.create_index(
        "notifications_items_unread", "notifications_items", ["tenant", "user", "read_us"]
    )
    op.create_index("notifications_items_read", "notifications_items", ["read_us"])
    op.create_table(
        "notifications_outbox",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("notification", sa.BigInteger, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("to", sa.String(320), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("due_us", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.String(64)),
        sa.Column("lease_until_us", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_index("notifications_outbox_due", "notifications_outbox", ["state", "due_us"])
    op.create_index("notifications_outbox_settled", "notifications_outbox", ["state", "updated_us"])
    op.create_table(
        "notifications_positions",
        sa.Column("topic", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notifications_positions")
    op.drop_table("notifications_outbox")
    op.drop_table("notifications_items")
    op.drop_table("notifications_people")
