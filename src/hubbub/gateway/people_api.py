"""People: signing in, sessions, profiles and invitations (what the web app stands on).

- `POST /v1/sessions` (no key: it is how one gets a session) answers a session token for
  an email and password. Attempts are limited per email and per client address, so
  passwords cannot be guessed at speed; a refusal never says whether the email exists.
- `POST /v1/sessions/operator` (no key) answers a session of the operator's for the
  operator's token: the web app's operator pages use it.
- `DELETE /v1/sessions` signs the caller out everywhere: every session of its user,
  this one included, stops at once here and within the key cache's TTL elsewhere.
- `GET|PUT /v1/me`: the signed-in person, with the time zone and locale pages use.
  A person who joins, or whose time zone changes, is told to the log
  (`hubbub.gateway.directory`).
- `POST|GET /v1/invites` (admins): a one-time link to join the tenant with a role, no
  higher than the inviter's; its token is in the answer only.
- `GET /v1/invitations/{token}` and `POST /v1/invitations/{token}/accept` (no key: the
  link is the credential) show an open invitation and use it with a new password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field, field_validator

from hubbub.gateway.access import answering
from hubbub.gateway.directory import Directory
from hubbub.gateway.ports import Caller, Invite, Role, User
from hubbub.gateway.service import People, SignInRefused
from hubbub.gateway.sessions import MAX_PASSWORD, WeakPassword
from hubbub.kernel.ratelimit import Decision
from hubbub.kernel.validation import PlainText

CallerOf = Callable[[Request], Caller]
Limit = Callable[[str], Awaitable[Decision]]
"""Spends one attempt of the sign-in budget named; the decision says if it was allowed."""

Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]


class SignIn(BaseModel):
    email: Annotated[str, PlainText] = Field(min_length=3, max_length=320)
    password: Password


class UserRead(BaseModel):
    id: str
    tenant: str
    email: str
    role: Role
    time_zone: str
    locale: str
    operator: bool = Field(False, description="The operator's session: no tenant's person.")


class OperatorSignIn(BaseModel):
    token: str = Field(min_length=1, max_length=1024, description="The operator's token.")


class OperatorSession(BaseModel):
    token: str = Field(description="Send it as `Authorization: Bearer <token>`.")


OPERATOR_READ = UserRead(
    id="operator", tenant="platform", email="", role="owner", time_zone="UTC", locale="en",
    operator=True,
)  # fmt: skip


class Session(BaseModel):
    token: str = Field(description="Send it as `Authorization: Bearer <token>`.")
    user: UserRead


class Profile(BaseModel):
    time_zone: str = Field(max_length=64, description="An IANA time zone, as Europe/Paris.")
    locale: str = Field(max_length=16, description="A CLDR locale, as en, fr or de_CH.")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use one such as Europe/Paris") from None
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        try:
            return str(Locale.parse(value.replace("-", "_")))
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"unknown locale {value!r}: use one such as en or fr_CH") from None


class InviteCreate(BaseModel):
    email: Annotated[str, PlainText] = Field(
        min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"
    )
    role: Role = "viewer"


class InviteRead(BaseModel):
    id: str
    email: str
    role: Role
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


class NewInvite(InviteRead):
    token: str = Field(description="The link's secret, shown this once: /invite/<token>.")


class Accept(BaseModel):
    password: Password


def build_router(
    people: People,
    caller: CallerOf,
    limit: Limit,
    forget: Callable[[str], None],
    directory: Directory,
) -> APIRouter:
    router = APIRouter(tags=["people"])

    async def limited(*names: str) -> None:
        for name in names:
            decision = await limit(name)
            if not decision.allowed:
                wait = max(1, round(decision.retry_after_s))
                raise HTTPException(
                    429, f"too many attempts: try again in {wait} s",
                    headers={"Retry-After": str(wait)},
                )  # fmt: skip

    @router.post("/v1/sessions", status_code=201)
    async def sign_in(request: Request, body: SignIn) -> Session:
        """Sign in with an email and password; answers a session token."""
        client = request.client.host if request.client else "unknown"
        await limited(f"signin:{body.email.strip().lower()}", f"signin-from:{client}")
        try:
            token, user = await asyncio.to_thread(people.sign_in, body.email, body.password)
        except SignInRefused as error:
            raise HTTPException(401, str(error)) from error
        return Session(token=token, user=_user(user))

    @router.post("/v1/sessions/operator", status_code=201)
    async def sign_in_operator(request: Request, body: OperatorSignIn) -> OperatorSession:
        """Sign in to the web app as the operator, with the operator's token; answers a
        session token that lasts `HUBBUB_OPERATOR_SESSION_HOURS`."""
        client = request.client.host if request.client else "unknown"
        await limited(f"signin-from:{client}")  # no global limit: none could lock it out
        try:
            return OperatorSession(token=people.sign_in_operator(body.token))
        except SignInRefused as error:
            raise HTTPException(401, str(error)) from error

    @router.delete("/v1/sessions", status_code=204, response_class=Response)
    async def sign_out_everywhere(request: Request) -> None:
        """End every session of the signed-in person, on every device."""
        who = caller(request)
        with answering():
            await asyncio.to_thread(people.sign_out_everywhere, who)
        forget(who.key)

    @router.get("/v1/me")
    def me(request: Request) -> UserRead:
        """The signed-in person (or the operator)."""
        who = caller(request)
        if who.operator:
            return OPERATOR_READ
        with answering():
            return _user(people.me(who))

    @router.put("/v1/me")
    async def set_profile(request: Request, body: Profile) -> UserRead:
        """Set where times are shown and how numbers are written for the signed-in person."""
        with answering():
            before = await asyncio.to_thread(people.me, caller(request))
            user = await asyncio.to_thread(
                people.set_profile, caller(request), body.time_zone, body.locale
            )
        if user.time_zone != before.time_zone:  # the locale is not in the directory
            await directory.changed(user)
        return _user(user)

    @router.post("/v1/invites", status_code=201)
    def invite(request: Request, body: InviteCreate) -> NewInvite:
        """Invite someone to the tenant with a role (admin or above; never above the
        inviter's). The link's token is in this answer only."""
        with answering():
            made, token = people.invite(caller(request), body.email, body.role)
        return NewInvite(**_invite(made).model_dump(), token=token)

    @router.get("/v1/invites")
    def invites(request: Request) -> list[InviteRead]:
        """The tenant's invitations, used and open (admin or above)."""
        with answering():
            return [_invite(i) for i in people.invites(caller(request))]

    @router.get("/v1/invitations/{token}")
    async def invitation(request: Request, token: str) -> InviteRead:
        """An open invitation, by its link's token (no key needed: the link is it: 256
        random bits, which no number of tries guesses)."""
        with answering():
            return _invite(await asyncio.to_thread(people.invitation, token))

    @router.post("/v1/invitations/{token}/accept", status_code=201)
    async def accept(request: Request, token: str, body: Accept) -> Session:
        """Join with the invitation, choosing a password; answers a session token."""
        try:
            with answering():
                session, user = await asyncio.to_thread(people.accept, token, body.password)
        except WeakPassword as error:
            raise HTTPException(422, str(error)) from error
        await directory.changed(user)
        return Session(token=session, user=_user(user))

    return router


def _user(user: User) -> UserRead:
    return UserRead(
        id=user.id, tenant=user.tenant, email=user.email, role=user.role,
        time_zone=user.time_zone, locale=user.locale,
    )  # fmt: skip


def _invite(invite: Invite) -> InviteRead:
    return InviteRead(
        id=invite.id, email=invite.email, role=invite.role, created_at=invite.created_at,
        expires_at=invite.expires_at, used_at=invite.used_at,
    )  # fmt: skip
