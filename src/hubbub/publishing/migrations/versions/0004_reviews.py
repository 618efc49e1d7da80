"""Team workflow: approval workflows, each post version's review and the decisions on
it, comments, every post's audit trail, tags on posts, a pause on a channel's queue, and
a queue that takes the channel's best times to post.

Revision ID: p0004
Revises: p0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0004"
down_revision = "p0003"
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("publishing_posts", sa.Column("tags", sa.JSON))
    op.add_column(
        "publishing_channels",
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "publishing_channels",
        sa.Column("best_queue", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("publishing_channels", sa.Column("best_slots", sa.Text))
    op.add_column("publishing_channels", sa.Column("best_updated_us", sa.BigInteger))
    op.create_table(
        "publishing_workflows",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(32), nullable=False, index=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("channels", sa.JSON, nullable=False),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("tenant", "name", name="publishing_workflows_name"),
    )
    op.create_table(
        "publishing_reviews",
        sa.Column("post", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("submitted_by", sa.String(255), nullable=False, server_default=""),
        sa.Column("workflows", sa.JSON, nullable=False),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("due_us", sa.BigInteger),
        sa.Column("step_since_us", sa.BigInteger, nullable=False),
        sa.Column("reminded_us", sa.BigInteger),
        sa.Column("flagged_us", sa.BigInteger),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_index("publishing_reviews_tenant", "publishing_reviews", ["tenant", "state"])
    op.create_index("publishing_reviews_waiting", "publishing_reviews", ["state", "step_since_us"])
    op.create_table(
        "publishing_decisions",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("post", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("who", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("publishing_decisions_post", "publishing_decisions", ["post", "version"])
    op.create_table(
        "publishing_comments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("post", sa.String(32), nullable=False),
        sa.Column("parent", sa.String(32)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index("publishing_comments_post", "publishing_comments", ["tenant", "post"])
    op.create_table(
        "publishing_audit",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("post", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_index("publishing_audit_post", "publishing_audit", ["tenant", "post", "id"])
    op.create_table(
        "publishing_link_ends",
        sa.Column("post", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("before_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("publishing_link_ends")
    op.drop_table("publishing_audit")
    op.drop_table("publishing_comments")
    op.drop_table("publishing_decisions")
    op.drop_table("publishing_reviews")
    op.drop_table("publishing_workflows")
    op.drop_column("publishing_channels", "best_updated_us")
    op.drop_column("publishing_channels", "best_slots")
    op.drop_column("publishing_channels", "best_queue")
    op.drop_column("publishing_channels", "paused")
    op.drop_column("publishing_posts", "tags")
