"""The gateway's use cases: tenants, their users and keys, and what the operator grants.

The HTTP routes (`api.py`) call these with who asks (`Caller`, from the key or the
operator's token). Each checks the caller's role first and raises `Refused` (a 403 over
HTTP) with the reason; the store's `NotFound` and `Conflict` pass through as they are.
A tenant only ever reaches its own: another tenant's key is `NotFound`, exactly as one
that does not exist, so ids do not leak across tenants.

- The operator makes tenants (each with a first owner key), lists them, and grants a
  tenant's key permissions beyond its role (`ingest`).
- A tenant's admins (and owners) list and add users and keys, never of a role above
  their own, and revoke keys and remove users of a role no higher than their own. A
  revoked key, or a removed user's session, stops working at once in this gateway
  (`forget`), within the key cache's TTL elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hubbub.gateway.auth import OPERATOR
from hubbub.gateway.ports import (
    ApiKey,
    Caller,
    ConnectorTokenInfo,
    Invite,
    NotFound,
    Permission,
    Role,
    Tenant,
    TenantStore,
    User,
)
from hubbub.gateway.sessions import (
    OPERATOR_USER,
    SessionSigner,
    hash_password,
    needs_rehash,
    verify_password,
)
from hubbub.kernel.clock import Clock, moment_of
from hubbub.kernel.sealing import SecretBox


class Refused(Exception):
    """The caller may not do this; the message says why."""


def refusal(who: Caller, role: Role) -> str | None:
    """Why `who` may not do what takes `role` (None when it may)."""
    if who.may(role):
        return None
    return f"this needs the {role} role or above; the key is {who.role}"


def at_least(who: Caller, role: Role) -> Caller:
    """`who`, when its role is `role` or above; else `Refused`."""
    if (why := refusal(who, role)) is not None:
        raise Refused(why)
    return who


def operator(who: Caller) -> Caller:
    """`who`, when it is the operator; else `Refused`."""
    if not who.operator:
        raise Refused("only the operator's token may do this")
    return who


def tenant_admin(who: Caller) -> Caller:
    """`who`, when it is a tenant's key of the admin role or above; else `Refused`."""
    if who.operator:
        raise Refused("the operator's token has no tenant: use a tenant's key")
    return at_least(who, "admin")


def granting(who: Caller, role: Role) -> Caller:
    """`who`, when it may give `role` to a user or key (an admin, not above itself)."""
    tenant_admin(who)
    if not who.may(role):
        raise Refused(f"a {who.role} key cannot grant the {role} role")
    return who


