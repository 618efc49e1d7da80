"""Who may do what: the checks of a caller's role, in one place, with their messages.

The gateway's own routes raise them as HTTP 403s; its proxy path, plain ASGI, asks
`refusal` for the message alone.
"""

from __future__ import annotations

from fastapi import HTTPException

from hubbub.gateway.ports import Caller, Role


def refusal(who: Caller, role: Role) -> str | None:
    """Why `who` may not do what takes `role` (None when it may)."""
    if who.may(role):
        return None
    return f"this needs the {role} role or above; the key is {who.role}"


def at_least(who: Caller, role: Role) -> Caller:
    """`who`, when its role is `role` or above; else a 403."""
    if (why := refusal(who, role)) is not None:
        raise HTTPException(403, why)
    return who


def operator(who: Caller) -> Caller:
    """`who`, when it is the operator; else a 403."""
    if not who.operator:
        raise HTTPException(403, "only the operator's token may do this")
    return who


def tenant_admin(who: Caller) -> Caller:
    """`who`, when it is a tenant's key of the admin role or above; else a 403."""
    if who.operator:
        raise HTTPException(403, "the operator's token has no tenant: use a tenant's key")
    return at_least(who, "admin")
