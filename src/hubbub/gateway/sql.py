"""The relational store on SQLAlchemy Core: SQLite by default, PostgreSQL to scale out.

The schema is Alembic's (`hubbub/gateway/migrations`), brought to its head when the
store opens, so a new release migrates the database it finds. Every statement is built
with SQLAlchemy's expression language: values are always bound parameters.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from hubbub.gateway import keys
from hubbub.gateway.ports import (
    PERMISSIONS,
    ROLES,
    ApiKey,
    Caller,
    Conflict,
    ConnectorTokenInfo,
    Credentials,
    Invite,
    NotFound,
    Permission,
    Role,
    Tenant,
    User,
)
from hubbub.kernel import relational
from hubbub.kernel.clock import Clock, moment_of
from hubbub.kernel.sealing import PREFIX as SEALED_PREFIX

metadata = sa.MetaData()
tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(200)),
    sa.Column("time_zone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("locale", sa.String(16), nullable=False, server_default="en"),
    sa.Column("sessions_after", sa.BigInteger, nullable=False, server_default="0"),
    sa.UniqueConstraint("tenant", "email"),
    sa.Index("users_email", "email"),
)
invites = sa.Table(
    "invites",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True)),
    sa.Index("invites_tenant", "tenant"),
)
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("permissions", sa.String(200), nullable=False, server_default=""),
    sa.Index("api_keys_tenant", "tenant"),
)
# No foreign key to tenants: the CLI's tenant ("default") need not be a tenant's id.
connector_tokens = sa.Table(
    "connector_tokens",
    metadata,
    sa.Column("tenant", sa.String(32), primary_key=True),
    sa.Column("connector", sa.String(32), primary_key=True),
    sa.Column("account", sa.String(255), primary_key=True),
    sa.Column("sealed", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def _token(tenant: str, connector: str, account: str) -> sa.ColumnElement[bool]:
    """The row of one account's connector token."""
    return (
        (connector_tokens.c.tenant == tenant)
        & (connector_tokens.c.connector == connector)
        & (connector_tokens.c.account == account)
    )


MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(engine: sa.Engine) -> None:
    """Bring the database to the newest schema (one process at a time)."""
    relational.migrate(engine, MIGRATIONS)


_EPOCH = moment_of(0)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were written in UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _sealed(value: str) -> str:
    """`value`, if `SecretBox.seal` made it: the store must never be handed plaintext."""
    if not value.startswith(SEALED_PREFIX) or value == SEALED_PREFIX:
        raise ValueError("a connector token must be sealed (SecretBox.seal) before it is stored")
    return value


def _permissions(stored: str) -> frozenset[Permission]:
    return frozenset(p for p in PERMISSIONS if p in stored.split())


def _role(role: str) -> Role:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use {', '.join(ROLES)}")
    return role


def _user(row: sa.Row[tuple[object, ...]]) -> User:
    return User(row.id, row.tenant, row.email, _role(row.role), row.time_zone, row.locale)


def _invite(row: sa.Row[tuple[object, ...]]) -> Invite:
    return Invite(
        row.id, row.tenant, row.email, _role(row.role), _aware(row.created_at) or _EPOCH,
        _aware(row.expires_at) or _EPOCH, _aware(row.used_at),
    )  # fmt: skip