@dataclass(frozen=True)
class Tenancy:
    """Tenants, users and keys, as the operator and each tenant's admins manage them."""

    store: TenantStore
    forget: Callable[[str], None]
    """Drops a key from the authenticator's cache, so a change to it holds at once."""

    def create_tenant(self, who: Caller, name: str) -> tuple[Tenant, ApiKey, str]:
        """A new tenant, its first owner key, and that key's token (shown once)."""
        operator(who)
        tenant = self.store.create_tenant(name)
        key, token = self.store.create_key(tenant.id, "owner", "owner")
        return tenant, key, token

    def tenants(self, who: Caller) -> list[Tenant]:
        return self.store.tenants() if operator(who) else []

    def own_tenant(self, who: Caller) -> Tenant:
        """The tenant `who` speaks for (`NotFound` for the operator, which has none)."""
        found = next((t for t in self.store.tenants() if t.id == who.tenant), None)
        if found is None:
            raise NotFound("the operator's token has no tenant")
        return found

    def users(self, who: Caller) -> list[User]:
        return self.store.users(tenant_admin(who).tenant)

    def teammates(self, who: Caller) -> list[User]:
        """The people of the caller's tenant, for any of its members (whom to name as
        an approver, whom a comment's @ tells); `Refused` for the operator."""
        if who.operator:
            raise Refused("the operator's token has no tenant: use a tenant's key")
        return self.store.users(who.tenant)

    def add_user(self, who: Caller, email: str, role: Role) -> User:
        return self.store.add_user(granting(who, role).tenant, email, role)

    def set_role(self, who: Caller, user: str, role: Role) -> User:
        """Give a user of the caller's tenant `role` (an admin's, never above its own,
        and never to change someone above it); it holds at once, sessions included."""
        tenant = granting(who, role).tenant
        if not who.may(self.store.user(tenant, user).role):
            raise Refused(f"a {who.role} cannot change the role of someone above it")
        changed = self.store.set_role(tenant, user, role)
        self.forget(session_key(user))
        return changed

    async def remove_user(self, who: Caller, user: str) -> User:
        """Remove a user of the caller's tenant (an admin's, never someone above it, never
        the last owner); its sessions stop at once. Answers the user as it was."""
        tenant = tenant_admin(who).tenant
        found = await asyncio.to_thread(self.store.user, tenant, user)
        if not who.may(found.role):
            raise Refused(f"the {who.role} role cannot remove someone of the {found.role} role")
        removed = await asyncio.to_thread(self.store.remove_user, tenant, user)
        self.forget(session_key(user))  # on the event loop, as `revoke_key`
        return removed

    def keys(self, who: Caller) -> list[ApiKey]:
        """The tenant's keys, revoked ones too; never their tokens."""
        return self.store.keys(tenant_admin(who).tenant)

    def create_key(self, who: Caller, name: str, role: Role) -> tuple[ApiKey, str]:
        """A new key and its token, which is never available again."""
        return self.store.create_key(granting(who, role).tenant, name, role)

    async def revoke_key(self, who: Caller, key_id: str) -> ApiKey:
        """Revoke a key of a role no higher than the caller's: it stops working at once."""
        tenant_admin(who)
        found = await asyncio.to_thread(self.store.key, who.tenant, key_id)
        if not who.may(found.role):
            raise Refused(f"a {who.role} key cannot revoke a {found.role}'s key")
        key = await asyncio.to_thread(self.store.revoke_key, who.tenant, key_id)
        self.forget(key_id)  # on the event loop: the key cache is changed from one thread
        return key

    async def set_permissions(
        self, who: Caller, tenant: str, key_id: str, permissions: frozenset[Permission]
    ) -> ApiKey:
        """Grant a tenant's key exactly `permissions` (the operator's call); its next
        request is checked with what it may do now."""
        operator(who)
        key = await asyncio.to_thread(self.store.set_permissions, tenant, key_id, permissions)
        self.forget(key_id)
        return key


@functools.cache
def _unused_hash() -> str:
    """A hash no password matches, made on the first sign-in rather than at start-up."""
    return hash_password("no one's password, hashed to be checked in vain")


class SignInRefused(Refused):
    """Wrong email or password (never saying which), or no password set yet."""


@dataclass(frozen=True)
class OperatorSessions:
    """The operator's token, and what signs its sessions (keyed with that token too)."""

    token: bytes
    signer: SessionSigner


