"""The gateway's use cases: tenants, their users and keys, and what the operator grants.

The HTTP routes (`api.py`) call these with who asks (`Caller`, from the key or the
operator's token). Each checks the caller's role first and raises `Refused` (a 403 over
HTTP) with the reason; the store's `NotFound` and `Conflict` pass through as they are.
A tenant only ever reaches its own: another tenant's key is `NotFound`, exactly as one
that does not exist, so ids do not leak across tenants.

- The operator makes tenants (each with a first owner key), lists them, and grants a
  tenant's key permissions beyond its role (`ingest`).
- A tenant's admins (and owners) list and add users and keys, never of a role above
  their own, and revoke keys of a role no higher than their own. A revoked key stops
  working at once in this gateway (`forget`), within the key cache's TTL elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from hubbub.gateway.ports import (
    ApiKey,
    Caller,
    NotFound,
    Permission,
    Role,
    Tenant,
    TenantStore,
    User,
)


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

    def add_user(self, who: Caller, email: str, role: Role) -> User:
        return self.store.add_user(granting(who, role).tenant, email, role)

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
