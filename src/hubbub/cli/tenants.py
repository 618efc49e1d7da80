"""`hubbub tenants create|list` and `hubbub keys create|list|revoke|grant`."""

from __future__ import annotations

from typing import Annotated, Any, cast

import typer
from rich.table import Table

from hubbub.bootstrap import open_tenant_store
from hubbub.cli.common import console, fail, load_settings, print_json
from hubbub.gateway.ports import PERMISSIONS, Conflict, NotFound, Permission, Role, TenantStore
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
        console.print(store.create_tenant(name.strip()).id)
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