class SqlTenantStore:
    """Tenants, users and keys in the database at `url` (any SQLAlchemy URL); what it
    stamps (created, revoked, updated) is the time of `clock`."""

    def __init__(self, url: str, clock: Clock) -> None:
        self._clock = clock
        self._engine = sa.create_engine(url)
        migrate(self._engine)

    @classmethod
    def sqlite(cls, path: Path, clock: Clock) -> SqlTenantStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}", clock)

    def _now(self) -> datetime:
        return moment_of(self._clock.now_us())

    def create_tenant(self, name: str) -> Tenant:
        tenant = Tenant(secrets.token_hex(8), name, self._now())
        try:
            with self._engine.begin() as db:
                db.execute(tenants.insert().values(vars(tenant)))
        except IntegrityError as error:
            raise Conflict(f"a tenant named {name!r} exists already") from error
        return tenant

    def tenants(self) -> list[Tenant]:
        with self._engine.connect() as db:
            rows = db.execute(sa.select(tenants).order_by(tenants.c.created_at)).all()
        return [Tenant(row.id, row.name, _aware(row.created_at) or self._now()) for row in rows]

    def _check_tenant(self, db: sa.Connection, tenant: str) -> None:
        if db.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant)).first() is None:
            raise NotFound(f"no tenant {tenant!r}")

    def add_user(self, tenant: str, email: str, role: Role) -> User:
        user = User(secrets.token_hex(8), tenant, email.strip().lower(), _role(role))
        try:
            with self._engine.begin() as db:
                self._check_tenant(db, tenant)
                db.execute(users.insert().values(vars(user)))  # no password yet
        except IntegrityError as error:
            raise Conflict(f"{user.email} is a user of this tenant already") from error
        return user

    def users(self, tenant: str) -> list[User]:
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(users).where(users.c.tenant == tenant).order_by(users.c.email)
            ).all()
        return [_user(row) for row in rows]

    def all_users(self) -> list[User]:
        with self._engine.connect() as db:
            rows = db.execute(sa.select(users).order_by(users.c.tenant, users.c.email)).all()
        return [_user(row) for row in rows]

    def user(self, tenant: str, user: str) -> User:
        mine = (users.c.id == user) & (users.c.tenant == tenant)
        with self._engine.connect() as db:
            row = db.execute(sa.select(users).where(mine)).first()
        if row is None:
            raise NotFound(f"no user {user!r}")
        return _user(row)

    def credentials_by_email(self, email: str) -> list[Credentials]:
        chosen = (
            sa.select(users)
            .join(tenants, tenants.c.id == users.c.tenant)
            .where(users.c.email == email.strip().lower())
            .order_by(tenants.c.created_at)
        )
        with self._engine.connect() as db:
            rows = db.execute(chosen).all()
        return [Credentials(_user(row), row.password_hash, row.sessions_after) for row in rows]

    def credentials(self, user: str) -> Credentials | None:
        with self._engine.connect() as db:
            row = db.execute(sa.select(users).where(users.c.id == user)).first()
        return (
            None if row is None else Credentials(_user(row), row.password_hash, row.sessions_after)
        )

    def _update_user(self, tenant: str, user: str, **values: object) -> None:
        mine = (users.c.id == user) & (users.c.tenant == tenant)
        with self._engine.begin() as db:
            if db.execute(users.update().where(mine).values(**values)).rowcount == 0:
                raise NotFound(f"no user {user!r}")

    def set_password(self, tenant: str, user: str, password_hash: str) -> None:
        self._update_user(tenant, user, password_hash=password_hash)

    def end_sessions(self, tenant: str, user: str, before_us: int) -> None:
        self._update_user(tenant, user, sessions_after=before_us)

    def set_profile(self, tenant: str, user: str, time_zone: str, locale: str) -> User:
        self._update_user(tenant, user, time_zone=time_zone, locale=locale)
        return self.user(tenant, user)

    def set_role(self, tenant: str, user: str, role: Role) -> User:
        role = _role(role)
        mine = (users.c.id == user) & (users.c.tenant == tenant)
        owners = (users.c.tenant == tenant) & (users.c.role == "owner")
        with self._engine.begin() as db:
            # Owners are counted and the user changed in one transaction, the owners'
            # rows locked where the database can (PostgreSQL): two owners demoting each
            # other at once cannot leave the tenant with none.
            held = db.execute(sa.select(users.c.id).where(owners).with_for_update()).all()
            found = db.execute(sa.select(users.c.role).where(mine)).first()
            if found is None:
                raise NotFound(f"no user {user!r}")
            if found.role == "owner" and role != "owner" and len(held) <= 1:
                raise Conflict("this is the tenant's last owner: make another owner first")
            db.execute(users.update().where(mine).values(role=role))
        return self.user(tenant, user)

    def remove_user(self, tenant: str, user: str) -> User:
        mine = (users.c.id == user) & (users.c.tenant == tenant)
        owners = (users.c.tenant == tenant) & (users.c.role == "owner")
        with self._engine.begin() as db:
            # As in `set_role`: two owners removing each other at once leave one.
            held = db.execute(sa.select(users.c.id).where(owners).with_for_update()).all()
            row = db.execute(sa.select(users).where(mine)).first()
            if row is None:
                raise NotFound(f"no user {user!r}")
            if row.role == "owner" and len(held) <= 1:
                raise Conflict("this is the tenant's last owner: make another owner first")
            db.execute(users.delete().where(mine))
        return _user(row)

    def create_invite(
        self, tenant: str, email: str, role: Role, token_hash: str, expires_at: datetime
    ) -> Invite:
        invite = Invite(
            secrets.token_hex(8), tenant, email.strip().lower(), _role(role), self._now(),
            expires_at, None,
        )  # fmt: skip
        with self._engine.begin() as db:
            self._check_tenant(db, tenant)
            db.execute(invites.insert().values(**vars(invite), token_hash=token_hash))
        return invite

    def invites(self, tenant: str) -> list[Invite]:
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(invites).where(invites.c.tenant == tenant).order_by(invites.c.created_at)
            ).all()
        return [_invite(row) for row in rows]

    def invite(self, token_hash: str) -> Invite | None:
        with self._engine.connect() as db:
            row = db.execute(sa.select(invites).where(invites.c.token_hash == token_hash)).first()
        return None if row is None else _invite(row)

    def accept_invite(self, token_hash: str, password_hash: str, now: datetime) -> User:
        usable = (
            (invites.c.token_hash == token_hash)
            & invites.c.used_at.is_(None)
            & (invites.c.expires_at > now)
        )
        with self._engine.begin() as db:
            row = db.execute(sa.select(invites).where(usable)).first()
            # Marked used first, in the same transaction: of two acceptances at once,
            # the second updates no row and fails.
            if (
                row is None
                or db.execute(invites.update().where(usable).values(used_at=now)).rowcount != 1
            ):
                raise NotFound("this invitation is unknown, used already, or expired")
            mine = (users.c.tenant == row.tenant) & (users.c.email == row.email)
            existing = db.execute(sa.select(users).where(mine)).first()
            if existing is None:
                user = User(secrets.token_hex(8), row.tenant, row.email, _role(row.role))
                db.execute(
                    users.insert().values(
                        id=user.id, tenant=user.tenant, email=user.email, role=user.role,
                        password_hash=password_hash,
                    )
                )  # fmt: skip
                return user
            db.execute(users.update().where(mine).values(password_hash=password_hash))
            return _user(existing)

    def create_key(self, tenant: str, name: str, role: Role) -> tuple[ApiKey, str]:
        made = keys.new_key()
        key = ApiKey(made.key_id, tenant, name, _role(role), self._now(), None)
        with self._engine.begin() as db:
            self._check_tenant(db, tenant)
            row = {**vars(key), "permissions": ""}  # none until the operator grants some
            db.execute(api_keys.insert().values(**row, secret_hash=made.secret_hash))
        return key, made.token

    def keys(self, tenant: str) -> list[ApiKey]:
        with self._engine.connect() as db:
            rows = db.execute(
                sa.select(api_keys)
                .where(api_keys.c.tenant == tenant)
                .order_by(api_keys.c.created_at)
            ).all()
        return [self._key(row) for row in rows]

    def revoke_key(self, tenant: str, key: str) -> ApiKey:
        mine = (api_keys.c.id == key) & (api_keys.c.tenant == tenant)
        with self._engine.begin() as db:
            row = db.execute(sa.select(api_keys).where(mine)).first()
            if row is None:
                raise NotFound(f"no key {key!r}")
            if row.revoked_at is None:
                db.execute(api_keys.update().where(mine).values(revoked_at=self._now()))
            row = db.execute(sa.select(api_keys).where(mine)).one()
        return self._key(row)

    def key(self, tenant: str, key: str) -> ApiKey:
        mine = (api_keys.c.id == key) & (api_keys.c.tenant == tenant)
        with self._engine.connect() as db:
            row = db.execute(sa.select(api_keys).where(mine)).first()
        if row is None:
            raise NotFound(f"no key {key!r}")
        return self._key(row)

    def set_permissions(self, tenant: str, key: str, permissions: frozenset[Permission]) -> ApiKey:
        unknown = set(permissions) - set(PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown permissions {sorted(unknown)}: use {', '.join(PERMISSIONS)}")
        mine = (api_keys.c.id == key) & (api_keys.c.tenant == tenant)
        stored = " ".join(sorted(permissions))
        with self._engine.begin() as db:
            if db.execute(api_keys.update().where(mine).values(permissions=stored)).rowcount == 0:
                raise NotFound(f"no key {key!r}")
        return self.key(tenant, key)

    def authenticate(self, token: str) -> Caller | None:
        parsed = keys.parse(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._engine.connect() as db:
            row = db.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None or row.revoked_at is not None or not keys.matches(secret, row.secret_hash):
            return None
        return Caller(row.tenant, row.id, _role(row.role), _permissions(row.permissions))

    def put_connector_token(self, tenant: str, connector: str, account: str, sealed: str) -> None:
        sealed, now = _sealed(sealed), self._now()
        where = _token(tenant, connector, account)
        changed = connector_tokens.update().where(where).values(sealed=sealed, updated_at=now)
        added = connector_tokens.insert().values(
            tenant=tenant, connector=connector, account=account,
            sealed=sealed, created_at=now, updated_at=now,
        )  # fmt: skip
        try:
            with self._engine.begin() as db:
                if db.execute(changed).rowcount == 0:
                    db.execute(added)
        except IntegrityError:  # another writer added it between the two: replace theirs
            with self._engine.begin() as db:
                db.execute(changed)

    def connector_token(self, tenant: str, connector: str, account: str) -> str | None:
        chosen = sa.select(connector_tokens.c.sealed).where(_token(tenant, connector, account))
        with self._engine.connect() as db:
            return db.execute(chosen).scalar_one_or_none()

    def connector_tokens(self, tenant: str) -> list[ConnectorTokenInfo]:
        c = connector_tokens.c
        listed = (
            sa.select(c.tenant, c.connector, c.account, c.created_at, c.updated_at)  # not sealed
            .where(c.tenant == tenant)
            .order_by(c.connector, c.account)
        )
        with self._engine.connect() as db:
            rows = db.execute(listed).all()
        return [
            ConnectorTokenInfo(
                row.tenant,
                row.connector,
                row.account,
                _aware(row.created_at) or self._now(),
                _aware(row.updated_at) or self._now(),
            )
            for row in rows
        ]

    def delete_connector_token(self, tenant: str, connector: str, account: str) -> None:
        with self._engine.begin() as db:
            gone = db.execute(connector_tokens.delete().where(_token(tenant, connector, account)))
        if gone.rowcount == 0:
            raise NotFound(f"no {connector} token for {account!r}")

    def _key(self, row: sa.Row[tuple[object, ...]]) -> ApiKey:
        return ApiKey(
            row.id, row.tenant, row.name, _role(row.role), _aware(row.created_at) or self._now(),
            _aware(row.revoked_at), _permissions(row.permissions),
        )  # fmt: skip

    def close(self) -> None:
        self._engine.dispose()
