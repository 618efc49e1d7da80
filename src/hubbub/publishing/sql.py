"""Channels, posts and publish jobs in the relational store (`JobStore`): SQLite embedded,
PostgreSQL at scale, through SQLAlchemy Core, with migrations of its own (Alembic).

Claiming is one statement: the due jobs are chosen and made the worker's in the same
`UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`. On PostgreSQL the choice takes
`FOR UPDATE SKIP LOCKED`, so replicas claiming at once each get other jobs without
waiting on one another; SQLite runs one writer at a time, which makes the statement
atomic there too.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from hubbub.kernel import relational
from hubbub.publishing.ports import (
    OPEN_REVIEWS,
    OPEN_STATES,
    UNATTACHED_MEDIA_US,
    Attachment,
    AuditEntry,
    Change,
    Channel,
    Comment,
    Conflict,
    Decision,
    Draft,
    Job,
    Limits,
    LostLease,
    Media,
    Member,
    NotFound,
    Outcome,
    Part,
    Plan,
    Post,
    Published,
    Release,
    Review,
    Series,
    StalePositions,
    Step,
    TooMany,
    Workflow,
)
from hubbub.publishing.tid import tid

MIGRATIONS: Final = Path(__file__).parent / "migrations"
VERSION_TABLE: Final = "publishing_alembic_version"
FINAL_STATES: Final = ("published", "failed", "missed", "cancelled")
FORGET_AT_ONCE: Final = 500
"""Forgotten jobs' histories dropped in one statement, at most."""
AUDITED_STATES: Final = ("scheduled", "held", "published", "failed", "missed", "cancelled")
"""The job changes a post's audit trail shows (not each claim and send of a job)."""
HELD_STATES: Final = ("claimed", "sending")
"""States in which a job is a worker's, while its lease lasts."""
metadata = sa.MetaData()
channels = sa.Table(
    "publishing_channels", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(32), nullable=False, index=True),
    sa.Column("network", sa.String(16), nullable=False),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("service", sa.String(2048), nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("limits", sa.JSON, nullable=False),
    sa.Column("sealed_credentials", sa.Text, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("queue", sa.Text),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("best_queue", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("best_slots", sa.Text),
    sa.Column("best_updated_us", sa.BigInteger),
    sa.Column("page", sa.String(2048), nullable=False, server_default=""),
    sa.UniqueConstraint("tenant", "network", "account"),
)  # fmt: skip
posts = sa.Table(
    "publishing_posts", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("tenant", sa.String(32), nullable=False, index=True),
    sa.Column("author", sa.String(255), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("variants", sa.JSON, nullable=False),
    sa.Column("language", sa.String(16)),
    sa.Column("spoiler", sa.Text),
    sa.Column("visibility", sa.String(16), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("media", sa.JSON),
    sa.Column("thread", sa.JSON),
    sa.Column("tags", sa.JSON),
    sa.Column("reply_to", sa.String(2048)),
)  # fmt: skip
media_table = sa.Table(
    "publishing_media", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(32), nullable=False),
    sa.Column("post", sa.String(32)),
    sa.Column("content_type", sa.String(32), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("alt", sa.Text),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Index("publishing_media_tenant", "tenant"),
    sa.Index("publishing_media_post", "post", "created_us"),
)  # fmt: skip
jobs = sa.Table(
    "publishing_jobs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(32), nullable=False, index=True),
    sa.Column("post", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("due_us", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("check_first", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(64)),
    sa.Column("lease_until_us", sa.BigInteger),
    sa.Column("sent_us", sa.BigInteger),
    sa.Column("remote_id", sa.String(512)),
    sa.Column("remote_url", sa.String(2048)),
    sa.Column("error", sa.Text),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.Column("series", sa.String(32)),
    sa.Column("occurrence_us", sa.BigInteger, nullable=False, server_default="0"),
    sa.UniqueConstraint("post", "version", "channel", "occurrence_us",
                        name="publishing_jobs_occurrence"),
    sa.Index("publishing_jobs_due", "state", "due_us"),
    sa.Index("publishing_jobs_lease", "state", "lease_until_us"),
    sa.Index("publishing_jobs_channel", "channel", "due_us"),
)  # fmt: skip
series_table = sa.Table(
    "publishing_series", metadata,
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
    sa.Index("publishing_series_due", "state", "through_us"),
    sa.Index("publishing_series_tenant", "tenant", "post"),
)  # fmt: skip
drafts_table = sa.Table(
    "publishing_drafts", metadata,
    sa.Column("tenant", sa.String(32), primary_key=True),
    sa.Column("author", sa.String(255), primary_key=True),
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.Index("publishing_drafts_newest", "tenant", "author", "updated_us"),
)  # fmt: skip
history = sa.Table(
    "publishing_history", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("job", sa.String(32), nullable=False),
    sa.Column("tenant", sa.String(32), nullable=False),
    sa.Column("post", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Index("publishing_history_post", "tenant", "post", "id"),
    sa.Index("publishing_history_job", "job"),
)  # fmt: skip

SERIAL: Final = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
workflows_table = sa.Table(
    "publishing_workflows", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(32), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("steps", sa.JSON, nullable=False),
    sa.Column("channels", sa.JSON, nullable=False),
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("tenant", "name", name="publishing_workflows_name"),
)  # fmt: skip
reviews_table = sa.Table(
    "publishing_reviews", metadata,
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
    sa.Column("latest_due_us", sa.BigInteger),
    sa.Index("publishing_reviews_tenant", "tenant", "state"),
    sa.Index("publishing_reviews_waiting", "state", "step_since_us"),
    sa.Index("publishing_reviews_latest", "tenant", "latest_due_us"),
)  # fmt: skip
decisions_table = sa.Table(
    "publishing_decisions", metadata,
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
    sa.Index("publishing_decisions_post", "post", "version"),
)  # fmt: skip
comments_table = sa.Table(
    "publishing_comments", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(32), nullable=False),
    sa.Column("post", sa.String(32), nullable=False),
    sa.Column("parent", sa.String(32)),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("author", sa.String(255), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Index("publishing_comments_post", "tenant", "post"),
)  # fmt: skip
audit_table = sa.Table(
    "publishing_audit", metadata,
    sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(32), nullable=False),
    sa.Column("post", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("action", sa.String(24), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Index("publishing_audit_post", "tenant", "post", "id"),
)  # fmt: skip
link_ends_table = sa.Table(
    "publishing_link_ends", metadata,
    sa.Column("post", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(32), nullable=False),
    sa.Column("before_us", sa.BigInteger, nullable=False),
)  # fmt: skip
feeds_table = sa.Table(
    "publishing_feeds", metadata,
    sa.Column("tenant", sa.String(32), primary_key=True),
    sa.Column("person", sa.String(255), primary_key=True),
    sa.Column("generation", sa.Integer, nullable=False),
)  # fmt: skip
people_table = sa.Table(
    "publishing_people", metadata,
    sa.Column("tenant", sa.String(32), primary_key=True),
    sa.Column("user", sa.String(255), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)  # fmt: skip
positions_table = sa.Table(
    "publishing_positions", metadata,
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)  # fmt: skip


def migrate(engine: sa.Engine) -> None:
    """Bring the database to publishing' newest schema."""
    relational.migrate(engine, MIGRATIONS)


class SqlJobStore:
    """See `hubbub.publishing.ports` for the contract."""

    def __init__(self, url: str) -> None:
        self._engine = relational.open_engine(url, MIGRATIONS)

    @classmethod
    def sqlite(cls, path: Path) -> SqlJobStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}")

    # Channels

    def add_channel(self, channel: Channel) -> Channel:
        row = {**vars(channel), "limits": vars(channel.limits), "created_us": 0}
        try:
            with self._engine.begin() as db:
                db.execute(channels.insert().values(row))
        except IntegrityError as error:
            raise ValueError(
                f"{channel.account} on {channel.network} is a channel of this tenant already"
            ) from error
        return channel

    def channels(self, tenant: str) -> list[Channel]:
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(channels).where(channels.c.tenant == tenant).order_by(channels.c.account)
            ).all()
        return [_channel(row) for row in rows]

    def all_channels(self) -> list[Channel]:
        with self._engine.connect() as db:
            rows = db.execute(sa.select(channels).order_by(channels.c.tenant, channels.c.id))
            return [_channel(row) for row in rows]

    def set_page(self, channel: str, page: str) -> None:
        with self._engine.begin() as db:
            db.execute(channels.update().where(channels.c.id == channel).values(page=page))

    def channel(self, tenant: str, channel: str) -> Channel:
        mine = (channels.c.id == channel) & (channels.c.tenant == tenant)
        with self._engine.connect() as db:
            row = db.execute(sa.select(channels).where(mine)).first()
        if row is None:
            raise NotFound(f"no channel {channel!r}")
        return _channel(row)

    def remove_channel(self, tenant: str, channel: str, now_us: int = 0) -> None:
        mine = (channels.c.id == channel) & (channels.c.tenant == tenant)
        with self._engine.begin() as db:
            if db.execute(channels.delete().where(mine)).rowcount == 0:
                raise NotFound(f"no channel {channel!r}")
            cancelled = db.execute(
                jobs.update()
                .where((jobs.c.channel == channel) & jobs.c.state.in_(("scheduled", "held")))
                .values(state="cancelled", error="its channel was removed", updated_us=now_us)
                .returning(*jobs.c)
            ).all()
            db.execute(
                series_table.update()
                .where((series_table.c.channel == channel) & (series_table.c.state == "active"))
                .values(state="cancelled", updated_us=now_us)
            )
            _log(db, [_job(row) for row in cancelled], now_us)

    def set_queue(
        self, tenant: str, channel: str, slots: str | None, best: bool | None = None
    ) -> Channel:
        mine = (channels.c.id == channel) & (channels.c.tenant == tenant)
        values: dict[str, Any] = {"queue": slots}
        if best is not None:
            values["best_queue"] = best
        with self._engine.begin() as db:
            row = db.execute(
                channels.update().where(mine).values(values).returning(*channels.c)
            ).first()
        if row is None:
            raise NotFound(f"no channel {channel!r}")
        return _channel(row)

    def keep_best_slots(self, channel: str, slots: str | None, now_us: int) -> None:
        with self._engine.begin() as db:
            db.execute(channels.update().where(channels.c.id == channel).values(
                best_slots=slots, best_updated_us=now_us))  # fmt: skip

    def stale_best_slots(self, before_us: int, limit: int) -> list[Channel]:
        stale = channels.c.best_queue & sa.or_(
            channels.c.best_updated_us.is_(None), channels.c.best_updated_us < before_us
        )
        with self._engine.connect() as db:
            rows = db.execute(sa.select(channels).where(stale).limit(limit)).all()
        return [_channel(row) for row in rows]

    # Posts and jobs

    def schedule(
        self,
        post: Post,
        dues: Mapping[str, int],
        now_us: int | None = None,
        queued: Mapping[str, Callable[[set[int]], int]] | None = None,
        audit: Sequence[AuditEntry] = (),
    ) -> list[Job]:
        queued = queued or {}
        at_us = now_us if now_us is not None else min(dues.values(), default=0)
        with self._engine.begin() as db:
            _keep_post(db, post, [*dues, *queued], at_us)
            _audit(db, audit)
            chosen = dict(dues)
            for channel, choose in queued.items():
                chosen[channel] = choose(_taken(db, channel))
            made = [_new_job(post, channel, due, at_us) for channel, due in chosen.items()]
            made = _insert_jobs(db, made, at_us)
        return made

    def start_series(
        self, post: Post, series: Sequence[Series], occurrences: Mapping[str, Sequence[int]],
        now_us: int, audit: Sequence[AuditEntry] = (),
    ) -> list[Job]:  # fmt: skip
        made = [
            _new_job(post, one.channel, due, now_us, one.id)
            for one in series
            for due in occurrences[one.channel]
        ]
        with self._engine.begin() as db:
            _keep_post(db, post, [one.channel for one in series], now_us)
            _audit(db, audit)
            db.execute(series_table.insert(), [vars(one) for one in series])
            made = _insert_jobs(db, made, now_us)
        return made

    def series_to_extend(self, before_us: int, limit: int) -> list[Series]:
        due = (series_table.c.state == "active") & (series_table.c.through_us < before_us)
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(series_table).where(due).order_by(series_table.c.through_us).limit(limit)
            ).all()
        return [Series(**row._mapping) for row in rows]

    def extend_series(self, series: Series, occurrences: Sequence[int], now_us: int) -> list[Job]:
        one = (series_table.c.id == series.id) & (series_table.c.channel == series.channel)
        unchanged = one & (series_table.c.through_us == series.through_us)
        unchanged &= series_table.c.state == "active"
        through = max(occurrences, default=series.through_us)
        state = "active" if occurrences else "ended"
        made = [_new_job(series, series.channel, due, now_us, series.id) for due in occurrences]
        with self._engine.begin() as db:
            moved = db.execute(
                series_table.update()
                .where(unchanged)
                .values(through_us=through, state=state, updated_us=now_us)
            ).rowcount
            if moved == 0:
                return []
            made = _insert_jobs(db, made, now_us)
        return made

    def series(self, tenant: str, series: str) -> list[Series]:
        mine = (series_table.c.id == series) & (series_table.c.tenant == tenant)
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(series_table).where(mine).order_by(series_table.c.channel)
            ).all()
        if not rows:
            raise NotFound(f"no series {series!r}")
        return [Series(**row._mapping) for row in rows]

    def cancel_series(self, tenant: str, series: str, now_us: int) -> list[Job]:
        mine = (series_table.c.id == series) & (series_table.c.tenant == tenant)
        with self._engine.begin() as db:
            stopped = db.execute(
                series_table.update()
                .where(mine)
                .values(
                    state=sa.case(
                        (series_table.c.state == "active", "cancelled"),
                        else_=series_table.c.state,
                    ),
                    updated_us=now_us,
                )
            ).rowcount
            if stopped == 0:
                raise NotFound(f"no series {series!r}")
            rows = db.execute(
                jobs.update()
                .where(
                    (jobs.c.series == series)
                    & (jobs.c.tenant == tenant)
                    & (jobs.c.state == "scheduled")
                )
                .values(state="cancelled", error="its series was cancelled", updated_us=now_us)
                .returning(*jobs.c)
            ).all()
            cancelled = [_job(row) for row in rows]
            _log(db, cancelled, now_us)
        return cancelled

    def history(self, tenant: str, post: str) -> list[Change]:
        mine = (history.c.tenant == tenant) & (history.c.post == post)
        columns = [history.c[name] for name in ("job", "channel", "state", "at_us", "error",
                                                 "attempts")]  # fmt: skip
        with self._engine.connect() as db:
            rows = db.execute(sa.select(*columns).where(mine).order_by(history.c.id)).all()
        if not rows:
            self.post(tenant, post)  # NotFound for another tenant's or none
        return [Change(**row._mapping) for row in rows]

    # Drafts

    def put_draft(self, draft: Draft, at_most: int) -> Draft:
        try:
            return self._put_draft(draft, at_most)
        except IntegrityError:  # the same draft saved at once from elsewhere: replace it
            return self._put_draft(draft, at_most)

    def _put_draft(self, draft: Draft, at_most: int) -> Draft:
        body = dict(draft.body)
        with self._engine.begin() as db:
            mine = _draft_of(draft.tenant, draft.author, draft.id)
            replaced = db.execute(
                drafts_table.update().where(mine).values(body=body, updated_us=draft.updated_us)
            ).rowcount
            if replaced:
                return draft
            kept = db.execute(
                sa.select(sa.func.count()).where(
                    (drafts_table.c.tenant == draft.tenant)
                    & (drafts_table.c.author == draft.author)
                )
            ).scalar_one()
            if kept >= at_most:
                raise TooMany(
                    f"you keep {kept} drafts, the most one may (HUBBUB_PUBLISH_DRAFTS_PER_AUTHOR):"
                    " delete or schedule one first"
                )
            db.execute(drafts_table.insert().values({**vars(draft), "body": body}))
        return draft

    def drafts(self, tenant: str, author: str) -> list[Draft]:
        theirs = (drafts_table.c.tenant == tenant) & (drafts_table.c.author == author)
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(drafts_table)
                .where(theirs)
                .order_by(drafts_table.c.updated_us.desc(), drafts_table.c.id)
            ).all()
        return [_draft(row) for row in rows]

    def draft(self, tenant: str, author: str, draft: str) -> Draft:
        with self._engine.connect() as db:
            row = db.execute(
                sa.select(drafts_table).where(_draft_of(tenant, author, draft))
            ).first()
        if row is None:
            raise NotFound(f"no draft {draft!r}")
        return _draft(row)

    def delete_draft(self, tenant: str, author: str, draft: str) -> bool:
        with self._engine.begin() as db:
            deleted = db.execute(drafts_table.delete().where(_draft_of(tenant, author, draft)))
        return bool(deleted.rowcount)

    def post(self, tenant: str, post: str) -> Post:
        mine = (posts.c.id == post) & (posts.c.tenant == tenant)
        with self._engine.connect() as db:
            row = db.execute(
                sa.select(posts).where(mine).order_by(posts.c.version.desc()).limit(1)
            ).first()
        if row is None:
            raise NotFound(f"no post {post!r}")
        return _post(row)

    def post_version(self, tenant: str, post: str, version: int) -> Post:
        mine = (posts.c.id == post) & (posts.c.tenant == tenant) & (posts.c.version == version)
        with self._engine.connect() as db:
            row = db.execute(sa.select(posts).where(mine)).first()
        if row is None:
            raise NotFound(f"no post {post!r} version {version}")
        return _post(row)

    def channel_language(self, tenant: str, channel: str, recent: int = 50) -> str | None:
        # A cancelled job's version was replaced or dropped: not what the channel posts.
        mine = (
            (jobs.c.tenant == tenant) & (jobs.c.channel == channel) & (jobs.c.state != "cancelled")
        )
        due = sa.func.max(jobs.c.due_us).label("due_us")
        latest = (
            sa.select(jobs.c.post, jobs.c.version, due)
            .where(mine)
            .group_by(jobs.c.post, jobs.c.version)
            .order_by(due.desc(), jobs.c.post.desc(), jobs.c.version.desc())
            .limit(recent)
            .subquery()
        )
        said = (
            sa.select(posts.c.language)
            .join(latest, (posts.c.id == latest.c.post) & (posts.c.version == latest.c.version))
            .where((posts.c.tenant == tenant) & (sa.func.coalesce(posts.c.language, "") != ""))
            .group_by(posts.c.language)
            .order_by(sa.func.count().desc(), sa.func.max(latest.c.due_us).desc(), posts.c.language)
            .limit(1)
        )
        with self._engine.connect() as db:
            found: str | None = db.execute(said).scalar()
        return found

    def post_jobs(self, tenant: str, post: str) -> list[Job]:
        mine = (jobs.c.tenant == tenant) & (jobs.c.post == post)
        with self._engine.connect() as db:
            rows = db.execute(sa.select(jobs).where(mine).order_by(jobs.c.due_us)).all()
        return [_job(row) for row in rows]

    def jobs(self, tenant: str, limit: int = 100) -> list[Job]:
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(jobs)
                .where(jobs.c.tenant == tenant)
                .order_by(jobs.c.due_us.desc(), jobs.c.id)
                .limit(limit)
            ).all()
        return [_job(row) for row in rows]

    def job(self, tenant: str, job: str) -> Job:
        with self._engine.connect() as db:
            row = db.execute(
                sa.select(jobs).where((jobs.c.id == job) & (jobs.c.tenant == tenant))
            ).first()
        if row is None:
            raise NotFound(f"no job {job!r}")
        return _job(row)

    def claim(self, worker: str, now_us: int, lease_s: float, limit: int) -> list[Job]:
        claimed: list[Job] = []
        # One indexed walk per kind of claimable job, each in due order, rather than one
        # query over all of them that sorts every due job: a publisher behind by 25,000
        # jobs spent its time sorting them at every claim. All in one transaction: on
        # SQLite each would take the database's one write lock again.
        params = {"holder": worker, "now_us": now_us, "lease_until": now_us + int(lease_s * 1e6)}
        with self._engine.begin() as db:
            for statement in _CLAIMING:
                if len(claimed) >= limit:
                    break
                found = db.execute(statement, {**params, "limit": limit - len(claimed)}).all()
                claimed += [_job(row) for row in found]
            _log(db, claimed, now_us)
        return sorted(claimed, key=lambda job: job.due_us)

    def _held(self, job: str, holder: str) -> Any:
        return (jobs.c.id == job) & (jobs.c.worker == holder) & jobs.c.state.in_(HELD_STATES)

    def sending(self, job: str, worker: str, now_us: int) -> Job:
        held = self.begin_sending(worker, [job], now_us)
        if not held:
            raise LostLease(f"job {job} is no longer {worker}'s")
        return held[0]

    def begin_sending(self, worker: str, jobs_: Sequence[str], now_us: int) -> list[Job]:
        if not jobs_:
            return []
        with self._engine.begin() as db:
            rows = db.execute(
                _BEGIN_SENDING, {"ids": list(jobs_), "holder": worker, "now_us": now_us}
            ).all()
            sending = [_job(row) for row in rows]
            _log(db, sending, now_us)
        return sending

    def settle(self, worker: str, outcomes: Sequence[Outcome], now_us: int) -> list[Job]:
        if not outcomes:
            return []
        # Four statements and one write per kind of outcome, whatever their number: the
        # jobs still the worker's are found and locked by a write (so no one claims them
        # between), each kind's columns are written at once (executemany), the rows are
        # read back, and their history appended at once (executemany).
        ids = [outcome.job for outcome in outcomes]
        with self._engine.begin() as db:
            held = {"ids": ids, "holder": worker, "now_us": now_us}
            mine = set(db.execute(_HOLDING, held).scalars())
            kinds: dict[str, list[dict[str, Any]]] = {}
            for outcome in outcomes:
                if outcome.job in mine:
                    kinds.setdefault(outcome.state, []).append(_outcome_params(outcome))
            for state, params in kinds.items():
                db.execute(_SETTLE[state], params)
            rows = db.execute(_JOBS_NAMED, {"ids": sorted(mine)}).all()
            settled = [_job(row) for row in rows]
            _log(db, settled, now_us)
        return settled

    def _settle_one(self, worker: str, outcome: Outcome, now_us: int) -> Job:
        changed = self.settle(worker, [outcome], now_us)
        if not changed:
            raise LostLease(f"job {outcome.job} is no longer {worker}'s")
        return changed[0]

    def published(self, job: str, worker: str, found: Published, now_us: int) -> Job:
        return self._settle_one(worker, Outcome(job, "published", found=found), now_us)

    def failed(self, job: str, worker: str, error: str, now_us: int) -> Job:
        return self._settle_one(worker, Outcome(job, "failed", error=error), now_us)

    def retry_later(self, job: str, worker: str, error: str, due_us: int, now_us: int) -> Job:
        return self._settle_one(worker, Outcome(job, "scheduled", error, due_us), now_us)

    def unknown(self, job: str, worker: str, error: str, due_us: int, now_us: int) -> Job:
        return self._settle_one(worker, Outcome(job, "unknown", error, due_us), now_us)

    def context(
        self, jobs_: Sequence[Job]
    ) -> tuple[dict[str, Channel], dict[tuple[str, int], Post]]:
        channel_ids = sorted({job.channel for job in jobs_})
        post_ids = sorted({job.post for job in jobs_})
        wanted: dict[tuple[str, int], Post] = {}
        with self._engine.connect() as db:
            channel_rows = db.execute(_CHANNELS_NAMED, {"ids": channel_ids})
            found = {row.id: _channel(row) for row in channel_rows}
            post_rows = db.execute(_POSTS_NAMED, {"ids": post_ids}).all()
        versions = {(row.id, row.version): _post(row) for row in post_rows}
        # Each is read as its job's tenant's: another tenant's channel or post is gone.
        mine = {}
        for job in jobs_:
            channel = found.get(job.channel)
            post = versions.get((job.post, job.version))
            if channel is not None and channel.tenant == job.tenant:
                mine[job.channel] = channel
            if post is not None and post.tenant == job.tenant:
                wanted[(job.post, job.version)] = post
        return mine, wanted

    def miss(self, now_us: int, late_us: int) -> list[Job]:
        overdue = (jobs.c.state == "scheduled") & (jobs.c.due_us < now_us - late_us)
        with self._engine.begin() as db:
            rows = db.execute(
                jobs.update()
                .where(overdue)
                .values(
                    state="missed",
                    updated_us=now_us,
                    error=f"due more than {late_us // 1_000_000} s before the platform could"
                    " publish it (HUBBUB_PUBLISH_MAX_LATE_S)",
                )
                .returning(*jobs.c)
            ).all()
            missed = [_job(row) for row in rows]
            _log(db, missed, now_us)
        return missed

    def cancel(
        self, tenant: str, job: str, now_us: int,
        audit: Callable[[Job], Sequence[AuditEntry]] | None = None,
    ) -> Job:  # fmt: skip
        return self._by_person(
            tenant, job, ("scheduled", "held"), now_us, audit, state="cancelled",
            error="cancelled",
        )  # fmt: skip

    def retry(
        self, tenant: str, job: str, now_us: int,
        audit: Callable[[Job], Sequence[AuditEntry]] | None = None,
    ) -> Job:  # fmt: skip
        found = self.job(tenant, job)
        with self._engine.connect() as db:
            newest = db.execute(
                sa.select(sa.func.max(posts.c.version)).where(posts.c.id == found.post)
            ).scalar()
            waiting = db.execute(
                sa.select(reviews_table.c.state).where(
                    (reviews_table.c.post == found.post) & reviews_table.c.state.in_(OPEN_REVIEWS)
                )
            ).scalar()
        if newest is not None and found.version != newest:
            raise Conflict(
                f"job {job} publishes version {found.version} of its post, which"
                f" version {newest} replaced: the newest is the one to publish"
            )
        if waiting is not None:
            raise Conflict(f"post {found.post} waits for its review: it is published once"
                           " approved")  # fmt: skip
        paused = self.channel(tenant, found.channel).paused if found.channel else False
        return self._by_person(
            tenant, job, ("failed", "missed", "cancelled"), now_us, audit,
            state="held" if paused else "scheduled", due_us=now_us, error=None, worker=None,
            lease_until_us=None, check_first=True,
        )  # fmt: skip

    def _by_person(
        self, tenant: str, job: str, states: tuple[str, ...], now_us: int,
        audit: Callable[[Job], Sequence[AuditEntry]] | None, **values: Any,
    ) -> Job:  # fmt: skip
        found = self.job(tenant, job)  # NotFound for another tenant's
        mine = (jobs.c.id == job) & (jobs.c.tenant == tenant) & jobs.c.state.in_(states)
        with self._engine.begin() as db:
            row = db.execute(
                jobs.update().where(mine).values(updated_us=now_us, **values).returning(*jobs.c)
            ).first()
            if row is None:
                raise ValueError(f"job {job} is {found.state}: only {_either(states)} jobs can")
            changed = _job(row)
            _log(db, [changed], now_us)
            if audit is not None:
                _audit(db, audit(changed))
        return changed

    def forget_before(self, before_us: int) -> int:
        """Drop finished jobs last changed before `before_us`, and posts left with none
        (but those whose review moved since), with their media, reviews, comments and
        audit trails."""
        old = jobs.c.state.in_(FINAL_STATES) & (jobs.c.updated_us < before_us)
        with self._engine.begin() as db:
            dropped = db.execute(jobs.delete().where(old).returning(jobs.c.id)).scalars().all()
            for start in range(0, len(dropped), FORGET_AT_ONCE):
                some = dropped[start : start + FORGET_AT_ONCE]
                db.execute(history.delete().where(history.c.job.in_(some)))
            kept = sa.select(jobs.c.post).where(jobs.c.post == posts.c.id)
            # A post waiting for its review has no jobs yet: it stays while its review
            # moved since `before_us`, or is still open for a time not that long past (a
            # campaign planned months ahead); one left longer goes with its review.
            still_open = reviews_table.c.state.in_(("in_review", "changes_requested")) & (
                reviews_table.c.due_us >= before_us
            )
            reviewed = sa.select(reviews_table.c.post).where(
                (reviews_table.c.post == posts.c.id)
                & sa.or_(reviews_table.c.updated_us >= before_us, still_open)
            )
            gone = (
                db.execute(
                    sa.select(posts.c.id).where(~sa.exists(kept) & ~sa.exists(reviewed)).distinct()
                )
                .scalars()
                .all()
            )
            for start in range(0, len(gone), FORGET_AT_ONCE):
                some = gone[start : start + FORGET_AT_ONCE]
                for table in (reviews_table, decisions_table, comments_table, audit_table,
                              link_ends_table):  # fmt: skip
                    db.execute(table.delete().where(table.c.post.in_(some)))
                db.execute(posts.delete().where(posts.c.id.in_(some)))
            named = sa.select(posts.c.id).where(posts.c.id == media_table.c.post)
            db.execute(
                media_table.delete().where(media_table.c.post.is_not(None) & ~sa.exists(named))
            )
        return len(dropped)

    # Media

    def add_media(self, media: Media, data: bytes) -> Media:
        unnamed = media_table.c.post.is_(None)
        stale = unnamed & (media_table.c.created_us < media.created_us - UNATTACHED_MEDIA_US)
        with self._engine.begin() as db:
            db.execute(media_table.delete().where(stale))
            db.execute(media_table.insert().values({**vars(media), "data": data}))
        return media

    def media(self, tenant: str, media: str) -> Media:
        described = [c for c in media_table.c if c.name != "data"]
        with self._engine.connect() as db:
            row = db.execute(sa.select(*described).where(_media_of(tenant, media))).first()
        if row is None:
            raise NotFound(f"no image {media!r}")
        return Media(**row._mapping)

    def media_data(self, tenant: str, media: str) -> bytes:
        with self._engine.connect() as db:
            data = db.execute(
                sa.select(media_table.c.data).where(_media_of(tenant, media))
            ).scalar()
        if data is None:
            raise NotFound(f"no image {media!r}")
        return bytes(data)

    # Team workflow: workflows, reviews, comments, audit trails, paused queues

    def workflows(self, tenant: str) -> list[Workflow]:
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(workflows_table)
                .where(workflows_table.c.tenant == tenant)
                .order_by(workflows_table.c.name)
            ).all()
        return [_workflow(row) for row in rows]

    def put_workflow(self, workflow: Workflow) -> Workflow:
        row = {
            "id": workflow.id, "tenant": workflow.tenant, "name": workflow.name,
            "steps": _steps_json(workflow.steps),
            "channels": list(workflow.channels), "roles": list(workflow.roles),
            "updated_us": workflow.updated_us,
        }  # fmt: skip
        same = workflows_table.c.id == workflow.id
        try:
            with self._engine.begin() as db:
                owner = db.execute(sa.select(workflows_table.c.tenant).where(same)).scalar()
                if owner is None:
                    db.execute(workflows_table.insert().values(row))
                elif owner != workflow.tenant:
                    raise NotFound(f"no workflow {workflow.id!r}")
                else:
                    db.execute(workflows_table.update().where(same).values(row))
        except IntegrityError as error:
            raise ValueError(f"a workflow named {workflow.name!r} exists already") from error
        return workflow

    def delete_workflow(self, tenant: str, workflow: str) -> bool:
        mine = (workflows_table.c.id == workflow) & (workflows_table.c.tenant == tenant)
        with self._engine.begin() as db:
            return bool(db.execute(workflows_table.delete().where(mine)).rowcount)

    def submit(self, post: Post, review: Review, audit: Sequence[AuditEntry]) -> None:
        with self._engine.begin() as db:
            _keep_post(db, post, review.plan.channels, review.updated_us)
            db.execute(reviews_table.insert().values(_review_row(review)))
            _audit(db, audit)

    def revise(
        self, post: Post, review: Review | None, release: Release | None,
        audit: Sequence[AuditEntry], now_us: int,
    ) -> tuple[list[Job], list[Job]]:  # fmt: skip
        mine = (jobs.c.post == post.id) & (jobs.c.tenant == post.tenant)
        with self._engine.begin() as db:
            # Writes first, so the rows are this transaction's before anything is checked:
            # a last approval deciding at once has committed its jobs (cancelled here) or
            # waits and finds its review gone; a publisher claiming at once has the job
            # (seen busy below) or skips it, locked (cancelled here). SQLite takes its one
            # writer's lock at the first write, and reads from there on.
            db.execute(reviews_table.delete().where(
                (reviews_table.c.post == post.id) & (reviews_table.c.tenant == post.tenant)
            ))  # fmt: skip
            cancelled = [
                _job(row)
                for row in db.execute(
                    jobs.update()
                    .where(mine & jobs.c.state.in_(("scheduled", "held")))
                    .values(state="cancelled", error=f"replaced by version {post.version}",
                            updated_us=now_us)
                    .returning(*jobs.c)
                ).all()
            ]  # fmt: skip
            busy = db.execute(
                sa.select(jobs.c.channel, jobs.c.state)
                .where(mine & jobs.c.state.in_(("published", "claimed", "sending", "unknown")))
                .limit(1)
            ).first()
            if busy is not None:
                said = "published" if busy.state == "published" else "being published"
                raise Conflict(f"post {post.id} is {said} already: it cannot change now")
            newest = db.execute(
                sa.select(sa.func.max(posts.c.version)).where(
                    (posts.c.id == post.id) & (posts.c.tenant == post.tenant)
                )
            ).scalar()
            if newest is None:
                raise NotFound(f"no post {post.id!r}")
            if newest != post.version - 1:
                raise Conflict(f"post {post.id} changed meanwhile: it is at version {newest}")
            _log(db, cancelled, now_us)
            db.execute(series_table.update().where(
                (series_table.c.post == post.id) & (series_table.c.state == "active")
            ).values(state="cancelled", updated_us=now_us))  # fmt: skip
            plan = review.plan.channels if review else ()
            _keep_post(db, post, plan, now_us)
            if review is not None:
                db.execute(reviews_table.insert().values(_review_row(review)))
            made = _release(db, post, release, now_us) if release else []
            _audit(db, audit)
        return cancelled, made

    def review(self, tenant: str, post: str) -> Review:
        mine = (reviews_table.c.post == post) & (reviews_table.c.tenant == tenant)
        with self._engine.connect() as db:
            row = db.execute(sa.select(reviews_table).where(mine)).first()
            if row is None:
                raise NotFound(f"post {post!r} has no review")
            decided = db.execute(
                sa.select(decisions_table)
                .where(
                    (decisions_table.c.post == post) & (decisions_table.c.version == row.version)
                )
                .order_by(decisions_table.c.id)
            ).all()
        return _review(row, decided)

    def reviews(self, tenant: str, states: Sequence[str], limit: int = 200) -> list[Review]:
        chosen = (reviews_table.c.tenant == tenant) & reviews_table.c.state.in_(list(states))
        return self._reviews(chosen, reviews_table.c.updated_us.desc(), limit)

    def _reviews(self, where: Any, order: Any, limit: int) -> list[Review]:
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(reviews_table).where(where).order_by(order).limit(limit)
            ).all()
            decided = db.execute(
                sa.select(decisions_table).where(
                    decisions_table.c.post.in_([row.post for row in rows])
                ).order_by(decisions_table.c.id)
            ).all() if rows else []  # fmt: skip
        by_post: dict[tuple[str, int], list[Any]] = {}
        for one in decided:
            by_post.setdefault((one.post, one.version), []).append(one)
        return [_review(row, by_post.get((row.post, row.version), [])) for row in rows]

    def decide(
        self, before: Review, after: Review, decision: Decision | None,
        audit: Sequence[AuditEntry], release: Release | None, now_us: int,
    ) -> list[Job]:  # fmt: skip
        same = (
            (reviews_table.c.post == before.post)
            & (reviews_table.c.tenant == before.tenant)
            & (reviews_table.c.version == before.version)
            & (reviews_table.c.step == before.step)
            & (reviews_table.c.state == before.state)
            & (reviews_table.c.updated_us == before.updated_us)
        )
        with self._engine.begin() as db:
            row = _review_row(after)
            if not db.execute(reviews_table.update().where(same).values(row)).rowcount:
                raise Conflict("the review changed meanwhile: read it again")
            if decision is not None:
                db.execute(decisions_table.insert().values(tenant=after.tenant, **vars(decision)))
            made = []
            if release is not None:
                post = _post(db.execute(sa.select(posts).where(
                    (posts.c.id == after.post) & (posts.c.version == after.version)
                )).one())  # fmt: skip
                made = _release(db, post, release, now_us)
            _audit(db, audit)
        return made

    def claim_reminders(self, before_us: int, now_us: int, limit: int) -> list[Review]:
        waiting = (
            (reviews_table.c.state == "in_review")
            & (reviews_table.c.step_since_us < before_us)
            & sa.or_(reviews_table.c.reminded_us.is_(None), reviews_table.c.reminded_us < before_us)
        )
        return self._claim(waiting, reviews_table.c.step_since_us, limit, reminded_us=now_us)

    def claim_overdue(self, before_us: int, now_us: int, limit: int) -> list[Review]:
        due = (
            reviews_table.c.state.in_(OPEN_REVIEWS)
            & (reviews_table.c.due_us < before_us)
            & reviews_table.c.flagged_us.is_(None)
        )
        return self._claim(due, reviews_table.c.due_us, limit, flagged_us=now_us)

    def _claim(self, where: Any, order: Any, limit: int, **mark: int) -> list[Review]:
        """Mark up to `limit` reviews `where` holds, in `order`, and answer them: one
        replica marks each (the condition is asked again as each row is changed)."""
        chosen = sa.select(reviews_table.c.post).where(where).order_by(order).limit(limit)
        with self._engine.begin() as db:
            posts_ = [
                row.post
                for row in db.execute(
                    reviews_table.update()
                    .where(where & reviews_table.c.post.in_(chosen.scalar_subquery()))
                    .values(**mark)
                    .returning(reviews_table.c.post)
                ).all()
            ]
        return self._reviews(reviews_table.c.post.in_(posts_), order, limit) if posts_ else []

    def add_comment(self, comment: Comment, audit: AuditEntry) -> Comment:
        with self._engine.begin() as db:
            kept = db.execute(
                sa.select(sa.func.max(posts.c.version)).where(
                    (posts.c.id == comment.post) & (posts.c.tenant == comment.tenant)
                )
            ).scalar()
            if kept is None:
                raise NotFound(f"no post {comment.post!r}")
            if comment.parent is not None and db.execute(
                sa.select(comments_table.c.id).where(
                    (comments_table.c.id == comment.parent)
                    & (comments_table.c.post == comment.post)
                    & (comments_table.c.tenant == comment.tenant)
                )
            ).first() is None:  # fmt: skip
                raise NotFound(f"no comment {comment.parent!r} on this post")
            db.execute(comments_table.insert().values(vars(comment)))
            _audit(db, [audit])
        return comment

    def comments(self, tenant: str, post: str) -> list[Comment]:
        mine = (comments_table.c.tenant == tenant) & (comments_table.c.post == post)
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(comments_table).where(mine).order_by(comments_table.c.created_us)
            ).all()
        return [Comment(**row._mapping) for row in rows]

    def end_links(self, tenant: str, post: str, before_us: int, audit: AuditEntry) -> None:
        mine = (link_ends_table.c.post == post) & (link_ends_table.c.tenant == tenant)
        with self._engine.begin() as db:
            if not db.execute(link_ends_table.update().where(mine).values(before_us=before_us)
                              ).rowcount:  # fmt: skip
                db.execute(link_ends_table.insert().values(
                    post=post, tenant=tenant, before_us=before_us))  # fmt: skip
            _audit(db, [audit])

    def links_end(self, tenant: str, post: str) -> int:
        mine = (link_ends_table.c.post == post) & (link_ends_table.c.tenant == tenant)
        with self._engine.connect() as db:
            found = db.execute(sa.select(link_ends_table.c.before_us).where(mine)).scalar()
        return int(found or 0)

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        with self._engine.begin() as db:
            _audit(db, entries)

    def audit(self, tenant: str, post: str) -> list[AuditEntry]:
        with self._engine.connect() as db:
            done = db.execute(
                sa.select(audit_table)
                .where((audit_table.c.tenant == tenant) & (audit_table.c.post == post))
                .order_by(audit_table.c.id)
            ).all()
            changes = db.execute(
                sa.select(history, jobs.c.version, channels.c.account, channels.c.network)
                .join(jobs, jobs.c.id == history.c.job)
                .join(channels, channels.c.id == history.c.channel, isouter=True)
                .where((history.c.tenant == tenant) & (history.c.post == post))
                .where(history.c.state.in_(AUDITED_STATES))
                .order_by(history.c.id)
            ).all()
        entries = [
            AuditEntry(**{k: v for k, v in row._mapping.items() if k != "id"}) for row in done
        ]
        # A job changed by someone's action is changed at the moment its entry is written
        # (a post created, edited or approved, a job cancelled or retried): that entry
        # names who, and one for the change itself (cancelled) stands for it. Any other
        # job scheduled is the publisher's own (a retry after an error, a series' next);
        # a job cancelled or held with nobody's entry says nobody (a channel removed).
        by: dict[int, str] = {}
        for entry in entries:  # the latest at a moment: the action that changed the jobs
            by[entry.at_us] = entry.actor
        said = {(entry.at_us, entry.action) for entry in entries}
        entries += [
            AuditEntry(
                tenant=tenant, post=post, version=row.version, action=row.state,
                actor="publisher" if row.state in ("published", "failed", "missed")
                else by.get(row.at_us, "publisher" if row.state == "scheduled" else ""),
                at_us=row.at_us,
                detail=f"{row.account or row.channel} ({row.network or 'removed'})"
                + (f": {row.error}" if row.error else ""),
            )
            for row in changes
            if (row.at_us, row.state) not in said
        ]  # fmt: skip
        return sorted(entries, key=lambda e: e.at_us)

    # Feeds, and the people folded from the log

    def new_feed(self, tenant: str, person: str) -> int:
        try:
            with self._engine.begin() as db:
                return _next_feed(db, tenant, person)
        except IntegrityError:  # a first feed made at once by another: its row is there now
            with self._engine.begin() as db:
                return _next_feed(db, tenant, person)

    def feed_generation(self, tenant: str, person: str) -> int:
        mine = (feeds_table.c.tenant == tenant) & (feeds_table.c.person == person)
        with self._engine.connect() as db:
            found = db.execute(sa.select(feeds_table.c.generation).where(mine)).scalar()
        return int(found or 0)

    def member(self, tenant: str, user: str) -> Member | None:
        mine = (people_table.c.tenant == tenant) & (people_table.c.user == user)
        with self._engine.connect() as db:
            row = db.execute(sa.select(people_table).where(mine)).first()
        return None if row is None else Member(**row._mapping)

    def people_positions(self) -> dict[str, int]:
        with self._engine.connect() as db:
            rows = db.execute(sa.select(positions_table)).all()
        return {row.topic: row.position for row in rows}

    def fold_people(
        self, changes: Sequence[Member], reached: Mapping[str, int], read_from: Mapping[str, int]
    ) -> None:
        latest = {(change.tenant, change.user): change for change in changes}
        try:
            with self._engine.begin() as db:
                relational.move_positions(db, positions_table, reached, read_from, StalePositions)
                for (tenant, user), change in sorted(latest.items()):
                    mine = (people_table.c.tenant == tenant) & (people_table.c.user == user)
                    said = {"role": change.role, "active": change.active}
                    if not db.execute(people_table.update().where(mine).values(said)).rowcount:
                        db.execute(people_table.insert().values(tenant=tenant, user=user, **said))
                    if not change.active:
                        _next_feed(db, tenant, f"user:{user}")
        except IntegrityError as error:  # another worker inserted a position or a person
            raise StalePositions(str(error)) from error

    def pause(self, tenant: str, channel: str, paused: bool, now_us: int,
              requeue: Callable[[Channel, Sequence[Job]], Mapping[str, int]] | None = None,
              ) -> tuple[Channel, list[Job]]:  # fmt: skip
        mine = (channels.c.id == channel) & (channels.c.tenant == tenant)
        of_channel = (jobs.c.channel == channel) & (jobs.c.tenant == tenant)
        with self._engine.begin() as db:
            row = db.execute(
                channels.update().where(mine).values(paused=paused).returning(*channels.c)
            ).first()
            if row is None:
                raise NotFound(f"no channel {channel!r}")
            found = _channel(row)
            if paused:
                changed = [_job(r) for r in db.execute(
                    jobs.update().where(of_channel & (jobs.c.state == "scheduled"))
                    .values(state="held", updated_us=now_us).returning(*jobs.c)
                ).all()]  # fmt: skip
            else:
                held = [_job(r) for r in db.execute(
                    sa.select(jobs).where(of_channel & (jobs.c.state == "held"))
                ).all()]  # fmt: skip
                moved = dict(requeue(found, held)) if requeue else {}
                changed = []
                for job in held:
                    due = moved.get(job.id, job.due_us)
                    db.execute(jobs.update().where(jobs.c.id == job.id).values(
                        state="scheduled", updated_us=now_us, due_us=due))  # fmt: skip
                    changed.append(replace(job, state="scheduled", updated_us=now_us, due_us=due))
            _log(db, changed, now_us)
        return found, changed

    def close(self) -> None:
        self._engine.dispose()


