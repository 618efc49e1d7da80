"""The gateway's own routes: tenants, users and API keys, and the strangler route table.

- `/v1/tenants`: the operator's (its token is `HUBBUB_ADMIN_TOKEN`). Making a tenant
  answers its first owner key, shown once.
- `/v1/tenant`, `/v1/users`, `/v1/keys`: a tenant's own, with its key. Reading needs
  the admin role or above, as does making a user or a key; a key never gets a role
  above its maker's. Another tenant's key or user id is 404, as one that does not exist.
  A user added, given another role or removed is told to the log
  (`hubbub.gateway.directory`); a removed user's sessions end with them.
- `/v1/platform/routes`: the operator's; a change reaches every gateway through the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from hubbub.eventlog.ports import EventLog
from hubbub.gateway.access import answering, operator
from hubbub.gateway.directory import Directory
from hubbub.gateway.ports import (
    ApiKey,
    Caller,
    Permission,
    Role,
    Tenant,
    User,
)
from hubbub.gateway.routing import Route, RouteTable, remove_route, set_route
from hubbub.gateway.service import Connectors, Tenancy
from hubbub.kernel.clock import Clock
from hubbub.kernel.validation import PlainText

CallerOf = Callable[[Request], Caller]


class TenantRead(BaseModel):
    id: str
    name: str
    created_at: datetime


class KeyRead(BaseModel):
    id: str
    tenant: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None
    permissions: list[Permission] = Field(
        default_factory=list, description="What the operator granted beyond the role."
    )


class PermissionsSet(BaseModel):
    permissions: list[Permission] = Field(
        description="Exactly what the key may do beyond its role: `ingest` pushes into the"
        " shared firehose."
    )


class NewKeyRead(KeyRead):
    token: str = Field(description="The key itself: shown this once, never again.")


class NewTenantRead(BaseModel):
    tenant: TenantRead
    owner_key: NewKeyRead


class TenantCreate(BaseModel):
    name: Annotated[str, PlainText] = Field(min_length=1, max_length=100)


class KeyCreate(BaseModel):
    name: Annotated[str, PlainText] = Field("default", min_length=1, max_length=100)
    role: Role = "editor"


class UserCreate(BaseModel):
    email: Annotated[str, PlainText] = Field(
        min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"
    )
    role: Role = "viewer"


class UserRead(BaseModel):
    id: str
    tenant: str
    email: str
    role: Role


class PersonRead(BaseModel):
    id: str
    email: str
    role: Role


class RouteRead(BaseModel):
    prefix: str
    service: str | None
    target: Literal["new", "legacy", "percent"]
    percent: float
    shadow: bool


class RoleChange(BaseModel):
    role: Role


REMOVAL_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "Removed: the user as it was."},
    403: {"description": "The caller is below admin, the user's role is above the"
                         " caller's, or the token is the operator's (it has no tenant)."},
    404: {"description": "No such user in the caller's tenant (another tenant's is"
                         " answered the same)."},
    409: {"description": "The tenant's last owner: make another owner first."},
}  # fmt: skip


class RouteSet(BaseModel):
    prefix: str = Field(description="A path prefix, such as /v1/reports.")
    target: Literal["new", "legacy", "percent"]
    percent: float = Field(0.0, ge=0, le=100, description="With `percent`: tenants on new.")
    shadow: bool = Field(False, description="Also send reads to the other side and compare.")


def build_router(
    tenancy: Tenancy,
    connectors: Connectors,
    routes: RouteTable,
    event_log: EventLog,
    caller: CallerOf,
    clock: Clock,
    directory: Directory,
) -> APIRouter:
    router = APIRouter()
    router.include_router(_connector_routes(connectors, caller))
    router.include_router(_tenant_routes(tenancy, caller, directory))
    router.include_router(_permission_routes(tenancy, caller))
    router.include_router(_key_routes(tenancy, caller))
    router.include_router(_route_routes(routes, event_log, caller, clock))
    return router


def _tenant_routes(tenancy: Tenancy, caller: CallerOf, directory: Directory) -> APIRouter:
    router = APIRouter(tags=["tenants"])

    @router.post("/v1/tenants", status_code=201)
    def create_tenant(request: Request, body: TenantCreate) -> NewTenantRead:
        """Make a tenant (a workspace) and its first owner key (operator only)."""
        with answering():
            tenant, key, token = tenancy.create_tenant(caller(request), body.name)
        return NewTenantRead(tenant=_tenant(tenant), owner_key=_new_key(key, token))

    @router.get("/v1/tenants")
    def list_tenants(request: Request) -> list[TenantRead]:
        """Every tenant (operator only)."""
        with answering():
            return [_tenant(t) for t in tenancy.tenants(caller(request))]

    @router.get("/v1/tenant")
    def own_tenant(request: Request) -> TenantRead:
        """The tenant the key belongs to."""
        with answering():
            return _tenant(tenancy.own_tenant(caller(request)))

    @router.get("/v1/users")
    def list_users(request: Request) -> list[UserRead]:
        """The tenant's users (admin or above)."""
        with answering():
            return [_user(u) for u in tenancy.users(caller(request))]

    @router.get("/v1/people")
    def list_people(request: Request) -> list[PersonRead]:
        """The tenant's people, for any of its members: who can be named as an
        approver, or told with an @ (their id, email and role; nothing else)."""
        with answering():
            return [PersonRead(id=u.id, email=u.email, role=u.role)
                    for u in tenancy.teammates(caller(request))]  # fmt: skip

    @router.post("/v1/users", status_code=201)
    async def add_user(request: Request, body: UserCreate) -> UserRead:
        """Add a user to the tenant (admin or above; never above the caller's role)."""
        with answering():
            user = await asyncio.to_thread(tenancy.add_user, caller(request), body.email, body.role)
        await directory.changed(user)
        return _user(user)

    @router.patch("/v1/users/{user_id}")
    async def set_role(request: Request, user_id: str, body: RoleChange) -> UserRead:
        """Change a user's role (admin or above; never above the caller's own, never for
        someone above it, never the tenant's last owner). Holds at once."""
        with answering():
            user = await asyncio.to_thread(tenancy.set_role, caller(request), user_id, body.role)
        await directory.changed(user)
        return _user(user)

    @router.delete("/v1/users/{user_id}", responses=REMOVAL_ANSWERS)
    async def remove_user(request: Request, user_id: str) -> UserRead:
        """Remove a user from the tenant (admin or above; never someone above the caller,
        never the tenant's last owner); answers the user as it was. Their sessions stop
        at once here, within seconds everywhere; invitations to their email stay as they
        are. The log is told they left (`PersonChanged`, not active): their calendar feed
        ends, and they are told nothing more."""
        with answering():
            user = await tenancy.remove_user(caller(request), user_id)
        await directory.left(user)
        return _user(user)

    return router


