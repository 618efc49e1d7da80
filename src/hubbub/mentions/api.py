"""`GET /v1/mentions?q=...&limit=10`: the most followed pages matching what was typed.

Autocomplete fires on every keystroke, so this route is the platform's hottest. It is
answered by `MentionsFastPath`, a plain ASGI middleware, before the framework's routing
and model validation, which cost several times the query itself; the FastAPI route
describes it in the OpenAPI document and shares its code. The answer names the backend
that served it in `X-Mentions-Backend`. The shadow report is at
`GET /v1/mentions/shadow-report`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qs

import msgspec
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from hubbub.mentions.matching import MAX_LIMIT
from hubbub.mentions.normalize import InvalidQuery
from hubbub.mentions.service import MentionsReplica

PATH = "/v1/mentions"
_JSON = b"application/json"


class MentionRead(BaseModel):
    id: str
    handle: str | None
    display_name: str | None
    followers: int
    source: str


ReplicaOf = Callable[[], Awaitable[MentionsReplica]]
"""This process's mentions replica, started (caught up) on first use."""


async def answer(replica_of: ReplicaOf, q: str | None, limit: str | int) -> tuple[int, str, bytes]:
    """Status, serving backend ('' if none was asked) and JSON body of a request."""
    if q is None:
        return _invalid("q", "the query parameter q is required")
    try:
        limit = int(limit)
    except ValueError:
        return _invalid("limit", "limit must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        return _invalid("limit", f"limit must be between 1 and {MAX_LIMIT}")
    replica = await replica_of()
    try:
        backend, found = await replica.suggest_json(q, limit)
    except InvalidQuery as error:
        return _invalid("q", str(error))
    return 200, backend, found


def _invalid(field: str, message: str) -> tuple[int, str, bytes]:
    detail = [{"loc": ["query", field], "msg": message, "type": "value_error"}]
    return 422, "", msgspec.json.encode({"detail": detail})


class MentionsFastPath:
    """Answers `GET /v1/mentions` itself; passes every other request on."""

    def __init__(self, app: ASGIApp, replica_of: ReplicaOf) -> None:
        self.app = app
        self.replica_of = replica_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        params = parse_qs(scope["query_string"].decode("utf-8", "replace"), True)
        status, backend, body = await answer(
            self.replica_of, params.get("q", [None])[0], params.get("limit", ["10"])[0]
        )
        headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(body))]
        if backend:
            headers.append((b"x-mentions-backend", backend.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def build_router(replica_of: ReplicaOf) -> APIRouter:
    router = APIRouter(prefix=PATH, tags=["mentions"])

    @router.get("", response_model=list[MentionRead])
    async def mentions(
        q: Annotated[str, Query(description="What was typed after @.")],
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
    ) -> Response:
        """Pages whose handle or a word of whose name starts with `q`, most followed first.

        The answer's `X-Mentions-Backend` header names the backend that served it.
        """
        status, backend, body = await answer(replica_of, q, limit)
        headers = {"X-Mentions-Backend": backend} if backend else {}
        return Response(body, status, headers, media_type="application/json")

    @router.get("/shadow-report")
    async def shadow_report() -> dict[str, Any]:
        """Agreement between the serving and the shadow backend, and both latencies."""
        replica = await replica_of()
        built: dict[str, Any] = msgspec.to_builtins(await replica.report())
        return built

    return router
