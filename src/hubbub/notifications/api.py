"""`/v1/notifications`: a person's notifications, marking them read, and their arrival live.

The caller is the person the gateway names in the signed `X-Hubbub-Key` (a session's key
is `user:<id>`), of the tenant in the signed `X-Hubbub-Tenant`; an API key is nobody's
person and is answered 403. Nobody sees or marks another's notification, of their tenant
or another: the store is only ever asked for the caller's.

Answers:

- `GET /v1/notifications?unread=true&before=ID&limit=N`: `{"notifications": [N…],
  "unread": int, "next": ID | null}`, newest first; `next` is the `before` of the next
  page. A notification `N` is `{"id": "42", "kind", "title", "body", "link" (a web app
  path, or ""), "post", "actor", "notice", "created_at" (ISO 8601, UTC), "read": bool,
  "read_at": ISO 8601 | null}`.
- `POST /v1/notifications/read` with `{"ids": ["42", …]}` or `{"all": true}`:
  `{"marked": int, "unread": int}`; ids not the caller's are ignored.
- `GET /v1/notifications/stream` (`?after=ID`, or the `Last-Event-ID` header when the
  client reconnects): Server-Sent Events. First `event: unread` (`{"unread": int}`), then
  each new notification as `id: ID` / `event: notification` / `data: N`, each batch of
  them followed by `event: unread`; every event has an `id` (an `unread` one, that of the
  last notification before it), so a client that reconnects resumes exactly where it was.
  A `: keepalive` comment when quiet; the stream ends after a while
  (`HUBBUB_NOTIFICATIONS_STREAM_S`) and the client reconnects. Without `after` (or
  `Last-Event-ID`), only notifications from now on.
"""

# No `from __future__ import annotations` here: the routes' dependency on the inbox is a
# closure (`Inboxed`), which FastAPI can only see in annotations evaluated at once.
import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, model_validator

from hubbub.kernel.signing import KEY, TENANT_HEADER
from hubbub.notifications.ports import Notification
from hubbub.notifications.service import Inbox

PERSON_KEY: Final = "user:"
ID: Final = r"^[0-9]{1,18}$"
MAX_IDS: Final = 1000


def tenant_of(request: Request) -> str:
    tenant = request.headers.get(TENANT_HEADER)
    if not tenant:
        raise HTTPException(401, f"no tenant: call through the gateway ({TENANT_HEADER} unset)")
    return tenant


def person_of(request: Request) -> str:
    """The caller's user id; 403 for a caller who is not a person (an API key)."""
    key = request.headers.get(KEY.decode(), "")
    user = key.removeprefix(PERSON_KEY)
    if not key.startswith(PERSON_KEY) or not user:
        raise HTTPException(
            403, "notifications are for people: sign in to the web app (an API key has none)"
        )
    return user


Tenant = Annotated[str, Depends(tenant_of)]
User = Annotated[str, Depends(person_of)]


class ReadBody(BaseModel):
    """Which notifications to mark read: `ids`, or `all`."""

    ids: list[Annotated[str, Field(pattern=ID)]] | None = Field(
        None, max_length=MAX_IDS, description="Ids of the caller's notifications."
    )
    all: bool = Field(False, description="Every notification of the caller.")

    @model_validator(mode="after")
    def _one_of(self) -> "ReadBody":
        if (self.ids is None) == (not self.all):
            raise ValueError('send either "ids" (a list) or "all": true')
        return self


def notification_view(notification: Notification) -> dict[str, Any]:
    """A notification as the API answers it."""
    read = notification.read_us
    return {
        "id": str(notification.id), "kind": notification.kind, "title": notification.title,
        "body": notification.body, "link": notification.link, "post": notification.post,
        "actor": notification.actor, "notice": notification.notice,
        "created_at": _iso(notification.created_us), "read": read is not None,
        "read_at": _iso(read) if read is not None else None,
    }  # fmt: skip


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat()


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One Server-Sent Event (JSON data on one line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def build_router(inbox_of: Callable[[], Awaitable[Inbox]]) -> APIRouter:
    """The routes; `inbox_of()` answers the started `Inbox`."""
    router = APIRouter(tags=["notifications"])

    async def inbox() -> Inbox:
        return await inbox_of()

    Inboxed = Annotated[Inbox, Depends(inbox)]

    @router.get("/v1/notifications")
    async def notifications(
        tenant: Tenant,
        user: User,
        box: Inboxed,
        unread: Annotated[bool, Query(description="Only the unread ones.")] = False,
        before: Annotated[str | None, Query(pattern=ID, description="Older than this id.")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """The caller's notifications, newest first, and how many are unread."""
        page = await box.page(
            tenant, user, unread_only=unread, before=int(before) if before else None, limit=limit
        )
        shown = page.notifications
        return {
            "notifications": [notification_view(n) for n in shown],
            "unread": page.unread,
            "next": str(shown[-1].id) if page.more and shown else None,
        }

    @router.post("/v1/notifications/read")
    async def mark_read(
        request: Request, tenant: Tenant, box: Inboxed, body: ReadBody
    ) -> dict[str, int]:
        """Mark some of the caller's notifications read, or all of them."""
        user = person_of(request)  # after the body's checks: a malformed body is a 422
        ids = None if body.all else [int(i) for i in body.ids or []]
        marked, unread = await box.mark_read(tenant, user, ids)
        return {"marked": marked, "unread": unread}

    @router.get(
        "/v1/notifications/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(
        request: Request,
        tenant: Tenant,
        user: User,
        box: Inboxed,
        after: Annotated[str | None, Query(pattern=ID, description="Resume after this id.")] = None,
        last_event_id: Annotated[str | None, Header(pattern=ID)] = None,
    ) -> StreamingResponse:
        """The caller's new notifications as Server-Sent Events, as they arrive."""
        resume = last_event_id or after
        start = int(resume) if resume else await box.latest(tenant, user)
        events = _events(request, box, tenant, user, start)
        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    return router


async def _events(
    request: Request, box: Inbox, tenant: str, user: str, cursor: int
) -> AsyncIterator[str]:
    """The stream: the unread count, then what arrives, until `last_s` has passed."""
    loop = asyncio.get_running_loop()
    policy = box.stream
    ends = loop.time() + policy.last_s
    quiet_since = loop.time()
    unread = {"unread": await box.unread(tenant, user)}
    yield f"retry: 2000\n\n{sse('unread', unread, cursor)}"
    while loop.time() < ends and not await request.is_disconnected():
        await box.arrivals.wait(min(policy.poll_s, max(0.0, ends - loop.time())))
        page = await box.arrived(tenant, user, cursor)
        if page.notifications:
            for notification in page.notifications:
                yield sse("notification", notification_view(notification), notification.id)
            cursor = page.notifications[-1].id
            yield sse("unread", {"unread": page.unread}, cursor)
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= policy.heartbeat_s:
            yield ": keepalive\n\n"
            quiet_since = loop.time()
