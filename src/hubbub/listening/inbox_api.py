"""`/v1/inbox`: what mentions a tenant's channels or replies to their posts, what the team
does with it, and its answers.

The caller's tenant is the one the gateway names (signed); another tenant's item answers
404, as one that does not exist. An `Item` is a `Match` (see `hubbub.listening.api`) and
`{"id", "channel", "kind" ("mention" or "reply"), "assignee", "tags", "done", "read"}`.

- `GET /v1/inbox?state=open|done|all&assignee=&tag=&channel=&limit=&before=`:
  `{"items": [Item], "unread": int, "next": str | null}`, newest first; `unread` counts
  the open items nobody read; `next` is the `before` of the next page.
- `PATCH /v1/inbox/{id}` with any of `{"assignee" (null: nobody), "tags", "done",
  "read"}`: the item as it is now.
- `POST /v1/inbox/{id}/reply` with `{"text"}`: 201 `{"post", "in_review"}`, the post
  publishing made (in reply to the item's post, from its channel, as the caller: under
  the approval workflow that applies to them); publishing's refusal otherwise (422 a
  reply too long for the channel, 404 a channel since removed), 503 when it cannot be
  reached.
- `GET /v1/inbox/live`: Server-Sent Events: `event: unread` `data: {"unread": n}` first
  and whenever the count changes, `event: item` `data: Item` (with `id:` its position in
  `matches`) as items arrive, `event: withdrawn` `data: {"post", "channel"}` when an
  item's post was deleted (it leaves the inbox), `: heartbeat` comments when quiet (with
  an `id:`, the position it has read to). With `Last-Event-ID` (or `?after=`) it resumes
  after that position; the stream ends after a while and the client reconnects.
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations.
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from hubbub.kernel.events import SearchMatched
from hubbub.kernel.signing import role_of
from hubbub.listening.api import POSITION, LivePolicy, Tenant, author_of, match_view, sse
from hubbub.listening.inbox import (
    INBOX,
    MAX_TAGS,
    REPLY_CHARS,
    TAG_CHARS,
    Change,
    Inbox,
    InboxFilter,
    Invalid,
    Item,
    Refused,
    Replier,
    ReplyFailed,
    State,
    arrived,
    channel_of,
)
from hubbub.listening.ports import NotFound

LIVE_BATCH: Final = 1000
UNREAD_EVERY_S: Final = 1.0
"""How often a live inbox counts its unread items again (people read and close them)."""
ItemId = Annotated[str, Path(pattern=POSITION, description="The item's id.")]


class ItemChange(BaseModel):
    """What to change of an item; what is left out stays as it was."""

    assignee: str | None = Field(
        None, max_length=255, description="A person's user id; null: nobody."
    )
    tags: list[Annotated[str, Field(max_length=TAG_CHARS)]] | None = Field(
        None, max_length=MAX_TAGS
    )
    done: bool | None = None
    read: bool | None = None


class ReplyBody(BaseModel):
    text: str = Field(..., min_length=1, max_length=REPLY_CHARS)


def item_view(item: Item) -> dict[str, Any]:
    return {
        **match_view(item.match), "id": item.id, "channel": item.channel,
        "kind": item.match.kind, "assignee": item.assignee, "tags": list(item.tags),
        "done": item.done, "read": item.read,
    }  # fmt: skip


@contextmanager
def answering() -> Iterator[None]:
    """The inbox's refusals, as HTTP answers."""
    try:
        yield
    except NotFound as error:
        raise HTTPException(404, str(error)) from error
    except Refused as error:
        raise HTTPException(403, str(error)) from error
    except Invalid as error:
        raise HTTPException(422, str(error)) from error
    except ReplyFailed as error:
        raise HTTPException(error.status, str(error)) from error


