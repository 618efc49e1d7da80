"""`/v1/streams`: a tenant's saved searches, what a query would match, the stored
matches, and their arrival live.

The caller's tenant is the one the gateway names in the signed `X-Hubbub-Tenant`; the
store is only ever asked for that tenant's streams, so another tenant's stream answers
404, as one that does not exist.

Answers (a `Stream` is `{"id", "name", "query", "terms", "costly", "created_by",
"created_at", "updated_at", "backfilled_to"}`; a `Match` is `{"post", "url", "author",
"text", "langs", "links", "media", "reply_parent", "created_at" (µs), "position"}`):

- `GET /v1/streams`: `{"streams": [Stream]}`; `POST` with `{"name", "query"}`: 201 and
  the stream; `GET|PUT|DELETE /v1/streams/{id}`.
- A query that does not parse: 400 with `{"detail": {"message", "position",
  "expected"}}`; over a limit (searches, terms): 422 saying which.
- `POST /v1/streams/test` with `{"query", "hours", "limit"}`: what it would have matched
  in the last hour(s), `{"matches": [Match], "scanned": int}`.
- `GET /v1/streams/{id}/matches?q=&lang=&since=&until=&before=&limit=`: the stored
  matches, newest first, `{"matches": [Match], "next": str | null}`.
- `GET /v1/streams/{id}/live`: Server-Sent Events, `id:` the match's position in the
  log's `matches` topic, `event: match` (a Match) or `event: withdrawn` (`{"post"}`, the
  post was deleted), a `: heartbeat` comment when quiet. With `Last-Event-ID` (or
  `?after=`), it resumes right after that position, so a client that reconnects loses
  and repeats nothing; without, it starts at the head. The stream ends after a while
  (`HUBBUB_LISTENING_STREAM_S`) and the client reconnects.
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations.
import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from hubbub.kernel.events import SearchMatched
from hubbub.kernel.signing import KEY, TENANT_HEADER
from hubbub.listening.ports import Match, MatchFilter, NotFound, Refused, Search
from hubbub.listening.query import QueryError
from hubbub.listening.service import Listening, match_of

STREAM_ID: Final = r"^[0-9a-f]{16}$"
POSITION: Final = r"^[0-9]{1,18}$"
QUERY_CHARS: Final = 2000
QUERY_ERROR: Final[dict[int | str, dict[str, Any]]] = {
    400: {
        "description": "The query does not parse: where (0-based `position`) and what was"
        " `expected`, in a sentence (`message`); or the body is not JSON (a string).",
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["detail"],
            "properties": {"detail": {"anyOf": [
                {"type": "string"},
                {"type": "object", "required": ["message", "position", "expected"],
                 "properties": {"message": {"type": "string"}, "position": {"type": "integer"},
                                "expected": {"type": "string"}}},
            ]}},
        }}},
    }
}  # fmt: skip
TELL_EVERY: Final = 5000
"""Records looked at, with none of the stream's among them, after which its position is
told to the client without waiting for a heartbeat."""
T = TypeVar("T")


@dataclass(frozen=True)
class LivePolicy:
    """How a live stream runs (settings `HUBBUB_LISTENING_*`)."""

    last_s: float = 300.0
    heartbeat_s: float = 10.0
    poll_s: float = 0.1


def tenant_of(request: Request) -> str:
    tenant = request.headers.get(TENANT_HEADER)
    if not tenant:
        raise HTTPException(401, f"no tenant: call through the gateway ({TENANT_HEADER} unset)")
    return tenant


def author_of(request: Request) -> str:
    """Who is calling, as the gateway names them: the key or the person's session."""
    return request.headers.get(KEY.decode(), "")


Tenant = Annotated[str, Depends(tenant_of)]
StreamId = Annotated[str, Path(pattern=STREAM_ID, description="The stream's id.")]


class StreamBody(BaseModel):
    name: str = Field("", max_length=200, description="What the stream is called.")
    query: str = Field(
        ..., min_length=1, max_length=QUERY_CHARS, description="The search, in the query language."
    )