def _key_routes(tenancy: Tenancy, caller: CallerOf) -> APIRouter:
    router = APIRouter(prefix="/v1/keys", tags=["keys"])

    @router.get("")
    def list_keys(request: Request) -> list[KeyRead]:
        """The tenant's keys, revoked ones too; never their tokens."""
        with answering():
            return [_key(k) for k in tenancy.keys(caller(request))]

    @router.post("", status_code=201)
    def create_key(request: Request, body: KeyCreate) -> NewKeyRead:
        """Make a key; its token is in this answer only, and stored hashed."""
        with answering():
            key, token = tenancy.create_key(caller(request), body.name, body.role)
        return _new_key(key, token)

    @router.delete("/{key_id}")
    async def revoke_key(request: Request, key_id: str) -> KeyRead:
        """Revoke a key (admin or above, and of a role no higher than the caller's): it
        stops working at once here, within seconds everywhere."""
        with answering():
            return _key(await tenancy.revoke_key(caller(request), key_id))

    return router


def _permission_routes(tenancy: Tenancy, caller: CallerOf) -> APIRouter:
    router = APIRouter(tags=["tenants"])

    def by_operator(request: Request) -> Caller:
        return operator(caller(request))  # before the body is read: 403 comes first

    @router.put(
        "/v1/tenants/{tenant_id}/keys/{key_id}/permissions", dependencies=[Depends(by_operator)]
    )
    async def set_permissions(
        request: Request, tenant_id: str, key_id: str, body: PermissionsSet
    ) -> KeyRead:
        """Grant a tenant's key exactly these permissions (operator only)."""
        with answering():
            key = await tenancy.set_permissions(
                caller(request), tenant_id, key_id, frozenset(body.permissions)
            )
        return _key(key)

    return router