def _next_feed(db: sa.Connection, tenant: str, person: str) -> int:
    """Move `person`'s feed to its next generation; answers it. The update takes the row's
    write lock, so two at once each get a generation of their own; a first feed made at
    once by two fails one insert, which the caller's transaction raises."""
    mine = (feeds_table.c.tenant == tenant) & (feeds_table.c.person == person)
    moved = db.execute(
        feeds_table.update().where(mine).values(generation=feeds_table.c.generation + 1)
        .returning(feeds_table.c.generation)
    ).scalar()  # fmt: skip
    if moved is not None:
        return int(moved)
    db.execute(feeds_table.insert().values(tenant=tenant, person=person, generation=1))
    return 1


def _claiming(claimable: Any, order: Any) -> Any:
    """Up to `limit` `claimable` jobs, first by `order`, made `worker`'s (returning them)."""
    chosen = (
        sa.select(jobs.c.id)
        .where(claimable)
        .order_by(order)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .with_for_update(skip_locked=True)
    )
    # A job being sent, or whose outcome is unknown, may be on the network: whoever
    # claims it asks the network first. One only claimed (its holder stopped before
    # marking it sending) was never sent, and keeps what it knew: after a crash of a
    # publisher holding 128 jobs, looking for each claimed one spent the account's
    # requests reading its statuses back.
    maybe_sent = jobs.c.state.in_(("sending", "unknown"))
    # The chosen rows only, by their key: they are claimable, and stay so until the
    # update (PostgreSQL holds them locked from the choice; SQLite runs one writer).
    # Asking `claimable` again here made SQLite walk every due job by that index and
    # test each against the choice: 12 ms a claim behind 60,000 due jobs.
    return (
        jobs.update()
        .where(jobs.c.id.in_(chosen.scalar_subquery()))
        .values(
            state="claimed",
            worker=sa.bindparam("holder"),
            lease_until_us=sa.bindparam("lease_until"),
            attempts=jobs.c.attempts + 1,
            updated_us=sa.bindparam("now_us"),
            check_first=sa.case((maybe_sent, sa.true()), else_=jobs.c.check_first),
        )
        .returning(*jobs.c)
    )


