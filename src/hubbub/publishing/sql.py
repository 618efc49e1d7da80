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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import IntegrityError

from hubbub.publishing.ports import (
    UNATTACHED_MEDIA_US,
    Attachment,
    Channel,
    Job,
    Limits,
    LostLease,
    Media,
    NotFound,
    Outcome,
    Part,
    Post,
    Published,
)
from hubbub.publishing.tid import tid

MIGRATIONS: Final = Path(__file__).parent / "migrations"
VERSION_TABLE: Final = "publishing_alembic_version"
FINAL_STATES: Final = ("published", "failed", "missed", "cancelled")
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
    sa.UniqueConstraint("post", "version", "channel"),
    sa.Index("publishing_jobs_due", "state", "due_us"),
    sa.Index("publishing_jobs_lease", "state", "lease_until_us"),
)  # fmt: skip


def migrate(engine: sa.Engine) -> None:
    """Bring the database to publishing's newest schema."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class SqlJobStore:
    """See `hubbub.publishing.ports` for the contract."""

    def __init__(self, url: str) -> None:
        self._engine = sa.create_engine(url)
        if self._engine.dialect.name == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        migrate(self._engine)

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
            db.execute(
                jobs.update()
                .where((jobs.c.channel == channel) & (jobs.c.state == "scheduled"))
                .values(state="cancelled", error="its channel was removed", updated_us=now_us)
            )

    # Posts and jobs

    def schedule(self, post: Post, dues: Mapping[str, int]) -> list[Job]:
        channel_ids = list(dues)
        made = [
            Job(
                id=secrets.token_hex(8),
                tenant=post.tenant,
                post=post.id,
                version=post.version,
                channel=channel,
                due_us=due,
                state="scheduled",
                idempotency_key=tid(),
                updated_us=due,
            )
            for channel, due in dues.items()
        ]
        with self._engine.begin() as db:
            owned = db.execute(
                sa.select(channels.c.id).where(
                    (channels.c.tenant == post.tenant) & channels.c.id.in_(channel_ids)
                )
            ).scalars()
            missing = set(channel_ids) - set(owned)
            if missing:
                raise NotFound(f"no channel {sorted(missing)[0]!r}")
            created = min(dues.values(), default=0)
            db.execute(posts.insert().values(_post_row(post, created)))
            _attach(db, post)
            if made:
                db.execute(jobs.insert(), [_job_row(job) for job in made])
        return made

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
        lapsed = jobs.c.lease_until_us < now_us
        # One indexed walk per kind of claimable job, each in due order, rather than one
        # query over all of them that sorts every due job: a publisher behind by 25,000
        # jobs spent its time sorting them at every claim. All in one transaction: on
        # SQLite each would take the database's one write lock again.
        with self._engine.begin() as db:
            for state, order, ready in (
                ("scheduled", jobs.c.due_us, jobs.c.due_us <= now_us),
                ("unknown", jobs.c.due_us, jobs.c.due_us <= now_us),
                ("claimed", jobs.c.lease_until_us, lapsed),
                ("sending", jobs.c.lease_until_us, lapsed),
            ):
                if len(claimed) >= limit:
                    break
                statement = _claiming((jobs.c.state == state) & ready, order, worker, now_us,
                                      lease_s, limit - len(claimed))  # fmt: skip
                claimed += [_job(row) for row in db.execute(statement).all()]
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
        held = jobs.c.id.in_(list(jobs_)) & (jobs.c.worker == worker)
        held &= jobs.c.state.in_(HELD_STATES)
        with self._engine.begin() as db:
            rows = db.execute(
                jobs.update()
                .where(held)
                .values(state="sending", sent_us=now_us, updated_us=now_us)
                .returning(*jobs.c)
            ).all()
        return [_job(row) for row in rows]

    def settle(self, worker: str, outcomes: Sequence[Outcome], now_us: int) -> list[Job]:
        if not outcomes:
            return []
        # Three statements and one write per kind of outcome, whatever their number: the
        # jobs still the worker's are found and locked by a write (so no one claims them
        # between), each kind's columns are written at once (executemany), and the rows
        # are read back.
        ids = [outcome.job for outcome in outcomes]
        held = jobs.c.id.in_(ids) & (jobs.c.worker == worker) & jobs.c.state.in_(HELD_STATES)
        with self._engine.begin() as db:
            mine = set(
                db.execute(
                    jobs.update().where(held).values(updated_us=now_us).returning(jobs.c.id)
                ).scalars()
            )
            kinds: dict[str, list[dict[str, Any]]] = {}
            for outcome in outcomes:
                if outcome.job in mine:
                    kinds.setdefault(outcome.state, []).append(_outcome_params(outcome))
            for state, params in kinds.items():
                db.execute(_SETTLE[state], params)
            rows = db.execute(sa.select(jobs).where(jobs.c.id.in_(sorted(mine)))).all()
        return [_job(row) for row in rows]

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
            channel_rows = db.execute(sa.select(channels).where(channels.c.id.in_(channel_ids)))
            found = {row.id: _channel(row) for row in channel_rows}
            post_rows = db.execute(sa.select(posts).where(posts.c.id.in_(post_ids))).all()
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
        return [_job(row) for row in rows]

    def cancel(self, tenant: str, job: str, now_us: int) -> Job:
        return self._by_person(
            tenant, job, ("scheduled",), now_us, state="cancelled", error="cancelled"
        )

    def retry(self, tenant: str, job: str, now_us: int) -> Job:
        return self._by_person(
            tenant, job, ("failed", "missed", "cancelled"), now_us, state="scheduled",
            due_us=now_us, error=None, worker=None, lease_until_us=None, check_first=True,
        )  # fmt: skip

    def _by_person(
        self, tenant: str, job: str, states: tuple[str, ...], now_us: int, **values: Any
    ) -> Job:
        found = self.job(tenant, job)  # NotFound for another tenant's
        mine = (jobs.c.id == job) & (jobs.c.tenant == tenant) & jobs.c.state.in_(states)
        with self._engine.begin() as db:
            row = db.execute(
                jobs.update().where(mine).values(updated_us=now_us, **values).returning(*jobs.c)
            ).first()
        if row is None:
            raise ValueError(f"job {job} is {found.state}: only {', '.join(states)} jobs can")
        return _job(row)

    def forget_before(self, before_us: int) -> int:
        """Drop finished jobs last changed before `before_us`, and posts left with none,
        and those posts' media."""
        old = jobs.c.state.in_(FINAL_STATES) & (jobs.c.updated_us < before_us)
        with self._engine.begin() as db:
            dropped = db.execute(jobs.delete().where(old)).rowcount
            kept = sa.select(jobs.c.post).where(jobs.c.post == posts.c.id)
            db.execute(posts.delete().where(~sa.exists(kept)))
            named = sa.select(posts.c.id).where(posts.c.id == media_table.c.post)
            db.execute(
                media_table.delete().where(media_table.c.post.is_not(None) & ~sa.exists(named))
            )
        return int(dropped)

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

    def close(self) -> None:
        self._engine.dispose()