class ConnectorRead(BaseModel):
    connector: str
    account: str
    created_at: datetime
    updated_at: datetime


class ConnectorToken(BaseModel):
    token: str = Field(min_length=1, max_length=4096, description="Sealed at rest; never shown.")


def _connector_routes(connectors: Connectors, caller: CallerOf) -> APIRouter:
    router = APIRouter(prefix="/v1/connectors", tags=["connectors"])

    @router.get("")
    def listed(request: Request) -> list[ConnectorRead]:
        """The tenant's kept connector tokens, by connector and account; never the tokens
        (admin or above)."""
        with answering():
            return [
                ConnectorRead(
                    connector=c.connector,
                    account=c.account,
                    created_at=c.created_at,
                    updated_at=c.updated_at,
                )
                for c in connectors.listed(caller(request))
            ]

    @router.put("/{connector}/{account}", status_code=204, response_class=Response)
    def keep(request: Request, connector: str, account: str, body: ConnectorToken) -> None:
        """Keep a token for an account (a Mastodon instance's host), sealed; replaces the
        one kept before (admin or above)."""
        with answering():
            connectors.keep(caller(request), connector, account, body.token)

    @router.delete("/{connector}/{account}", status_code=204, response_class=Response)
    def forget(request: Request, connector: str, account: str) -> None:
        """Forget an account's token (admin or above)."""
        with answering():
            connectors.forget(caller(request), connector, account)

    return router


def _route_routes(
    routes: RouteTable, event_log: EventLog, caller: CallerOf, clock: Clock
) -> APIRouter:
    router = APIRouter(prefix="/v1/platform/routes", tags=["platform"])

    @router.get("")
    async def list_routes(request: Request) -> list[RouteRead]:
        """Every route: the services' own, and the strangler settings over them."""
        operator(caller(request))
        return [_route(r) for r in routes.routes()]

    @router.put("")
    async def put_route(request: Request, body: Annotated[RouteSet, Body()]) -> RouteRead:
        """Send a prefix to new, to legacy, or to new for a share of tenants (sticky)."""
        operator(caller(request))
        try:
            await set_route(
                event_log, body.prefix, body.target, percent=body.percent, shadow=body.shadow,
                clock=clock,
            )  # fmt: skip
        except ValueError as error:
            raise HTTPException(422, str(error)) from error
        await routes.catch_up()
        found = routes.match(body.prefix)
        assert found is not None  # the route just set matches its own prefix
        return _route(found)

    @router.delete("", status_code=204, response_class=Response)
    async def delete_route(
        request: Request, prefix: Annotated[str, Query(description="The route's prefix.")]
    ) -> None:
        """Drop the strangler setting on a prefix: it goes back to its service."""
        operator(caller(request))
        if prefix not in {r.prefix for r in routes.strangler()}:
            raise HTTPException(404, f"no strangler route {prefix!r}")
        await remove_route(event_log, prefix, clock=clock)
        await routes.catch_up()

    return router


def _tenant(tenant: Tenant) -> TenantRead:
    return TenantRead(id=tenant.id, name=tenant.name, created_at=tenant.created_at)


def _key(key: ApiKey) -> KeyRead:
    return KeyRead(
        id=key.id, tenant=key.tenant, name=key.name, role=key.role,
        created_at=key.created_at, revoked_at=key.revoked_at,
        permissions=sorted(key.permissions),
    )  # fmt: skip


def _new_key(key: ApiKey, token: str) -> NewKeyRead:
    return NewKeyRead(**_key(key).model_dump(), token=token)


def _user(user: User) -> UserRead:
    return UserRead(id=user.id, tenant=user.tenant, email=user.email, role=user.role)


def _route(route: Route) -> RouteRead:
    return RouteRead(
        prefix=route.prefix, service=route.service, target=route.target,
        percent=route.percent, shadow=route.shadow,
    )  # fmt: skip