# The statements of the publishers' hot paths, built once with their parameters named:
# built at each call, SQLAlchemy's building and cache keys cost 0.05 ms a job claimed.
_NOW = sa.bindparam("now_us", type_=sa.BigInteger)
_LAPSED = jobs.c.lease_until_us < _NOW
_CLAIMING: Final = tuple(
    _claiming((jobs.c.state == state) & ready, order)
    for state, order, ready in (
        ("scheduled", jobs.c.due_us, jobs.c.due_us <= _NOW),
        ("unknown", jobs.c.due_us, jobs.c.due_us <= _NOW),
        ("claimed", jobs.c.lease_until_us, _LAPSED),
        ("sending", jobs.c.lease_until_us, _LAPSED),
    )
)
"""One statement per kind of claimable job, tried in this order."""
_HELD: Final = (
    jobs.c.id.in_(sa.bindparam("ids", expanding=True))
    & (jobs.c.worker == sa.bindparam("holder"))
    & jobs.c.state.in_(HELD_STATES)
)
_BEGIN_SENDING: Final = (
    jobs.update()
    .where(_HELD)
    .values(state="sending", sent_us=_NOW, updated_us=_NOW)
    .returning(*jobs.c)
)
_HOLDING: Final = jobs.update().where(_HELD).values(updated_us=_NOW).returning(jobs.c.id)
_JOBS_NAMED: Final = sa.select(jobs).where(jobs.c.id.in_(sa.bindparam("ids", expanding=True)))
_CHANNELS_NAMED: Final = sa.select(channels).where(
    channels.c.id.in_(sa.bindparam("ids", expanding=True))
)
_POSTS_NAMED: Final = sa.select(posts).where(posts.c.id.in_(sa.bindparam("ids", expanding=True)))


