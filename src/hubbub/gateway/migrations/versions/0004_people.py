"""People who sign in to the web app: a user's password hash, time zone, locale and the
moment before which its sessions are void (sign-out everywhere); one-time invitations.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("users") as table:
        table.add_column(sa.Column("password_hash", sa.String(200)))
        table.add_column(
            sa.Column("time_zone", sa.String(64), nullable=False, server_default="UTC")
        )
        table.add_column(sa.Column("locale", sa.String(16), nullable=False, server_default="en"))
        table.add_column(
            sa.Column("sessions_after", sa.BigInteger, nullable=False, server_default="0")
        )
    op.create_index("users_email", "users", ["email"])
    op.create_table(
        "invites",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
    )
    op.create_index("invites_tenant", "invites", ["tenant"])


def downgrade() -> None:
    op.drop_index("invites_tenant", "invites")
    op.drop_table("invites")
    op.drop_index("users_email", "users")
    with op.batch_alter_table("users") as table:
        for column in ("sessions_after", "locale", "time_zone", "password_hash"):
            table.drop_column(column)
