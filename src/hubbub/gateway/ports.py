"""The gateway's port: the relational store (`TenantStore`). The rate limiter's port is in
the kernel (`hubbub.kernel.ratelimit`), shared with publishing.

The relational store holds tenants (workspaces), their users, their API keys and their
connector tokens. Contract, which every adapter meets (`tests/contract/test_tenant_stores.py`):

- Tenants have unique names; creating a second one of the same name is `Conflict`.
- A user belongs to one tenant with one role of `ROLES`; an email is unique within
  its tenant. A tenant with an owner keeps one: neither a role change nor a removal
  takes its last.
- A key is shown once, when made; the store keeps its hash. `authenticate` answers the
  key's tenant, role and permissions for a valid, unrevoked token, and None for anything else
  (malformed, unknown, revoked, wrong secret), never telling which.
- Everything a tenant owns is reached through its tenant id: a key id of another
  tenant is `NotFound`, as one that does not exist.
- A user signs in with its email and a password kept only as a hash; its sessions
  issued before `end_sessions` are void. An invitation is used once, before it expires.
- A connector token (a Mastodon access token, say) is kept per tenant, connector and
  account (the instance host), sealed by the caller (`hubbub.kernel.sealing`): the store
  refuses, with ValueError, a value that is not sealed, so plaintext is never written.
  Setting one again replaces it; listing them never shows them. Its tenant is not
  checked against the tenants: the CLI's tenant (`HUBBUB_TENANT`) need not be one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol

from hubbub.kernel.signing import TENANT_HEADER as TENANT_HEADER  # shared through the kernel

Role = Literal["owner", "admin", "editor", "viewer"]
ROLES: Final[tuple[Role, ...]] = ("owner", "admin", "editor", "viewer")
Permission = Literal["ingest"]
PERMISSIONS: Final[tuple[Permission, ...]] = ("ingest",)
"""What only the operator grants a key, whatever its role: `ingest` pushes events into the
firehose every tenant's mentions and analytics read."""
PLATFORM: Final = "platform"
"""The tenant id of the operator's token: it manages tenants and platform-wide flags."""


class Conflict(ValueError):
    """The thing exists already; the message says which."""


class NotFound(LookupError):
    """No such thing for this tenant."""


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class User:
    id: str
    tenant: str
    email: str
    role: Role
    time_zone: str = "UTC"
    """Where times are shown to this person (an IANA zone name)."""
    locale: str = "en"
    """How numbers and dates are written for this person (a CLDR locale, `en`, `de_CH`)."""


@dataclass(frozen=True)
class Credentials:
    """What signing in checks, for one user: its password hash (None until it sets one)
    and the moment (µs) before which its sessions are void."""

    user: User
    password_hash: str | None
    sessions_after: int


@dataclass(frozen=True)
class Invite:
    """A one-time invitation to join a tenant with a role; the link's token is shown
    once, when made, and kept only as its hash."""

    id: str
    tenant: str
    email: str
    role: Role
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None
    permissions: frozenset[Permission] = frozenset()


@dataclass(frozen=True)
class ConnectorTokenInfo:
    """A kept connector token, described: which account it is for, never the token."""

    tenant: str
    connector: str
    account: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Caller:
    """Who a valid key speaks for."""

    tenant: str
    key: str
    role: Role
    permissions: frozenset[Permission] = frozenset()

    def may(self, role: Role) -> bool:
        """Whether the caller's role is `role` or above (owner > admin > editor > viewer)."""
        return ROLES.index(self.role) <= ROLES.index(role)

    @property
    def operator(self) -> bool:
        return self.tenant == PLATFORM


class TenantStore(Protocol):
    def create_tenant(self, name: str) -> Tenant: ...

    def tenants(self) -> list[Tenant]: ...

    def add_user(self, tenant: str, email: str, role: Role) -> User: ...

    def users(self, tenant: str) -> list[User]: ...

    def all_users(self) -> list[User]:
        """Every user of every tenant, by tenant then email (what the directory on the log
        is checked against when a gateway starts)."""
        ...

    def create_key(self, tenant: str, name: str, role: Role) -> tuple[ApiKey, str]:
        """The key and its token, which is never available again."""
        ...

    def keys(self, tenant: str) -> list[ApiKey]: ...

    def revoke_key(self, tenant: str, key: str) -> ApiKey: ...

    def key(self, tenant: str, key: str) -> ApiKey:
        """One of the tenant's keys; `NotFound` for another tenant's, as for none."""
        ...

    def set_permissions(self, tenant: str, key: str, permissions: frozenset[Permission]) -> ApiKey:
        """Give the key exactly `permissions` (the operator's call, never a tenant's)."""
        ...

    def authenticate(self, token: str) -> Caller | None: ...

    def user(self, tenant: str, user: str) -> User:
        """One of the tenant's users; `NotFound` for another tenant's, as for none."""
        ...

    def credentials_by_email(self, email: str) -> list[Credentials]:
        """Every user with this email (any tenant), oldest tenant first."""
        ...

    def credentials(self, user: str) -> Credentials | None:
        """The user's credentials by its id alone (a session names only that)."""
        ...

    def set_password(self, tenant: str, user: str, password_hash: str) -> None: ...

    def end_sessions(self, tenant: str, user: str, before_us: int) -> None:
        """Void every session of the user issued before `before_us`."""
        ...

    def set_profile(self, tenant: str, user: str, time_zone: str, locale: str) -> User: ...

    def set_role(self, tenant: str, user: str, role: Role) -> User:
        """Give the tenant's user `role`; NotFound for a user of another tenant or none;
        Conflict when it would leave the tenant without an owner."""
        ...

    def remove_user(self, tenant: str, user: str) -> User:
        """Remove the tenant's user, answering it as it was: its sessions end with it
        (`credentials` is None), its tenant's invitations stay as they are. NotFound for
        a user of another tenant or none; Conflict for the tenant's last owner."""
        ...

    def create_invite(
        self, tenant: str, email: str, role: Role, token_hash: str, expires_at: datetime
    ) -> Invite: ...

    def invites(self, tenant: str) -> list[Invite]: ...

    def invite(self, token_hash: str) -> Invite | None:
        """The invitation whose token hashes to `token_hash`, used or not, or None."""
        ...

    def accept_invite(self, token_hash: str, password_hash: str, now: datetime) -> User:
        """Use the invitation once: its user is added (or, if the email is a user of the
        tenant already, given the password), in one transaction. `NotFound` when it is
        unknown, used or expired at `now`."""
        ...

    def put_connector_token(self, tenant: str, connector: str, account: str, sealed: str) -> None:
        """Keep `sealed` (a `SecretBox.seal` value, else ValueError) for the account,
        replacing the one kept before; the first one's `created_at` stays."""
        ...

    def connector_token(self, tenant: str, connector: str, account: str) -> str | None:
        """The sealed token kept for the account, or None."""
        ...

    def connector_tokens(self, tenant: str) -> list[ConnectorTokenInfo]:
        """The tenant's kept tokens, by connector then account (without the tokens)."""
        ...

    def delete_connector_token(self, tenant: str, connector: str, account: str) -> None:
        """Forget the account's token; `NotFound` if none is kept."""
        ...

    def close(self) -> None: ...
