"""The web app's notifications: the page the header's bell opens (`/notifications`),
marking them read (forms with the CSRF token, like every other), and their live arrival
(`/notifications/stream`, Server-Sent Events), which every page's bell listens to
(`static/notifications.js`).

The stream is the platform's own (`GET /v1/notifications/stream`), asked through the
gateway with the person's session and passed on as it comes: the web app keeps nothing.
It resumes after the last id the browser saw (`Last-Event-ID`). When the platform does
not stream (the role is down, or the caller has no inbox), the answer is 204, which tells
an `EventSource` to stop; the bell's script tries again later.
"""

# No `from __future__ import annotations` here: the routes' dependencies are closures,
# which FastAPI can only see in annotations evaluated at definition.
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Protocol

import httpx
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from hubbub.ui import csrf, formatting
from hubbub.ui.api import SESSION, Access, Person, _templates
from hubbub.ui.ports import PlatformApi, Unreachable
from hubbub.ui.service import KnownPeople, Problem

ID: Final = re.compile(r"[0-9]{1,18}")
SHOWN: Final = 50
"""Notifications a page shows (the newest)."""


class StreamAnswer(Protocol):
    """A streamed answer of the platform's API: its status, then its body as it comes."""

    status_code: int

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


class EventStreams(Protocol):
    """The platform's API for answers that last (Server-Sent Events), through the gateway.

    Contract: `open` sends one GET with the person's session token and `headers`, and
    yields the answer once its head has come, whatever its status; its body is read as it
    comes, each chunk as soon as it arrives. `Unreachable` when the gateway cannot be
    reached. Leaving the block closes the request."""

    def open(
        self, path: str, *, token: str, params: dict[str, str], headers: dict[str, str]
    ) -> AbstractAsyncContextManager[StreamAnswer]: ...

    async def close(self) -> None: ...


class GatewayStreams:
    """`EventStreams` over httpx: no limit on a stream's length, only on its silences
    (`quiet_s`, longer than the platform's heartbeat); a client of its own, with no cap on
    its connections (one per open page), so streams never hold up the pages' calls."""

    def __init__(self, base_url: str, quiet_s: float = 60.0) -> None:
        self._base_url = base_url
        timeout = httpx.Timeout(10.0, read=quiet_s)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits)

    @asynccontextmanager
    async def open(
        self, path: str, *, token: str, params: dict[str, str], headers: dict[str, str]
    ) -> AsyncIterator[StreamAnswer]:
        sent = {**headers, "authorization": f"Bearer {token}"}
        try:
            async with self._client.stream("GET", path, params=params, headers=sent) as answer:
                yield _Relayed(answer, self._base_url)
        except httpx.HTTPError as error:
            raise Unreachable(f"the platform's API at {self._base_url}: {error}") from error

    async def close(self) -> None:
        await self._client.aclose()


class _Relayed:
    """An httpx answer whose failures mid-stream are `Unreachable`, as the port says."""

    def __init__(self, answer: httpx.Response, base_url: str) -> None:
        self.status_code = answer.status_code
        self._answer, self._base_url = answer, base_url

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.aiter_bytes():
                yield chunk
        except httpx.HTTPError as error:
            raise Unreachable(f"the platform's API at {self._base_url}: {error}") from error


def build_router(
    api: PlatformApi, streams: EventStreams, people: KnownPeople, key: csrf.CsrfKey
) -> APIRouter:
    """The notifications' pages, asking `api` (and `streams` for the live one)."""
    router = APIRouter()
    templates = _templates()

    access = Access(people, key)

    Who = Annotated[Person, Depends(access.member)]
    Posting = Annotated[Person, Depends(access.posting)]

    @router.get("/notifications", response_class=HTMLResponse)
    async def notifications(
        request: Request, who: Who, unread: Annotated[bool, Query()] = False
    ) -> HTMLResponse:
        """The person's newest notifications, unread ones marked, each with a link."""
        params: dict[str, Any] = {"limit": SHOWN, "unread": "true" if unread else "false"}
        found = await api.call("GET", "/v1/notifications", token=who.session, params=params)
        if not found.ok:
            raise Problem(found.status, found.detail())
        body = found.json()
        shown = [_shown(n) for n in body["notifications"]]
        newest = max((int(n["id"]) for n in shown), default=0)
        context = {
            "person": who, "active": "notifications", "items": shown, "unread": body["unread"],
            "only_unread": unread, "newest": newest,
            "moment": formatting.Moments(who.zone, who.locale),
            "number": lambda n: formatting.number(n, who.locale),
        }  # fmt: skip
        return templates.TemplateResponse(request, "notifications.html", context)

    @router.post("/notifications/read")
    async def mark_read(
        request: Request,
        who: Posting,
        ids: Annotated[list[str] | None, Form(alias="id", max_length=SHOWN)] = None,
        everything: Annotated[str | None, Form(alias="all")] = None,
    ) -> Response:
        """Mark the notifications chosen read (`id`, repeated), or all (`all`); back to
        the page (Post/Redirect/Get)."""
        chosen = [i for i in ids or [] if ID.fullmatch(i)]
        body: dict[str, Any] = {"all": True} if everything else {"ids": chosen}
        answer = await api.call("POST", "/v1/notifications/read", token=who.session, json=body)
        if not answer.ok:
            raise Problem(answer.status, answer.detail())
        return RedirectResponse("/notifications", status_code=303)

    @router.get("/notifications/stream")
    async def stream(
        request: Request,
        after: Annotated[str | None, Query(pattern=f"^{ID.pattern}$")] = None,
    ) -> Response:
        """The person's new notifications as they arrive: the platform's stream, passed on
        (no `/v1/me` first: the gateway checks the session, and refuses a void one)."""
        session = request.cookies.get(SESSION)
        if not session:
            raise HTTPException(401, "sign in first")
        params = {"after": after} if after else {}
        last = request.headers.get("last-event-id", "")
        headers = {"last-event-id": last} if ID.fullmatch(last) else {}
        opened = streams.open(
            "/v1/notifications/stream", token=session, params=params, headers=headers
        )
        answer = await opened.__aenter__()
        if answer.status_code != 200:
            await opened.__aexit__(None, None, None)
            return Response(status_code=204)

        async def relayed() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_bytes():
                    yield chunk
            except Unreachable:
                return
            finally:
                await opened.__aexit__(None, None, None)

        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(relayed(), media_type="text/event-stream", headers=headers)

    return router


def _shown(notification: dict[str, Any]) -> dict[str, Any]:
    """A notification as the page shows it: its time as a moment to write in the zone."""
    created = datetime.fromisoformat(notification["created_at"]).astimezone(UTC)
    return {**notification, "created": created}
