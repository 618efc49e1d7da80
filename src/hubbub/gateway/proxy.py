"""Forwarding a request to a service: the headers it is sent, and its answer streamed back.

What a service is told (`X-Hubbub-Tenant`, the key and the caller's role, signed with the
deployment's secret; the correlation id and trace context), what of the client's headers
it is not, and the answer passed back as it comes: in one piece when it is short and of a
known length. A public path's request (`PUBLIC_CALLER`) keeps none of the client's
credentials, its cookies included.
Errors the gateway answers itself are JSON: `{"detail": ...}`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import xxhash
from starlette.types import Message, Receive, Scope, Send

from hubbub.gateway.http1 import Response
from hubbub.gateway.ports import TENANT_HEADER, Caller
from hubbub.gateway.routing import LEGACY
from hubbub.gateway.upstreams import Upstream
from hubbub.kernel import tracing
from hubbub.kernel.signing import KEY, PUBLIC_TENANT, ROLE, SIGNED_HEADERS
from hubbub.kernel.telemetry import Correlation

ANSWERED_BY_GATEWAY: Final = frozenset({b"x-request-id", b"date", b"server"})
HOP_BY_HOP: Final = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"host", b"expect",
})  # fmt: skip
CLIENT_ONLY: Final = frozenset({b"authorization", b"x-api-key", b"x-request-id",
                                b"traceparent", b"x-forwarded-for", b"x-forwarded-proto",
                                b"x-forwarded-host", *SIGNED_HEADERS})  # fmt: skip
"""Headers only the gateway sets: what a client sends under these names is dropped."""
NOT_PUBLIC: Final = CLIENT_ONLY | {b"cookie"}
"""Dropped from a public path's request: besides `CLIENT_ONLY`, every credential a client
may send (a session cookie of the web app), so the service sees nobody's."""
WHOLE_BODY_BYTES: Final = 64 * 1024
"""An answer of a known length up to this is passed on in one piece; longer ones, or
ones of unknown length, stream as they come."""


def _forwarded_headers(
    scope: Scope, caller: Caller | None, upstream: Upstream, traceparent: str | None = None
) -> list[tuple[bytes, bytes]]:
    """The request's end-to-end headers, with the gateway's word on who is calling.

    A service is told the tenant by the gateway alone: what a client sent under those
    names is dropped. The legacy application also gets the client's credentials."""
    legacy = upstream.name == LEGACY
    dropped = NOT_PUBLIC if caller is not None and caller.tenant == PUBLIC_TENANT else CLIENT_ONLY
    kept = [
        (k, v) for k, v in scope["headers"]
        if k not in HOP_BY_HOP and (k not in dropped or (legacy and k == b"authorization"))
    ]  # fmt: skip
    correlation: Correlation = scope["hubbub.correlation"]
    client = scope.get("client")
    who: list[tuple[bytes, bytes]] = []
    if caller is None:
        pass
    elif upstream.signer is not None:
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        who = upstream.signer.headers(scope["method"], path, caller.tenant, caller.key, caller.role)
    else:
        who = [(TENANT_HEADER.encode(), caller.tenant.encode()), (KEY, caller.key.encode()),
               (ROLE, caller.role.encode())]  # fmt: skip
    return [
        *kept,
        (b"x-request-id", correlation.request_id.encode()),
        (b"traceparent", (traceparent or correlation.traceparent).encode()),
        *who,
        (b"x-forwarded-for", (client[0] if client else "").encode()),
        (b"x-forwarded-proto", scope.get("scheme", "http").encode()),
        (b"x-forwarded-host", _host(scope)),
    ]


def _host(scope: Scope) -> bytes:
    """The host the client asked for (what links in a page must name)."""
    for name, value in scope["headers"]:
        if name == b"host":
            return bytes(value)
    server = scope.get("server") or ("localhost", None)
    return f"{server[0]}:{server[1]}".encode() if server[1] else str(server[0]).encode()


def _has_body(scope: Scope) -> bool:
    return any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if chunk := message.get("body", b""):
            yield chunk
        if not message.get("more_body", False):
            return


def _target(scope: Scope) -> str:
    """The path and query of the request, as the client encoded them."""
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


async def forward(
    scope: Scope, receive: Receive, send: Send, caller: Caller | None, upstream: Upstream
) -> None:
    """Send the request to `upstream` and stream its answer back, as it comes; with no
    caller (a page of the web app), nobody is vouched for."""
    if tracing.enabled():
        with tracing.client_span(f"{scope['method']} {upstream.name}") as span:
            await _stream(scope, receive, send, caller, upstream, tracing.traceparent_of(span))
    else:
        await _stream(scope, receive, send, caller, upstream, None)


async def _stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    caller: Caller | None,
    upstream: Upstream,
    traceparent: str | None,
) -> None:
    body = _body(receive) if _has_body(scope) else None
    headers = _forwarded_headers(scope, caller, upstream, traceparent)
    response = await upstream.send(scope["method"], _target(scope), headers, body)
    try:
        answer = [
            (k, v) for k, v in response.headers
            if (name := k.lower()) not in HOP_BY_HOP and name not in ANSWERED_BY_GATEWAY
        ]  # fmt: skip
        await send({"type": "http.response.start", "status": response.status, "headers": answer})
        length = response.content_length
        if length is not None and length <= WHOLE_BODY_BYTES:  # most answers: one write
            await send({"type": "http.response.body", "body": await response.read()})
            return
        await _pass_on(response, receive, send)
    finally:
        response.release()


async def _pass_on(response: Response, receive: Receive, send: Send) -> None:
    """The answer's chunks, as they come, until it ends or the client goes away: a live
    stream (SSE) whose page was closed is dropped upstream at once (its connection
    closed, not kept), rather than kept open until the service ends it."""

    async def pump() -> None:
        async for chunk in response.chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pumping = asyncio.create_task(pump())
    gone = asyncio.create_task(client_gone())
    try:
        await asyncio.wait({pumping, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not pumping.done():
            pumping.cancel()
        await asyncio.gather(pumping, gone, return_exceptions=True)
    if not pumping.cancelled() and (error := pumping.exception()) is not None:
        raise error


async def fetch(scope: Scope, caller: Caller, upstream: Upstream) -> tuple[int, str]:
    """The status and a digest of the body of the same read, sent to `upstream`."""
    headers = _forwarded_headers(scope, caller, upstream)
    response = await upstream.send(scope["method"], _target(scope), headers)
    try:
        digest = xxhash.xxh3_64()
        async for chunk in response.chunks():
            digest.update(chunk)
        return response.status, digest.hexdigest()
    finally:
        response.release()


async def send_error(
    send: Callable[[Message], Awaitable[None]],
    status: int,
    detail: str,
    *,
    retry_after: float | None = None,
) -> None:
    body = json.dumps({"detail": detail}).encode()
    answer = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if retry_after is not None:
        answer.append((b"retry-after", b"%d" % max(1, round(retry_after))))
    await send({"type": "http.response.start", "status": status, "headers": answer})
    await send({"type": "http.response.body", "body": body})


async def refuse_unauthenticated(send: Send, sent_one: bool) -> None:
    detail = (
        "the API key is not valid: it is unknown, revoked or malformed"
        if sent_one
        else "an API key is required: send `Authorization: Bearer <key>`"
    )
    body = json.dumps({"detail": detail}).encode()
    answer = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"www-authenticate", b'Bearer realm="hubbub"'),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": answer})
    await send({"type": "http.response.body", "body": body})
