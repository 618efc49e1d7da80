"""The gateway's HTTP/1.1 client against real servers: reuse, streaming both ways, HEAD,
and every way a connection can fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hubbub.gateway.http1 import Pool, UpstreamError, UpstreamTimeout
from tests.conftest import serving


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Answers by path: /echo the body back, /stream in chunks, /slow late, /who the
    client's address (to tell connections apart)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await _answer(send, body)
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(5):
            await send({"type": "http.response.body", "body": b"part %d;" % n, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/slow":
        await asyncio.sleep(1)
        await _answer(send, b"late")
    else:
        await _answer(send, str(scope["client"][1]).encode())


async def _answer(send: Any, body: bytes) -> None:
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def fetch(pool: Pool, path: str, **kwargs: Any) -> tuple[int, bytes]:
    response = await pool.request(kwargs.pop("method", "GET"), path, [], timeout_s=2, **kwargs)
    try:
        return response.status, await response.read()
    finally:
        response.release()


async def test_a_connection_is_kept_and_reused() -> None:
    async with serving(app) as url:
        pool = Pool(url)
        ports = {(await fetch(pool, "/who"))[1] for _ in range(5)}
        pool.close()
    assert len(ports) == 1


async def test_bodies_stream_both_ways() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for n in range(100):
            yield b"%05d" % n

    async with serving(app) as url:
        pool = Pool(url)
        assert await fetch(pool, "/echo", body=parts()) == (200, b"".join(
            b"%05d" % n for n in range(100)
        ))  # fmt: skip
        assert await fetch(pool, "/echo", body=b"x" * 300_000) == (200, b"x" * 300_000)
        response = await pool.request("GET", "/stream", [], timeout_s=2)
        chunks = [chunk async for chunk in response.chunks()]
        response.release()
        assert b"".join(chunks) == b"part 0;part 1;part 2;part 3;part 4;"
        assert await fetch(pool, "/who")  # the connection is still good after a stream
        pool.close()


async def test_head_ends_at_the_head() -> None:
    async with serving(app) as url:
        pool = Pool(url)
        status, body = await asyncio.wait_for(fetch(pool, "/who", method="HEAD"), 3)
        pool.close()
    assert (status, body) == (200, b"")


async def test_a_pooled_connection_the_server_closed_is_replaced_unnoticed() -> None:
    answered = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await reader.readuntil(b"\r\n\r\n")
        answered += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # as a server closing an idle kept-alive connection does

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Pool(f"http://127.0.0.1:{port}")
    assert await fetch(pool, "/") == (200, b"ok")
    await asyncio.sleep(0.05)
    assert await fetch(pool, "/") == (200, b"ok")
    pool.close()
    server.close()
    await server.wait_closed()
    assert answered == 2


async def test_failures_are_told_apart() -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cut_short, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(UpstreamError, match="closed before the answer ended"):
        await fetch(Pool(f"http://127.0.0.1:{port}"), "/")
    server.close()
    await server.wait_closed()
    with pytest.raises(UpstreamError, match="cannot connect"):
        await fetch(Pool(f"http://127.0.0.1:{port}"), "/")  # nobody listens now
    async with serving(app) as url:
        slow = Pool(url)
        with pytest.raises(UpstreamTimeout, match="no answer within"):
            await slow.request("GET", "/slow", [], timeout_s=0.2)
        slow.close()
    with pytest.raises(ValueError, match="http://host:port"):
        Pool("https://example.org")