def _channel(row: Any) -> Channel:
    limits = row.limits if isinstance(row.limits, dict) else json.loads(row.limits)
    return Channel(
        id=row.id, tenant=row.tenant, network=row.network, account=row.account,
        service=row.service, time_zone=row.time_zone, limits=Limits(**limits),
        sealed_credentials=row.sealed_credentials, queue=row.queue, paused=bool(row.paused),
        best_queue=bool(row.best_queue), best_slots=row.best_slots,
        best_updated_us=row.best_updated_us, page=row.page,
    )  # fmt: skip


def _media_of(tenant: str, media: str) -> Any:
    return (media_table.c.id == media) & (media_table.c.tenant == tenant)


def _attach(db: sa.Connection, post: Post) -> None:
    """Make the media `post` names its own, in the transaction that keeps it: a medium
    that is not the tenant's is NotFound, one another post named already a ValueError."""
    named = post.media_ids()
    if not named:
        return
    free = (
        media_table.c.id.in_(named)
        & (media_table.c.tenant == post.tenant)
        & media_table.c.post.is_(None)
    )
    if db.execute(media_table.update().where(free).values(post=post.id)).rowcount == len(named):
        return
    owners = dict(
        db.execute(
            sa.select(media_table.c.id, media_table.c.post).where(
                media_table.c.id.in_(named) & (media_table.c.tenant == post.tenant)
            )
        ).all()
    )
    for media in named:
        if media not in owners:
            raise NotFound(f"no image {media!r}")
        if owners[media] != post.id:
            raise ValueError(f"image {media} is in another post already: upload it again")