def _claiming(
    claimable: Any, order: Any, worker: str, now_us: int, lease_s: float, limit: int
) -> Any:
    """Up to `limit` `claimable` jobs, first by `order`, made `worker`'s (returning them)."""
    chosen = (
        sa.select(jobs.c.id)
        .where(claimable)
        .order_by(order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    # A job claimed before (its holder stopped), being sent, or whose outcome is
    # unknown may be on the network: whoever claims it asks the network first.
    maybe_sent = jobs.c.state.in_(("claimed", "sending", "unknown"))
    # The chosen rows only, by their key: they are claimable, and stay so until the
    # update (PostgreSQL holds them locked from the choice; SQLite runs one writer).
    # Asking `claimable` again here made SQLite walk every due job by that index and
    # test each against the choice: 12 ms a claim behind 60,000 due jobs.
    return (
        jobs.update()
        .where(jobs.c.id.in_(chosen.scalar_subquery()))
        .values(
            state="claimed",
            worker=worker,
            lease_until_us=now_us + int(lease_s * 1e6),
            attempts=jobs.c.attempts + 1,
            updated_us=now_us,
            check_first=sa.case((maybe_sent, sa.true()), else_=jobs.c.check_first),
        )
        .returning(*jobs.c)
    )


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    """WAL, so the API reads while publishers write, and several processes share the
    file; a commit syncs at checkpoints rather than each time (a crash of the machine
    may lose the last changes, never corrupt them: a job whose change is lost is claimed
    again, and looked for on its network first); and a wait on a writer rather than an
    error."""
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _channel(row: Any) -> Channel:
    limits = row.limits if isinstance(row.limits, dict) else json.loads(row.limits)
    return Channel(
        id=row.id, tenant=row.tenant, network=row.network, account=row.account,
        service=row.service, time_zone=row.time_zone, limits=Limits(**limits),
        sealed_credentials=row.sealed_credentials,
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
    )  # fmt: skip


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
        worker=None, lease_until_us=None,
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
    return {"job_id": outcome.job, "error": outcome.error, "due_us": outcome.due_us}


def _job_row(job: Job) -> dict[str, Any]:
    return dict(vars(job))


def _job(row: Any) -> Job:
    return Job(**{**row._mapping, "check_first": bool(row.check_first)})
