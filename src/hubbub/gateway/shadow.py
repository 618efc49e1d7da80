"""Shadowed reads: answered by one side of a route, sent to the other side as well.

A route with `shadow` set sends each safe request (GET, HEAD, OPTIONS) to both the new
service and the legacy application. The caller gets the serving side's answer as it
streams; the status and a digest of each body are compared off the request's path and
counted in `hubbub_gateway_shadow` (same, different, error), a difference logged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

import structlog
import xxhash
from prometheus_client import Counter
from starlette.types import Message, Receive, Scope, Send

from hubbub.gateway.ports import Caller
from hubbub.gateway.proxy import fetch, forward, send_error
from hubbub.gateway.routing import Route
from hubbub.gateway.upstreams import Unavailable, Upstream
from hubbub.kernel.telemetry import Correlation

log = structlog.get_logger()

SHADOW_COMPARED: Final = Counter(
    "hubbub_gateway_shadow", "Shadowed requests by route and outcome.", ["route", "outcome"]
)


@dataclass
class ShadowReads:
    """Shadowed reads; `comparing` holds the comparisons still running, until `close`."""

    comparing: list[asyncio.Task[None]] = field(default_factory=list)

    async def answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller,
        primary: Upstream,
        shadow: Upstream,
        route: Route,
    ) -> None:
        """Answer from `primary`, send the same read to `shadow`, compare off the path."""
        digest = xxhash.xxh3_64()
        status = 0

        async def keep(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                digest.update(message.get("body", b""))
            await send(message)

        compared = asyncio.create_task(fetch(scope, caller, shadow))
        try:
            await forward(scope, receive, keep, caller, primary)
        except Unavailable as error:
            compared.cancel()
            await send_error(send, error.status, str(error), retry_after=error.retry_after_s)
            return
        task = asyncio.create_task(_compare(route, scope, (status, digest.hexdigest()), compared))
        self.comparing.append(task)
        task.add_done_callback(self.comparing.remove)

    async def close(self) -> None:
        for task in self.comparing:
            task.cancel()
        await asyncio.gather(*self.comparing, return_exceptions=True)


async def _compare(
    route: Route, scope: Scope, served: tuple[int, str], shadowed: asyncio.Task[tuple[int, str]]
) -> None:
    try:
        other = await shadowed
    except Exception as error:
        SHADOW_COMPARED.labels(route.prefix, "error").inc()
        log.warning("shadow request failed", route=route.prefix, error=str(error))
        return
    if other == served:
        SHADOW_COMPARED.labels(route.prefix, "same").inc()
        return
    SHADOW_COMPARED.labels(route.prefix, "different").inc()
    correlation: Correlation = scope["hubbub.correlation"]
    log.warning(
        "shadow answer differs", route=route.prefix, path=scope["path"],
        served_status=served[0], shadow_status=other[0], same_body=served[1] == other[1],
        request_id=correlation.request_id,
    )  # fmt: skip