@dataclass(frozen=True)
class People:
    """People who sign in: passwords, sessions, profiles and invitations.

    A session speaks for its user as stored: the tenant and role are read from the user
    at each check (cached by the authenticator for its TTL), so a changed role holds and
    a user signed out everywhere is refused without waiting for its tokens to expire.
    """

    store: TenantStore
    signer: SessionSigner
    clock: Clock
    invite_ttl_s: float = 7 * 86_400.0
    operator: OperatorSessions | None = None
    """The operator's web sessions; None when no operator's token is set."""

    def sign_in(self, email: str, password: str) -> tuple[str, User]:
        """A session token for the user with this email and password. Every user of that
        email (one per tenant) is tried, oldest tenant first; `SignInRefused` if none."""
        tried = False
        for found in self.store.credentials_by_email(email):
            if found.password_hash is None:
                continue
            if verify_password(found.password_hash, password):
                assert found.password_hash is not None  # verified against it
                if needs_rehash(found.password_hash):
                    user = found.user
                    self.store.set_password(user.tenant, user.id, hash_password(password))
                return self.signer.issue(found.user.id, self.clock.now_us()), found.user
            tried = True
        if not tried:  # as slow as a wrong password: the answer's time tells nothing
            verify_password(_unused_hash(), password)
        raise SignInRefused("wrong email or password")

    def sign_in_operator(self, token: str) -> str:
        """A session of the operator's, for the operator's token; `SignInRefused` for
        any other (or when no operator's token is set)."""
        if self.operator is None or not hmac.compare_digest(token.encode(), self.operator.token):
            raise SignInRefused("wrong operator token")
        return self.operator.signer.issue(OPERATOR_USER, self.clock.now_us())

    def caller(self, token: str) -> Caller | None:
        """Who a session token speaks for, or None (forged, expired, signed out, or a
        user that is gone)."""
        claim = self.signer.check(token, self.clock.now_us())
        if claim is None:
            return self._operator(token)
        found = self.store.credentials(claim.user)
        if found is None or claim.issued_us <= found.sessions_after:
            return None
        user = found.user
        return Caller(user.tenant, session_key(user.id), user.role)

    def _operator(self, token: str) -> Caller | None:
        """The operator, for a token of one of its sessions; else None."""
        if self.operator is None:
            return None
        claim = self.operator.signer.check(token, self.clock.now_us())
        return OPERATOR if claim is not None and claim.user == OPERATOR_USER else None

    def me(self, who: Caller) -> User:
        return self.store.user(who.tenant, user_of(who))

    def set_profile(self, who: Caller, time_zone: str, locale: str) -> User:
        return self.store.set_profile(who.tenant, user_of(who), time_zone, locale)

    def sign_out_everywhere(self, who: Caller) -> None:
        """Void every session of the caller's user, this one included."""
        self.store.end_sessions(who.tenant, user_of(who), self.clock.now_us())

    def change_password(self, who: Caller, current: str, new: str) -> None:
        user = self.me(who)
        (found,) = [c for c in self.store.credentials_by_email(user.email) if c.user == user]
        if not verify_password(found.password_hash, current):
            raise SignInRefused("the current password is wrong")
        self.store.set_password(who.tenant, user.id, hash_password(new))

    def invite(self, who: Caller, email: str, role: Role) -> tuple[Invite, str]:
        """An invitation to the caller's tenant with `role` (an admin's, never above its
        own), and the token of its link, shown this once."""
        granting(who, role)
        token = secrets.token_urlsafe(32)
        expires = moment_of(self.clock.now_us() + int(self.invite_ttl_s * 1_000_000))
        made = self.store.create_invite(who.tenant, email, role, _digest(token), expires)
        return made, token

    def invites(self, who: Caller) -> list[Invite]:
        return self.store.invites(tenant_admin(who).tenant)

    def invitation(self, token: str) -> Invite:
        """The open invitation of a link's token; `NotFound` when unknown, used or expired."""
        found = self.store.invite(_digest(token))
        now = moment_of(self.clock.now_us())
        if found is None or found.used_at is not None or found.expires_at <= now:
            raise NotFound("this invitation is unknown, used already, or expired")
        return found

    def accept(self, token: str, password: str) -> tuple[str, User]:
        """Join with the invitation and a new password; answers a session token. The
        link is checked before the password is hashed, so a stranger's requests cost no
        hashing."""
        self.invitation(token)
        user = self.store.accept_invite(
            _digest(token), hash_password(password), moment_of(self.clock.now_us())
        )
        return self.signer.issue(user.id, self.clock.now_us()), user


def session_key(user: str) -> str:
    """The key id a session's requests are counted and limited under."""
    return f"user:{user}"


def user_of(who: Caller) -> str:
    """The user a session speaks for; `Refused` for an API key or the operator's token."""
    if not who.key.startswith("user:"):
        raise Refused("this is for a person signed in, not an API key")
    return who.key.removeprefix("user:")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


CONNECTORS: Final = ("mastodon",)
"""Connectors a tenant keeps a token for (the account is the instance's host)."""


@dataclass(frozen=True)
class Connectors:
    """A tenant's connector tokens: sealed before they are stored, never shown back."""

    store: TenantStore
    box: SecretBox

    def listed(self, who: Caller) -> list[ConnectorTokenInfo]:
        return self.store.connector_tokens(tenant_admin(who).tenant)

    def keep(self, who: Caller, connector: str, account: str, token: str) -> None:
        tenant_admin(who)
        if connector not in CONNECTORS:
            raise NotFound(f"no connector {connector!r}: use {', '.join(CONNECTORS)}")
        self.store.put_connector_token(who.tenant, connector, account, self.box.seal(token))

    def forget(self, who: Caller, connector: str, account: str) -> None:
        self.store.delete_connector_token(tenant_admin(who).tenant, connector, account)
