"""`/v1/flags` (a tenant's own feature flags) and `/v1/platform/flags` (the operator's).

Anyone of a tenant reads its flags; setting or removing one takes the admin role or
above. A tenant sees only its own flags: another tenant's flag, or a platform flag, is
answered 404 on `GET /v1/flags/{name}`, as one that does not exist. The evaluation
route answers what the tenant gets, platform flags included, without showing their
rules. Platform routes are the operator's only (403 for anyone else).

Writes append a `FlagChanged` and then catch this process's book up, so a writer reads
its own write; other processes see it within their poll interval (`control_poll_s`).
`PUT` replaces the whole flag: a field left out takes its default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from hubbub.eventlog.ports import EventLog
from hubbub.gateway.access import at_least, operator
from hubbub.gateway.flags import (
    Flag,
    FlagBook,
    Reason,
    check_flag_name,
    remove_flag,
    set_flag,
)
from hubbub.gateway.ports import PLATFORM, Caller
from hubbub.kernel.clock import Clock
from hubbub.kernel.validation import PlainText

CallerOf = Callable[[Request], Caller]
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
NamePath = Annotated[
    str,
    Path(description="1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit."),
    AfterValidator(check_flag_name),
]
_MAX_IDS: Final = 10_000


class FlagWrite(BaseModel):
    """A flag as it should be from now on. `enabled` false is the kill switch (off for
    everyone); otherwise deny, then allow, then `percent` of the rest, decide."""

    enabled: bool = True
    percent: float = Field(0.0, ge=0, le=100, description="Share rolled out to, 0 to 100.")
    allow: list[Id] = Field(default_factory=list, max_length=_MAX_IDS)
    deny: list[Id] = Field(default_factory=list, max_length=_MAX_IDS)
    description: Annotated[str, PlainText] = Field("", max_length=1000)


class FlagRead(BaseModel):
    name: str
    scope: str
    enabled: bool
    percent: float
    allow: list[str]
    deny: list[str]
    description: str


class EvaluationRead(BaseModel):
    """What a flag answers for the caller's tenant (and subject), and why: an OpenFeature
    reason, DISABLED (kill switch), TARGETING_MATCH (allow or deny list) or SPLIT."""

    flag: str
    value: bool
    reason: Reason
    scope: str = Field(description="Whose flag answered: the tenant's own, or `platform`.")


def build_router(book: FlagBook, event_log: EventLog, caller: CallerOf, clock: Clock) -> APIRouter:
    """The flag routes; `caller` names who a request speaks for (or raises 401), `clock`
    stamps the changes."""
    router = APIRouter()
    router.include_router(_tenant_routes(book, event_log, caller, clock))
    router.include_router(_platform_routes(book, event_log, caller, clock))
    return router


def _tenant_routes(
    book: FlagBook, event_log: EventLog, caller: CallerOf, clock: Clock
) -> APIRouter:
    router = APIRouter(prefix="/v1/flags", tags=["flags"])

    @router.get("")
    async def list_flags(request: Request) -> list[FlagRead]:
        """The tenant's own flags, by name."""
        return [_flag_read(f) for f in book.flags(caller(request).tenant)]

    @router.get("/{name}")
    async def get(request: Request, name: NamePath) -> FlagRead:
        """One of the tenant's own flags."""
        return _flag_read(_find(book, caller(request).tenant, name))

    @router.put("/{name}")
    async def put(request: Request, name: NamePath, body: FlagWrite) -> FlagRead:
        """Set one of the tenant's flags (admin or above); names the platform reserves
        (`route.*`, and its own flags' names) are refused."""
        tenant = at_least(caller(request), "admin").tenant
        if (why := book.reserved(name)) is not None:
            raise HTTPException(403, why)
        return await _set(book, event_log, tenant, name, body, clock)

    @router.delete("/{name}", status_code=204, response_class=Response)
    async def delete(request: Request, name: NamePath) -> None:
        """Remove one of the tenant's flags (admin or above): callers get their default."""
        await _remove(book, event_log, at_least(caller(request), "admin").tenant, name, clock)

    @router.get("/{name}/evaluation")
    async def evaluation(
        request: Request,
        name: NamePath,
        subject: Annotated[
            str | None, Query(max_length=256, description="A user or key id of the tenant.")
        ] = None,
    ) -> EvaluationRead:
        """What the flag answers for the tenant (and `subject`), platform flags included;
        404 when neither the tenant nor the platform has such a flag."""
        tenant = caller(request).tenant
        found = book.governing(name, tenant)
        answer = book.evaluate(name, tenant, subject or None)
        if found is None or answer is None:
            raise HTTPException(404, f"no flag {name!r}: callers get their default")
        value, reason = answer
        return EvaluationRead(flag=name, value=value, reason=reason, scope=found.scope)

    return router


def _platform_routes(
    book: FlagBook, event_log: EventLog, caller: CallerOf, clock: Clock
) -> APIRouter:
    router = APIRouter(prefix="/v1/platform/flags", tags=["flags"])

    @router.get("")
    async def list_flags(request: Request) -> list[FlagRead]:
        """The platform's flags, rolled out across tenants (operator only)."""
        operator(caller(request))
        return [_flag_read(f) for f in book.flags(PLATFORM)]

    @router.get("/{name}")
    async def get(request: Request, name: NamePath) -> FlagRead:
        """One platform flag (operator only)."""
        operator(caller(request))
        return _flag_read(_find(book, PLATFORM, name))

    @router.put("/{name}")
    async def put(request: Request, name: NamePath, body: FlagWrite) -> FlagRead:
        """Set a platform flag (operator, admin or above); allow and deny hold tenant ids."""
        at_least(operator(caller(request)), "admin")
        return await _set(book, event_log, PLATFORM, name, body, clock)

    @router.delete("/{name}", status_code=204, response_class=Response)
    async def delete(request: Request, name: NamePath) -> None:
        """Remove a platform flag (operator, admin or above)."""
        at_least(operator(caller(request)), "admin")
        await _remove(book, event_log, PLATFORM, name, clock)

    return router


def _find(book: FlagBook, scope: str, name: str) -> Flag:
    found = book.lookup(scope, name)
    if found is None:
        raise HTTPException(404, f"no flag {name!r}")
    return found


async def _set(
    book: FlagBook, event_log: EventLog, scope: str, name: str, body: FlagWrite, clock: Clock
) -> FlagRead:
    try:
        change = await set_flag(
            event_log, scope, name, enabled=body.enabled, percent=body.percent,
            allow=body.allow, deny=body.deny, description=body.description, clock=clock,
        )  # fmt: skip
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    await book.catch_up()
    return _flag_read(Flag.from_change(change))


async def _remove(book: FlagBook, event_log: EventLog, scope: str, name: str, clock: Clock) -> None:
    # Catch up first: the flag may have been set through another process a moment ago.
    await book.catch_up()
    _find(book, scope, name)
    await remove_flag(event_log, scope, name, clock=clock)
    await book.catch_up()


def _flag_read(flag: Flag) -> FlagRead:
    return FlagRead(
        name=flag.name, scope=flag.scope, enabled=flag.enabled, percent=flag.percent,
        allow=sorted(flag.allow), deny=sorted(flag.deny), description=flag.description,
    )  # fmt: skip
