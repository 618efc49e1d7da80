"""People, notifications, the email outbox and the log positions they were folded to, in a
relational store (`NotificationStore`): SQLite embedded (a file in the data dir), PostgreSQL
at scale, through SQLAlchemy Core, with migrations of its own (Alembic, its own version
table, so the database may be shared).

Positions move by compare-and-set in the transaction that writes what they produced: the
first statement of `apply` updates each position only where it still is what the fold was
read from, which also takes SQLite's write lock (and PostgreSQL's row locks), so a second
worker's fold of the same records finds the positions moved and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from hubbub.kernel import relational
from hubbub.notifications.ports import (
    Applied,
    DeadEmail,
    Delivery,
    Email,
    Fold,
    Notification,
    Page,
    Person,
    Settled,
    StalePositions,
)

MIGRATIONS: Final = Path(__file__).parent / "migrations"
VERSION_TABLE: Final = "notifications_alembic_version"
SERIAL: Final = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
metadata = sa.MetaData()
people_table = sa.Table(
    "notifications_people", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("user", sa.String(255), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)  # fmt: skip
items = sa.Table(
    "notifications_items", metadata,
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
    sa.Index("notifications_items_person", "tenant", "user", "id"),
    sa.Index("notifications_items_unread", "tenant", "user", "read_us"),
    sa.Index("notifications_items_read", "read_us"),
)  # fmt: skip
outbox = sa.Table(
    "notifications_outbox", metadata,
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
    sa.Index("notifications_outbox_due", "state", "due_us"),
    sa.Index("notifications_outbox_settled", "state", "updated_us"),
)  # fmt: skip
positions_table = sa.Table(
    "notifications_positions", metadata,
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)  # fmt: skip
SETTLED_STATES: Final = ("sent", "dead")


def migrate(engine: sa.Engine) -> None:
    """Bring the database to notifications' newest schema."""
    relational.migrate(engine, MIGRATIONS)