def build_inbox_router(
    inbox_of: Callable[[], Awaitable[Inbox]], live: LivePolicy | None = None
) -> APIRouter:
    """The routes; `inbox_of()` answers the started `Inbox`; `live` how a live inbox
    runs (the live streams' policy)."""
    policy = live or LivePolicy()
    router = APIRouter(prefix="/v1/inbox", tags=["listening"])

    async def inbox() -> Inbox:
        return await inbox_of()

    Service = Annotated[Inbox, Depends(inbox)]

    @router.get("")
    async def items(
        tenant: Tenant,
        service: Service,
        state: Annotated[State, Query(description="Open, done, or all items.")] = "open",
        assignee: Annotated[str, Query(max_length=255)] = "",
        tag: Annotated[str, Query(max_length=TAG_CHARS)] = "",
        channel: Annotated[str, Query(max_length=64)] = "",
        before: Annotated[str | None, Query(pattern=POSITION)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """The inbox's items, newest first, and how many open ones nobody read."""
        chosen = InboxFilter(
            state=state, assignee=assignee, tag=" ".join(tag.split()), channel=channel,
            before=int(before) if before else None, limit=limit,
        )  # fmt: skip
        page = await service.items(tenant, chosen)
        shown = page.items
        return {
            "items": [item_view(item) for item in shown],
            "unread": page.unread,
            "next": shown[-1].id if page.more and shown else None,
        }

    @router.patch("/{item}")
    async def change(
        request: Request, tenant: Tenant, service: Service, item: ItemId, body: ItemChange
    ) -> dict[str, Any]:
        """Assign the item (or to nobody), tag it, mark it done or read."""
        said = body.model_fields_set
        wanted = Change(
            assignee=body.assignee, unassign="assignee" in said and body.assignee is None,
            tags=body.tags, done=body.done, read=body.read,
        )  # fmt: skip
        with answering():
            changed = await service.change(tenant, int(item), wanted, author_of(request))
        return item_view(changed)

    @router.post("/{item}/reply", status_code=201)
    async def reply(
        request: Request, tenant: Tenant, service: Service, item: ItemId, body: ReplyBody
    ) -> dict[str, Any]:
        """Answer the item's post from its channel, through publishing, as the caller."""
        replier = Replier(author_of(request), role_of(request.headers))
        with answering():
            made = await service.reply(tenant, int(item), body.text, replier)
        return {"post": made.post, "in_review": made.in_review}

    @router.get(
        "/live",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def inbox_live(
        request: Request,
        tenant: Tenant,
        service: Service,
        after: Annotated[str | None, Query(pattern=POSITION)] = None,
        last_event_id: Annotated[str | None, Header(pattern=POSITION)] = None,
    ) -> StreamingResponse:
        """The unread count and the items as they arrive, as Server-Sent Events."""
        resume = last_event_id or after
        start = int(resume) if resume else await _head(service)
        events = _live(request, service, tenant, start, policy)
        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    return router


async def _head(service: Inbox) -> int:
    await service.live.start()
    return service.live.head


def _is_inbox_search(search: str) -> bool:
    return search.startswith(INBOX)


async def _live(
    request: Request, service: Inbox, tenant: str, cursor: int, policy: LivePolicy
) -> AsyncIterator[str]:
    """The unread count (when it changes) and each item of the tenant past `cursor`, as
    it reaches the log, until `last_s`. Every record looked at moves the stream's
    position, which a block with only an `id:` tells the client (at the start and with
    heartbeats), so a client that reconnects does not read again what was not its."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + policy.last_s
    quiet_since = counted_at = loop.time()
    unread = await service.unread(tenant)
    told = cursor
    yield f"retry: 2000\nid: {cursor}\n\n"
    yield sse("unread", {"unread": unread})
    while loop.time() < ends and not await request.is_disconnected():
        arrivals, cursor = await service.live.since_where(
            tenant, _is_inbox_search, cursor, policy.poll_s
        )
        sent = False
        for arrival in arrivals:
            event = arrival.event
            if isinstance(event, SearchMatched):
                yield sse("item", item_view(arrived(event, arrival.position)), arrival.position)
            else:
                gone = {"post": event.post, "channel": channel_of(event.search)}
                yield sse("withdrawn", gone, arrival.position)
            told = arrival.position
            sent = True
        if sent or loop.time() - counted_at >= UNREAD_EVERY_S:
            counted_at = loop.time()
            if (now := await service.unread(tenant)) != unread:
                unread = now
                yield sse("unread", {"unread": unread})
                sent = True
        if sent:
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= policy.heartbeat_s:
            yield f"id: {cursor}\n: heartbeat\n\n" if cursor > told else ": heartbeat\n\n"
            told = max(told, cursor)
            quiet_since = loop.time()
