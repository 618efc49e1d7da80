"""A Mastodon streaming server for tests: HTTP/1.1, Server-Sent Events, as the official
API documentation describes them; it records the requests it gets."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found"}


@dataclass
class Reply:
    """One response: an event stream (`hold` keeps it open until the client leaves)."""

    status: int = 200
    content_type: str = "text/event-stream; charset=utf-8"
    body: bytes = b""
    hold: bool = True


@dataclass
class Request:
    target: str
    headers: dict[str, str]


@dataclass
class FakeMastodon:
    """Answers each connection with the next reply (an empty held stream once they run out).

    Streams are sent chunked, in small pieces that split lines, as a real server may.
    """

    replies: list[Reply] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    streamed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            request_line, *header_lines = head.strip().split("\r\n")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.requests.append(Request(request_line.split(" ")[1], headers))
            reply = self.replies.pop(0) if self.replies else Reply()
            if reply.status == 200 and reply.content_type.startswith("text/event-stream"):
                await self._stream(reply, reader, writer)
            else:
                self._answer(reply, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    def _answer(reply: Reply, writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {reply.status} {REASONS[reply.status]}\r\n"
            f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + reply.body
        )

    async def _stream(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: {reply.content_type}\r\n"
            "Transfer-Encoding: chunked\r\nCache-Control: no-store\r\n\r\n".encode()
        )
        for start in range(0, len(reply.body), 37):
            piece = reply.body[start : start + 37]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        self.streamed.set()
        if reply.hold:
            await reader.read()
        else:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