def _attachments(found: Any) -> tuple[Attachment, ...]:
    return tuple(Attachment(**item) for item in _json(found) or ())


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _post_row(post: Post, created_us: int) -> dict[str, Any]:
    row = {name: getattr(post, name) for name in posts.c.keys() if hasattr(post, name)}
    row["media"] = [vars(a) for a in post.media]
    row["tags"] = list(post.tags) or None
    row["thread"] = [
        {"text": part.text, "media": [vars(a) for a in part.media]} for part in post.thread
    ]
    return {**row, "created_us": created_us}


def _post(row: Any) -> Post:
    thread = tuple(
        Part(part["text"], _attachments(part.get("media"))) for part in _json(row.thread) or ()
    )
    return Post(
        id=row.id, tenant=row.tenant, author=row.author, text=row.text, version=row.version,
        variants=dict(row.variants or {}), language=row.language, spoiler=row.spoiler,
        visibility=row.visibility, media=_attachments(row.media), thread=thread,
        tags=tuple(_json(row.tags) or ()), reply_to=row.reply_to,
    )  # fmt: skip


def _keep_post(db: sa.Connection, post: Post, channel_ids: Sequence[str], at_us: int) -> None:
    """Keep `post`, and make the media it names its, once every channel is the tenant's
    (NotFound otherwise); the channels' rows are locked until the transaction ends."""
    owned = db.execute(
        sa.select(channels.c.id)
        .where((channels.c.tenant == post.tenant) & channels.c.id.in_(list(channel_ids)))
        .with_for_update()
    ).scalars()
    missing = set(channel_ids) - set(owned)
    if missing:
        raise NotFound(f"no channel {sorted(missing)[0]!r}")
    db.execute(posts.insert().values(_post_row(post, at_us)))
    _attach(db, post)