class TestBody(BaseModel):
    query: str = Field(..., min_length=1, max_length=QUERY_CHARS)
    hours: float = Field(1.0, gt=0, le=24, description="How far back to look.")
    limit: int = Field(50, ge=1, le=500)


def stream_view(search: Search) -> dict[str, Any]:
    return {
        "id": search.id, "name": search.name, "query": search.query, "terms": search.terms,
        "costly": search.costly, "created_by": search.created_by,
        "created_at": _iso(search.created_us), "updated_at": _iso(search.updated_us),
        "updated_us": search.updated_us, "backfilled_to": search.backfilled_to,
    }  # fmt: skip


def web_url(post: str) -> str:
    """Where a person opens the post: bsky.app for a Bluesky at:// URI, the post's own
    address for a Mastodon status."""
    if post.startswith("at://"):
        repo, _, rest = post[5:].partition("/")
        rkey = rest.rpartition("/")[2]
        return f"https://bsky.app/profile/{repo}/post/{rkey}"
    return post if post.startswith("https://") else ""


def match_view(match: Match) -> dict[str, Any]:
    return {
        "post": match.post, "url": web_url(match.post), "author": match.author,
        "text": match.text, "langs": list(match.langs), "links": list(match.links),
        "media": match.media, "reply_parent": match.reply_parent,
        "created_at": match.created_at, "position": match.position,
    }  # fmt: skip


def query_error(error: QueryError) -> HTTPException:
    detail = {"message": str(error), "position": error.position, "expected": error.expected}
    return HTTPException(400, detail)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat()


