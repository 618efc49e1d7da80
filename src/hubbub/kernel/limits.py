"""A request body limit in front of every HTTP app, the gateway's and each role's.

FastAPI reads whatever body it is sent, so without a limit one request can fill a
process's memory. `BodyLimit` refuses a body over its path's limit with 413: at once when
its Content-Length says so, else as soon as the bytes streamed in pass it (the app then
sees the client as gone, and whatever it answers after the 413 is dropped).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PUSH_PREFIX: Final = "/v1/ingest"
MEDIA_PREFIX: Final = "/v1/media"


def limit_by_path(
    default_bytes: int, push_bytes: int, media_bytes: int | None = None
) -> Callable[[str], int]:
    """Push ingest takes large NDJSON batches, and media uploads images (up to
    `media_bytes`, the default limit when None); everything else is small JSON."""
    media = default_bytes if media_bytes is None else media_bytes

    def limit(path: str) -> int:
        if path.startswith(PUSH_PREFIX):
            return push_bytes
        if path == MEDIA_PREFIX or path.startswith(MEDIA_PREFIX + "/"):
            return media
        return default_bytes

    return limit


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: Callable[[str], int]) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        received = 0
        refused = started = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                refused = True
                if not started:  # an answer already under way is cut short instead
                    await _too_large(send, limit)
                return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            nonlocal started
            if not refused:
                started = True
                await send(message)

        await self.app(scope, counted, unless_refused)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {"detail": f"the request body is over {limit} bytes: send a smaller one"}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