def _taken(db: sa.Connection, channel: str) -> set[int]:
    """The due times of the channel's open jobs: the queue's slots they take."""
    open_ = (jobs.c.channel == channel) & jobs.c.state.in_(OPEN_STATES)
    return set(db.execute(sa.select(jobs.c.due_us).where(open_)).scalars())


def _new_job(post: Post | Series, channel: str, due_us: int, at_us: int,
             series: str | None = None) -> Job:  # fmt: skip
    """A scheduled job of `post` (or of a series' post) to `channel`, with a key of its own."""
    post_id = post.post if isinstance(post, Series) else post.id
    return Job(
        id=secrets.token_hex(8), tenant=post.tenant, post=post_id, version=post.version,
        channel=channel, due_us=due_us, state="scheduled", idempotency_key=tid(),
        updated_us=at_us, series=series, occurrence_us=due_us if series else 0,
    )  # fmt: skip


def _insert_jobs(db: sa.Connection, made: Sequence[Job], at_us: int) -> list[Job]:
    """Insert `made`, held where their channel is paused; answers them as kept."""
    if not made:
        return []
    paused = set(
        db.execute(
            sa.select(channels.c.id).where(
                channels.c.id.in_({job.channel for job in made}) & channels.c.paused
            )
        ).scalars()
    )
    if paused:
        made = [replace(j, state="held") if j.channel in paused else j for j in made]
    db.execute(jobs.insert(), [_job_row(job) for job in made])
    _log(db, made, at_us)
    return list(made)


