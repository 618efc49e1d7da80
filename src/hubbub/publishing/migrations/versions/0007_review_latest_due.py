"""A review's latest planned moment (`latest_due_us`: the last of its channels' own times,
or its `due_us` when it has none), indexed with its tenant, so the calendar finds the
reviews near a span without reading every review's plan; and a channel's jobs by due
time, for the language of its latest posts.

Existing reviews get it from their plan here, in Python, so it works on either database.

Revision ID: p0007
Revises: p0006
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "p0007"
down_revision = "p0006"
AT_ONCE = 500


def upgrade() -> None:
    op.add_column("publishing_reviews", sa.Column("latest_due_us", sa.BigInteger))
    reviews = sa.table(
        "publishing_reviews",
        sa.column("post", sa.String),
        sa.column("plan", sa.JSON),
        sa.column("due_us", sa.BigInteger),
        sa.column("latest_due_us", sa.BigInteger),
    )
    db = op.get_bind()
    after = ""
    while True:
        rows = db.execute(
            sa.select(reviews.c.post, reviews.c.plan, reviews.c.due_us)
            .where(reviews.c.post > after)
            .order_by(reviews.c.post)
            .limit(AT_ONCE)
        ).all()
        if not rows:
            break
        kept = [{"key": row.post, "latest": latest_due(row.plan, row.due_us)} for row in rows]
        db.execute(
            reviews.update()
            .where(reviews.c.post == sa.bindparam("key"))
            .values(latest_due_us=sa.bindparam("latest")),
            kept,
        )
        after = rows[-1].post
    op.create_index("publishing_reviews_latest", "publishing_reviews", ["tenant", "latest_due_us"])
    op.create_index("publishing_jobs_channel", "publishing_jobs", ["channel", "due_us"])


def latest_due(plan: Any, due_us: int | None) -> int | None:
    """The latest of the plan's channels' own moments, or `due_us` without them."""
    said = json.loads(plan) if isinstance(plan, str) else plan
    dues = (said or {}).get("dues") if isinstance(said, dict) else None
    moments = [due for due in (dues or {}).values() if isinstance(due, int)]
    return max(moments) if moments else due_us


def downgrade() -> None:
    op.drop_index("publishing_jobs_channel", "publishing_jobs")
    op.drop_index("publishing_reviews_latest", "publishing_reviews")
    op.drop_column("publishing_reviews", "latest_due_us")
