"""The gateway's word on a role that answers its health check late (busy folding the
log) and on one that is gone: late is `degraded` and its routes are still served, until
it has not answered in time `TIMEOUTS_TO_DOWN` checks in a row; gone is `down` at once.
Real HTTP servers on loopback."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hubbub.gateway.health import TIMEOUTS_TO_DOWN, Health
from hubbub.gateway.upstreams import CircuitBreaker, Upstream
from hubbub.kernel.clock import SystemClock
from tests.conftest import serving
from tests.support.net import free_port

CLOCK = SystemClock()


def role(busy: asyncio.Event) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        if busy.is_set():
            await asyncio.sleep(1.0)
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/healthz", healthz)])


async def test_a_late_answer_is_degraded_and_only_late_answers_in_a_row_are_down() -> None:
    busy = asyncio.Event()
    async with serving(role(busy)) as url:
        up = Upstream("analytics", url, 0.3, CircuitBreaker(5, 5.0, CLOCK))
        health = Health({"analytics": up}, clock=CLOCK)
        try:
            await health.check()
            assert health.status("analytics") == "ok"
            busy.set()
            for _ in range(TIMEOUTS_TO_DOWN - 1):
                await health.check()
                assert health.status("analytics") == "degraded"  # still served
                assert not health.down("analytics")
            await health.check()
            assert health.status("analytics") == "down"
            busy.clear()
            await health.check()
            assert health.status("analytics") == "ok"
            busy.set()  # one late answer after a good one: degraded again, not down
            await health.check()
            assert health.status("analytics") == "degraded"
        finally:
            await up.close()


async def test_a_role_that_is_gone_is_down_at_once() -> None:
    up = Upstream("analytics", f"http://127.0.0.1:{free_port()}", 0.3,
                  CircuitBreaker(5, 5.0, CLOCK))  # fmt: skip
    health = Health({"analytics": up}, clock=CLOCK)
    try:
        await health.check()
        assert health.status("analytics") == "down"
        assert health.overall() == "down"
    finally:
        await up.close()
