"""Queues, recurring posts, drafts and each job's history: a channel's weekly slots; a
series per recurring post and channel, and the occurrence each job publishes (a post and
channel now have one job per occurrence, each unique); drafts per tenant and author;
and the history of every job's states.

Revision ID: p0003
Revises: p0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0003"
down_revision = "p0002"
# SQLite keeps an unnamed UNIQUE under no name: batch mode names it by this convention
# when it copies the table, so it can be dropped.
NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
POSTGRES_UNIQUE = "publishing_jobs_post_version_channel_key"
HISTORY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("publishing_channels", sa.Column("queue", sa.Text))
    _occurrences()
    op.create_table(
        "publishing_series",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("post", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("rule", sa.String(512), nullable=False),
        sa.Column("start_wall", sa.String(32), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("through_us", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_index("publishing_series_due", "publishing_series", ["state", "through_us"])
    op.create_index("publishing_series_tenant", "publishing_series", ["tenant", "post"])
    op.create_table(
        "publishing_drafts",
        sa.Column("tenant", sa.String(32), primary_key=True),
        sa.Column("author", sa.String(255), primary_key=True),
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "publishing_drafts_newest", "publishing_drafts", ["tenant", "author", "updated_us"]
    )
    op.create_table(
        "publishing_history",
        sa.Column("id", HISTORY_ID, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("post", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_index("publishing_history_post", "publishing_history", ["tenant", "post", "id"])
    op.create_index("publishing_history_job", "publishing_history", ["job"])


def _occurrences() -> None:
    """Jobs name their series and occurrence (0: a post that does not recur); a post,
    version and channel are unique with the occurrence, one job for each."""
    series = sa.Column("series", sa.String(32))
    occurrence = sa.Column("occurrence_us", sa.BigInteger, nullable=False, server_default="0")
    columns = ["post", "version", "channel", "occurrence_us"]
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "publishing_jobs", naming_convention=NAMES, recreate="always"
        ) as batch:
            batch.add_column(series)
            batch.add_column(occurrence)
            batch.drop_constraint("uq_publishing_jobs_post", type_="unique")
            batch.create_unique_constraint("publishing_jobs_occurrence", columns)
        return
    op.add_column("publishing_jobs", series)
    op.add_column("publishing_jobs", occurrence)
    op.drop_constraint(POSTGRES_UNIQUE, "publishing_jobs", type_="unique")
    op.create_unique_constraint("publishing_jobs_occurrence", "publishing_jobs", columns)


def downgrade() -> None:
    op.drop_table("publishing_history")
    op.drop_table("publishing_drafts")
    op.drop_table("publishing_series")
    op.drop_constraint("publishing_jobs_occurrence", "publishing_jobs", type_="unique")
    op.drop_column("publishing_jobs", "occurrence_us")
    op.drop_column("publishing_jobs", "series")
    op.drop_column("publishing_channels", "queue")