def _moment(value: str | None, field: str) -> int | None:
    """µs since the epoch of an ISO 8601 date or time (UTC unless it says), or of a
    number of µs."""
    if not value:
        return None
    if re.fullmatch("[0-9]{1,18}", value):
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1e6)
    except (ValueError, OverflowError):
        raise HTTPException(
            422, f"{field}: an ISO 8601 date or time, or µs since 1970, not {value[:40]!r}"
        ) from None


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def build_router(
    listening_of: Callable[[], Awaitable[Listening]], live: LivePolicy = LivePolicy()
) -> APIRouter:
    """The routes; `listening_of()` answers the started `Listening`."""
    router = APIRouter(prefix="/v1/streams", tags=["listening"])

    async def listening() -> Listening:
        return await listening_of()

    Service = Annotated[Listening, Depends(listening)]

    @router.get("")
    async def streams(tenant: Tenant, service: Service) -> dict[str, Any]:
        """The workspace's streams, by name."""
        return {"streams": [stream_view(s) for s in await service.streams(tenant)]}

    @router.post("", status_code=201, responses=QUERY_ERROR)
    async def add(
        request: Request, tenant: Tenant, service: Service, body: StreamBody
    ) -> dict[str, Any]:
        """Save a search: matched from the next post on."""
        return stream_view(await _saved(service, tenant, author_of(request), body, None))

    @router.post("/test", responses=QUERY_ERROR)
    async def test(tenant: Tenant, service: Service, body: TestBody) -> dict[str, Any]:
        """What a query would have matched among the last hour's posts, newest first."""
        try:
            tried = await service.test(tenant, body.query, body.hours, body.limit)
        except QueryError as error:
            raise query_error(error) from error
        return {"matches": [match_view(m) for m in tried.matches], "scanned": tried.scanned}

    @router.get("/{search}")
    async def one(tenant: Tenant, service: Service, search: StreamId) -> dict[str, Any]:
        return stream_view(await _found(service.stream(tenant, search)))

    @router.put("/{search}", responses=QUERY_ERROR)
    async def change(
        request: Request, tenant: Tenant, service: Service, search: StreamId, body: StreamBody
    ) -> dict[str, Any]:
        """Change a stream's name or query: the new query applies from the next post."""
        return stream_view(await _saved(service, tenant, author_of(request), body, search))

    @router.delete("/{search}", status_code=204, response_class=Response)
    async def remove(request: Request, tenant: Tenant, service: Service, search: StreamId) -> None:
        """Stop matching it and drop its stored matches."""
        await _found(service.remove(tenant, author_of(request), search))

    @router.get("/{search}/matches")
    async def matches(
        tenant: Tenant,
        service: Service,
        search: StreamId,
        q: Annotated[str, Query(max_length=200, description="Words in the text.")] = "",
        lang: Annotated[str, Query(max_length=20, pattern=r"^[A-Za-z-]*$")] = "",
        since: Annotated[str | None, Query(description="ISO 8601, or µs.")] = None,
        until: Annotated[str | None, Query(description="ISO 8601, or µs.")] = None,
        before: Annotated[str | None, Query(pattern=POSITION)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """The stored matches, newest first; `next` is the `before` of the next page;
        `live_from` is where the stream's live view resumes to show what came after
        (and what was matched but is not stored yet)."""
        chosen = MatchFilter(
            text=q.strip(), lang=lang, since_us=_moment(since, "since"),
            until_us=_moment(until, "until"), before=int(before) if before else None,
            limit=limit,
        )  # fmt: skip
        page = await _found(service.matches(tenant, search, chosen))
        shown = page.matches
        return {
            "matches": [match_view(m) for m in shown],
            "next": str(shown[-1].position) if page.more and shown else None,
            "live_from": str(page.folded),
        }

    @router.get(
        "/{search}/live",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream_live(
        request: Request,
        tenant: Tenant,
        service: Service,
        search: StreamId,
        after: Annotated[str | None, Query(pattern=POSITION)] = None,
        last_event_id: Annotated[str | None, Header(pattern=POSITION)] = None,
    ) -> StreamingResponse:
        """The stream's matches as Server-Sent Events, as they are made."""
        await _found(service.stream(tenant, search))
        resume = last_event_id or after
        start = int(resume) if resume else None
        events = _live(request, service, tenant, search, start, live)
        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    return router


async def _saved(
    service: Listening, tenant: str, user: str, body: StreamBody, search: str | None
) -> Search:
    try:
        return await service.save(tenant, user, body.name, body.query, search)
    except QueryError as error:
        raise query_error(error) from error
    except Refused as error:
        raise HTTPException(422, str(error)) from error
    except NotFound as error:
        raise HTTPException(404, str(error)) from error


async def _found(pending: Awaitable[T]) -> T:
    try:
        return await pending
    except NotFound as error:
        raise HTTPException(404, str(error)) from error


async def _live(
    request: Request,
    service: Listening,
    tenant: str,
    search: str,
    cursor: int | None,
    policy: LivePolicy,
) -> AsyncIterator[str]:
    """Each match of the stream past `cursor` (the head when None), as it reaches the
    log, until `last_s`. Every record looked at moves the stream's position, and a
    block with only an `id:` tells the client so (at the start, with heartbeats, and
    while it reads a long way back): a client that reconnects resumes from there rather
    than reading again what was nobody's business of its."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + policy.last_s
    quiet_since = loop.time()
    await service.live.start()
    if cursor is None:
        cursor = service.live.head
    told = cursor
    yield f"retry: 2000\nid: {cursor}\n\n"
    while loop.time() < ends and not await request.is_disconnected():
        arrivals, cursor = await service.live.since(tenant, search, cursor, policy.poll_s)
        for arrival in arrivals:
            event = arrival.event
            if isinstance(event, SearchMatched):
                view = match_view(match_of(event, arrival.position))
                yield sse("match", view, arrival.position)
            else:
                yield sse("withdrawn", {"post": event.post}, arrival.position)
            told = arrival.position
        if arrivals:
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= policy.heartbeat_s or cursor - told >= TELL_EVERY:
            yield f"id: {cursor}\n: heartbeat\n\n" if cursor > told else ": heartbeat\n\n"
            told = max(told, cursor)
            quiet_since = loop.time()