def _log(db: sa.Connection, changed: Sequence[Job], at_us: int) -> None:
    """Append the jobs' new states to their history, in the transaction that made them."""
    if changed:
        db.execute(history.insert(), [
            {"job": job.id, "tenant": job.tenant, "post": job.post, "channel": job.channel,
             "state": job.state, "at_us": at_us, "error": job.error, "attempts": job.attempts}
            for job in changed
        ])  # fmt: skip


def _draft_of(tenant: str, author: str, draft: str) -> Any:
    return (
        (drafts_table.c.tenant == tenant)
        & (drafts_table.c.author == author)
        & (drafts_table.c.id == draft)
    )


def _draft(row: Any) -> Draft:
    return Draft(id=row.id, tenant=row.tenant, author=row.author, body=_json(row.body),
                 updated_us=row.updated_us)  # fmt: skip


def _settling(**values: Any) -> Any:
    return jobs.update().where(jobs.c.id == sa.bindparam("job_id")).values(**values)


# A refusal after the request went out (a 5xx) may follow a post that was made (a PDS
# answers a record key it holds with a 500): a job sent and scheduled again is looked
# for before it is sent again. Whatever the outcome, the worker lets go of the job.
_SETTLE: Final = {
    "published": _settling(
        state="published", remote_id=sa.bindparam("remote_id"), remote_url=sa.bindparam("url"),
        error=None, lease_until_us=None, check_first=False,
    ),
    "failed": _settling(state="failed", error=sa.bindparam("error"), lease_until_us=None),
    "scheduled": _settling(
        state="scheduled", error=sa.bindparam("error"), due_us=sa.bindparam("due_us"),
        worker=None, lease_until_us=None, attempts=jobs.c.attempts - sa.bindparam("unattempted"),
        check_first=sa.case((jobs.c.state == "sending", sa.true()), else_=jobs.c.check_first),
    ),
    "unknown": _settling(
        state="unknown", error=sa.bindparam("error"), due_us=sa.bindparam("due_us"),
        worker=None, lease_until_us=None, check_first=True,
    ),
}  # fmt: skip


