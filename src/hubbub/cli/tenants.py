"""`hubbub tenants create|list`, `hubbub keys create|list|revoke|grant` and
`hubbub users create|list`."""

from __future__ import annotations

import sys
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from hubbub.bootstrap import open_tenant_store
from hubbub.cli.common import console, fail, load_settings, print_json
from hubbub.gateway.ports import PERMISSIONS, Conflict, NotFound, Permission, Role, TenantStore
from hubbub.gateway.sessions import WeakPassword, hash_password
from hubbub.kernel.clock import SystemClock

tenants_app = typer.Typer(help="Tenants (workspaces).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: shown once, stored hashed, revocable.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _store() -> TenantStore:
    return open_tenant_store(load_settings(), SystemClock())


@tenants_app.command("create")
def create_tenant(name: Annotated[str, typer.Argument(help="The tenant's name.")]) -> None:
    """Make a tenant; prints its id."""
    store = _store()
    try:
        print(store.create_tenant(name.strip()).id)  # stdout: `T=$(hubbub tenants create x)`
    except Conflict as error:
        fail(str(error))
    finally:
        store.close()


@tenants_app.command("list")
def list_tenants(json: JsonOption = False) -> None:
    """Every tenant."""
    store = _store()
    try:
        found = store.tenants()
    finally:
        store.close()
    if json:
        print_json([{"id": t.id, "name": t.name, "created_at": t.created_at.isoformat()}
                    for t in found])  # fmt: skip
        return
    table = Table("id", "name", "created")
    for tenant in found:
        table.add_row(tenant.id, tenant.name, f"{tenant.created_at:%Y-%m-%d %H:%M}")
    console.print(table if found else "no tenants")


@keys_app.command("create")
def create_key(
    tenant: Annotated[str, typer.Option(help="The tenant's id.")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "default",
    role: Annotated[Role, typer.Option(help="owner, admin, editor or viewer.")] = "editor",
) -> None:
    """Make an API key; prints it, once: only its hash is kept."""
    store = _store()
    try:
        key, token = store.create_key(tenant, name, role)
    except NotFound as error:
        fail(str(error))
    finally:
        store.close()
    console.print(f"key {key.id} ({key.role}); the token is shown this once:")
    print(token)


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str, typer.Option(help="The tenant's id.")], json: JsonOption = False
) -> None:
    """A tenant's keys (never their tokens)."""
    store = _store()
    try:
        found = store.keys(tenant)
    finally:
        store.close()
    rows: list[dict[str, Any]] = [
        {
            "id": k.id,
            "name": k.name,
            "role": k.role,
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            "permissions": sorted(k.permissions),
        }
        for k in found
    ]
    if json:
        print_json(rows)
        return
    table = Table("id", "name", "role", "created", "revoked", "permissions")
    for row in rows:
        columns = ("id", "name", "role", "created_at", "revoked_at")
        table.add_row(*(str(row[c] or "") for c in columns), " ".join(row["permissions"]))
    console.print(table if rows else "no keys")


@keys_app.command("revoke")
def revoke_key(
    key: Annotated[str, typer.Argument(help="The key's id.")],
    tenant: Annotated[str, typer.Option(help="The tenant's id.")],
) -> None:
    """Revoke a key: it stops working at once."""
    store = _store()
    try:
        revoked = store.revoke_key(tenant, key)
    except NotFound as error:
        fail(str(error))
    finally:
        store.close()
    console.print(f"key {revoked.id} revoked")


@keys_app.command("grant")
def grant(
    key: Annotated[str, typer.Argument(help="The key's id.")],
    tenant: Annotated[str, typer.Option(help="The tenant's id.")],
    permission: Annotated[
        list[str] | None,
        typer.Option(help="A permission to hold (repeat it); none: take every one away."),
    ] = None,
) -> None:
    """Set what a key may do beyond its role (the operator's call): `--permission ingest`
    lets it push into the shared firehose."""
    unknown = sorted(set(permission or ()) - set(PERMISSIONS))
    if unknown:
        fail(f"unknown permissions {', '.join(unknown)}: use {', '.join(PERMISSIONS)}")
    store = _store()
    try:
        held = cast(frozenset[Permission], frozenset(permission or ()))
        changed = store.set_permissions(tenant, key, held)
    except NotFound as error:
        fail(str(error))
    finally:
        store.close()
    holds = ", ".join(sorted(changed.permissions)) or "no permissions"
    console.print(f"key {changed.id} now holds {holds}")


users_app = typer.Typer(help="People who sign in to the web app.", no_args_is_help=True)


@users_app.command("create")
def create_user(
    tenant: Annotated[str, typer.Option(help="The tenant's id.")],
    email: Annotated[str, typer.Option(help="Their email: what they sign in with.")],
    role: Annotated[Role, typer.Option(help="owner, admin, editor or viewer.")] = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read their password from stdin.")
    ] = False,
) -> None:
    """Add a person to a tenant; prints their id. With `--password-stdin` they can sign in
    at once; without, an admin invites them from the web app to choose one."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    try:
        hashed = hash_password(password) if password is not None else None
    except WeakPassword as error:
        fail(str(error))
    store = _store()
    try:
        user = store.add_user(tenant, email, role)
        if hashed is not None:
            store.set_password(tenant, user.id, hashed)
    except (NotFound, Conflict) as error:
        fail(str(error))
    finally:
        store.close()
    print(user.id)


@users_app.command("list")
def list_users(
    tenant: Annotated[str, typer.Option(help="The tenant's id.")], json: JsonOption = False
) -> None:
    """A tenant's people."""
    store = _store()
    try:
        found = store.users(tenant)
    finally:
        store.close()
    if json:
        print_json([{"id": u.id, "email": u.email, "role": u.role} for u in found])
        return
    table = Table("id", "email", "role")
    for user in found:
        table.add_row(user.id, user.email, user.role)
    console.print(table if found else "no users")