class SqlNotificationStore:
    """See `hubbub.notifications.ports` for the contract."""

    def __init__(self, url: str) -> None:
        self._engine = relational.open_engine(url, MIGRATIONS)

    @classmethod
    def sqlite(cls, path: Path) -> SqlNotificationStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}")

    # Folding the log

    def positions(self) -> dict[str, int]:
        with self._engine.connect() as db:
            rows = db.execute(sa.select(positions_table)).all()
        return {row.topic: row.position for row in rows}

    def people(self, tenants: Sequence[str]) -> list[Person]:
        if not tenants:
            return []
        chosen = sa.select(people_table).where(people_table.c.tenant.in_(sorted(set(tenants))))
        with self._engine.connect() as db:
            rows = db.execute(chosen).all()
        return [_person(row) for row in rows]

    def apply(
        self,
        fold: Fold,
        reached: Mapping[str, int],
        read_from: Mapping[str, int],
        keep_per_user: int,
    ) -> Applied:
        try:
            with self._engine.begin() as db:
                relational.move_positions(db, positions_table, reached, read_from, StalePositions)
                for person in fold.people:
                    _put_person(db, person)
                applied = _deliver(db, fold.deliveries, fold.at_us)
                for tenant, user in {(n.tenant, n.user) for n in applied.made}:
                    _keep_newest(db, tenant, user, keep_per_user)
        except IntegrityError as error:  # a position row made meanwhile by another worker
            raise StalePositions(f"the positions moved while folding: {error}") from error
        return applied

    # A person's notifications

    def listing(
        self,
        tenant: str,
        user: str,
        *,
        unread_only: bool = False,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> Page:
        chosen = sa.select(items).where(_theirs(tenant, user))
        if unread_only:
            chosen = chosen.where(items.c.read_us.is_(None))
        if before is not None:
            chosen = chosen.where(items.c.id < before)
        if after is not None:
            chosen = chosen.where(items.c.id > after).order_by(items.c.id)
        else:
            chosen = chosen.order_by(items.c.id.desc())
        with self._engine.connect() as db:
            rows = db.execute(chosen.limit(limit + 1)).all()
            unread = _unread(db, tenant, user)
        found = [_notification(row) for row in rows[:limit]]
        return Page(found, unread, more=len(rows) > limit)

    def latest(self, tenant: str, user: str) -> int:
        newest = sa.select(sa.func.max(items.c.id)).where(_theirs(tenant, user))
        with self._engine.connect() as db:
            return int(db.execute(newest).scalar() or 0)

    def unread(self, tenant: str, user: str) -> int:
        with self._engine.connect() as db:
            return _unread(db, tenant, user)

    def mark_read(self, tenant: str, user: str, ids: Sequence[int] | None, now_us: int) -> int:
        chosen = _theirs(tenant, user) & items.c.read_us.is_(None)
        if ids is not None:
            if not ids:
                return 0
            chosen &= items.c.id.in_(sorted(set(ids)))
        with self._engine.begin() as db:
            return int(db.execute(items.update().where(chosen).values(read_us=now_us)).rowcount)

    # The outbox

    def claim_emails(self, holder: str, now_us: int, lease_s: float, limit: int) -> list[Email]:
        due = ((outbox.c.state == "pending") & (outbox.c.due_us <= now_us)) | (
            (outbox.c.state == "sending") & (outbox.c.lease_until_us < now_us)
        )
        chosen = (
            sa.select(outbox.c.id).where(due).order_by(outbox.c.due_us).limit(limit)
            .with_for_update(skip_locked=True)
        )  # fmt: skip
        claiming = (
            outbox.update()
            .where(outbox.c.id.in_(chosen.scalar_subquery()))
            .values(
                state="sending", holder=holder, lease_until_us=now_us + int(lease_s * 1e6),
                attempts=outbox.c.attempts + 1, updated_us=now_us,
            )
            .returning(*outbox.c)
        )  # fmt: skip
        with self._engine.begin() as db:
            rows = db.execute(claiming).all()
        return [_email(row) for row in sorted(rows, key=lambda r: r.id)]

    def settle_emails(self, holder: str, outcomes: Sequence[Settled], now_us: int) -> None:
        held = (outbox.c.holder == holder) & (outbox.c.state == "sending")
        with self._engine.begin() as db:
            for outcome in outcomes:
                values: dict[str, Any] = {
                    "updated_us": now_us, "holder": None, "lease_until_us": None,
                    "error": outcome.error,
                }  # fmt: skip
                if outcome.error is None:
                    values["state"] = "sent"
                elif outcome.retry_at_us is not None:
                    values |= {"state": "pending", "due_us": outcome.retry_at_us}
                else:
                    values["state"] = "dead"
                db.execute(
                    outbox.update().where(held & (outbox.c.id == outcome.email)).values(values)
                )

    def dead(self, tenant: str | None = None, limit: int = 100) -> list[DeadEmail]:
        chosen = sa.select(outbox).where(outbox.c.state == "dead")
        if tenant is not None:
            chosen = chosen.where(outbox.c.tenant == tenant)
        chosen = chosen.order_by(outbox.c.updated_us.desc(), outbox.c.id.desc()).limit(limit)
        with self._engine.connect() as db:
            rows = db.execute(chosen).all()
        return [_dead(row) for row in rows]

    def prune(self, read_before_us: int, settled_before_us: int) -> int:
        settled = outbox.c.state.in_(SETTLED_STATES) & (outbox.c.updated_us < settled_before_us)
        with self._engine.begin() as db:
            dropped = db.execute(items.delete().where(items.c.read_us < read_before_us)).rowcount
            dropped += db.execute(outbox.delete().where(settled)).rowcount
        return int(dropped)

    def close(self) -> None:
        self._engine.dispose()


def _put_person(db: sa.Connection, person: Person) -> None:
    values = {"email": person.email, "role": person.role, "time_zone": person.time_zone,
              "active": person.active}  # fmt: skip
    theirs = (people_table.c.tenant == person.tenant) & (people_table.c.user == person.user)
    if db.execute(people_table.update().where(theirs).values(values)).rowcount == 0:
        db.execute(people_table.insert().values(tenant=person.tenant, user=person.user, **values))


def _deliver(db: sa.Connection, deliveries: Sequence[Delivery], now_us: int) -> Applied:
    """Keep each delivery not kept before (by tenant, notice and user), with its email."""
    applied = Applied()
    kept = _kept_already(db, deliveries)
    for delivery in deliveries:
        made = delivery.notification
        key = (made.tenant, made.notice, made.user)
        if key in kept:
            applied.duplicates += 1
            continue
        kept.add(key)
        row = {k: v for k, v in vars(made).items() if k != "id"}
        made_id = db.execute(items.insert().values(row).returning(items.c.id)).scalar_one()
        applied.made.append(Notification(**{**row, "id": made_id}))
        applied.kept += 1
        if delivery.email is not None:
            _queue(db, delivery.email, made_id, now_us)
            applied.emails += 1
    return applied


def _kept_already(db: sa.Connection, deliveries: Sequence[Delivery]) -> set[tuple[str, str, str]]:
    notices = sorted({d.notification.notice for d in deliveries})
    if not notices:
        return set()
    found = db.execute(
        sa.select(items.c.tenant, items.c.notice, items.c.user).where(items.c.notice.in_(notices))
    ).all()
    return {(row.tenant, row.notice, row.user) for row in found}


def _queue(db: sa.Connection, email: Email, notification: int, now_us: int) -> None:
    db.execute(
        outbox.insert().values(
            notification=notification, tenant=email.tenant, user=email.user, to=email.to,
            subject=email.subject, text=email.text, message_id=email.message_id,
            state="pending", attempts=0, due_us=now_us, updated_us=now_us,
        )
    )  # fmt: skip


def _keep_newest(db: sa.Connection, tenant: str, user: str, most: int) -> None:
    """Drop the person's notifications past their `most` newest."""
    oldest_kept = (
        sa.select(items.c.id).where(_theirs(tenant, user)).order_by(items.c.id.desc())
        .offset(most - 1).limit(1).scalar_subquery()
    )  # fmt: skip
    db.execute(items.delete().where(_theirs(tenant, user) & (items.c.id < oldest_kept)))


def _theirs(tenant: str, user: str) -> Any:
    return (items.c.tenant == tenant) & (items.c.user == user)


def _unread(db: sa.Connection, tenant: str, user: str) -> int:
    count = sa.select(sa.func.count()).where(_theirs(tenant, user) & items.c.read_us.is_(None))
    return int(db.execute(count).scalar_one())


def _person(row: Any) -> Person:
    return Person(
        tenant=row.tenant, user=row.user, email=row.email, role=row.role,
        time_zone=row.time_zone, active=row.active,
    )  # fmt: skip


def _notification(row: Any) -> Notification:
    return Notification(
        id=row.id, tenant=row.tenant, user=row.user, notice=row.notice, kind=row.kind,
        title=row.title, body=row.body, link=row.link, post=row.post, actor=row.actor,
        created_us=row.created_us, read_us=row.read_us,
    )  # fmt: skip


def _dead(row: Any) -> DeadEmail:
    return DeadEmail(
        id=row.id, tenant=row.tenant, user=row.user, to=row.to, subject=row.subject,
        attempts=row.attempts, error=row.error or "", at_us=row.updated_us,
    )  # fmt: skip


def _email(row: Any) -> Email:
    return Email(
        id=row.id, tenant=row.tenant, user=row.user, to=row.to, subject=row.subject,
        text=row.text, message_id=row.message_id, attempts=row.attempts,
    )  # fmt: skip