def _outcome_params(outcome: Outcome) -> dict[str, Any]:
    if outcome.state == "published":
        assert outcome.found is not None
        return {"job_id": outcome.job, "remote_id": outcome.found.remote_id,
                "url": outcome.found.url}  # fmt: skip
    if outcome.state == "failed":
        return {"job_id": outcome.job, "error": outcome.error}
    params = {"job_id": outcome.job, "error": outcome.error, "due_us": outcome.due_us}
    if outcome.state == "scheduled":
        params["unattempted"] = 0 if outcome.attempted else 1
    return params


def _job_row(job: Job) -> dict[str, Any]:
    return dict(vars(job))


def _job(row: Any) -> Job:
    return Job(**{**row._mapping, "check_first": bool(row.check_first)})


def _steps(value: Any) -> tuple[Step, ...]:
    return tuple(
        Step(name=step["name"], users=tuple(step.get("users", ())),
             roles=tuple(step.get("roles", ())), mode=step.get("mode", "any"),
             external=bool(step.get("external", False)))
        for step in _json(value)
    )  # fmt: skip


def _steps_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [vars(step) | {"users": list(step.users), "roles": list(step.roles)} for step in steps]


def _workflow(row: Any) -> Workflow:
    return Workflow(id=row.id, tenant=row.tenant, name=row.name, steps=_steps(row.steps),
                    channels=tuple(_json(row.channels)), roles=tuple(_json(row.roles)),
                    updated_us=row.updated_us)  # fmt: skip


def _review_row(review: Review) -> dict[str, Any]:
    plan = review.plan
    return {
        "post": review.post, "tenant": review.tenant, "version": review.version,
        "author": review.author, "workflows": list(review.workflows),
        "steps": _steps_json(review.steps),
        "step": review.step, "state": review.state,
        "plan": {"channels": list(plan.channels), "at": plan.at, "queue": plan.queue,
                 "repeat": plan.repeat, "dues": dict(plan.dues)},
        "due_us": review.due_us, "latest_due_us": latest_due(plan.dues, review.due_us),
        "step_since_us": review.step_since_us, "reminded_us": review.reminded_us,
        "flagged_us": review.flagged_us,
        "updated_us": review.updated_us, "submitted_by": review.submitted_by,
    }  # fmt: skip


def latest_due(dues: Mapping[str, int], due_us: int | None) -> int | None:
    """A review's latest planned moment: the last of its channels' own times, or its
    `due_us` (the earliest, by which the others are within a day) without them."""
    return max(dues.values()) if dues else due_us


def _review(row: Any, decided: Sequence[Any]) -> Review:
    plan = _json(row.plan)
    steps = _steps(row.steps)
    return Review(
        post=row.post, tenant=row.tenant, version=row.version, author=row.author,
        workflows=tuple(_json(row.workflows)), steps=steps, step=row.step, state=row.state,
        plan=Plan(tuple(plan["channels"]), plan.get("at"), bool(plan.get("queue")),
                  plan.get("repeat"), dict(plan.get("dues") or {})),
        due_us=row.due_us, step_since_us=row.step_since_us, updated_us=row.updated_us,
        reminded_us=row.reminded_us, flagged_us=row.flagged_us,
        decisions=tuple(_decision(one) for one in decided),
        submitted_by=row.submitted_by,
    )  # fmt: skip


def _either(states: Sequence[str]) -> str:
    """'scheduled', 'scheduled or held', 'failed, missed or cancelled'."""
    return " or ".join([", ".join(states[:-1]), states[-1]] if len(states) > 1 else states)


def _decision(row: Any) -> Decision:
    return Decision(**{k: v for k, v in row._mapping.items() if k not in ("id", "tenant")})


def _audit(db: sa.Connection, entries: Sequence[AuditEntry]) -> None:
    if entries:
        db.execute(audit_table.insert(), [vars(entry) for entry in entries])


def _release(db: sa.Connection, post: Post, release: Release, now_us: int) -> list[Job]:
    """Make the jobs an approval (or an edit) releases, in its transaction: the channels'
    rows locked, so queue slots are chosen once."""
    named = [*release.dues, *release.queued, *(one.channel for one in release.series)]
    db.execute(
        sa.select(channels.c.id)
        .where((channels.c.tenant == post.tenant) & channels.c.id.in_(named))
        .with_for_update()
    ).all()
    chosen = dict(release.dues)
    for channel, choose in release.queued.items():
        chosen[channel] = choose(_taken(db, channel))
    made = [_new_job(post, channel, due, now_us) for channel, due in chosen.items()]
    if release.series:
        db.execute(series_table.insert(), [vars(one) for one in release.series])
        made += [
            _new_job(post, one.channel, due, now_us, one.id)
            for one in release.series
            for due in release.occurrences[one.channel]
        ]
    return _insert_jobs(db, made, now_us)
