"""A tenant's webhook endpoint, served by a test on a local port."""

from __future__ import annotations

import asyncio
import time
from typing import Any


class Receiver:
    """A tenant's webhook endpoint: fails its first `failures` requests (503), answers
    each after `delay_s`, and records what it was sent and when."""

    def __init__(self, failures: int = 0, delay_s: float = 0.0) -> None:
        self.failures = failures
        self.delay_s = delay_s
        self.received: list[tuple[bytes, str]] = []
        self.times: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        self.received.append((body, headers.get(b"hubbub-signature", b"").decode()))
        self.times.append(time.monotonic())
        status = 503 if len(self.received) <= self.failures else 204
        await asyncio.sleep(self.delay_s)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
