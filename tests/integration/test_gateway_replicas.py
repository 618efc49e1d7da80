"""An upstream with several replicas (`hubbub.gateway.replicas`): requests spread over
them, a replica that cannot be reached is failed over and held out, and it is back in
turn once it answers again, with no restart; real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hubbub.gateway.health import TIMEOUTS_TO_DOWN, Health
from hubbub.gateway.upstreams import CircuitBreaker, Unavailable, Upstream
from hubbub.kernel.clock import SystemClock
from tests.conftest import serving, until
from tests.support.net import free_port

CLOCK = SystemClock()
HOLD_S = 0.3


def replica(name: str) -> Starlette:
    async def who(request: Request) -> PlainTextResponse:
        await request.body()
        return PlainTextResponse(name)

    return Starlette(routes=[Route("/who", who, methods=["GET", "POST"]),
                             Route("/healthz", who)])  # fmt: skip


def upstream(*urls: str) -> Upstream:
    return Upstream("mentions", ",".join(urls), 2.0, CircuitBreaker(5, HOLD_S, CLOCK))


async def ask(up: Upstream, method: str = "GET", body: bytes | None = None) -> str:
    response = await up.send(method, "/who", [], body)
    try:
        return (await response.read()).decode()
    finally:
        response.release()


@pytest.fixture
async def two() -> AsyncIterator[list[str]]:
    async with serving(replica("a")) as a, serving(replica("b")) as b:
        yield [a, b]


async def test_requests_take_the_replicas_in_turn(two: list[str]) -> None:
    up = upstream(*two)
    try:
        assert [await ask(up) for _ in range(4)] == ["a", "b", "a", "b"]
        assert up.replicas_held_out() == 0
    finally:
        await up.close()


async def test_a_replica_that_cannot_be_reached_is_failed_over_and_comes_back(
    two: list[str],
) -> None:
    port = free_port()
    up = upstream(two[0], f"http://127.0.0.1:{port}")
    health = Health({"mentions": up}, clock=CLOCK)
    try:
        assert [await ask(up) for _ in range(4)] == ["a"] * 4  # the read went on to "a"
        assert up.replicas_held_out() == 1
        await health.check()
        assert health.status("mentions") == "degraded"
        assert health.overall() == "degraded"
        async with serving(replica("c"), port=port):
            answers: set[str] = set()

            async def both_answer() -> bool:
                answers.add(await ask(up))
                return answers == {"a", "c"}

            await until(both_answer)
            await health.check()
            assert up.replicas_held_out() == 0
            assert health.status("mentions") == "ok"
    finally:
        await up.close()


async def test_a_write_is_never_sent_twice_and_all_held_out_fails_at_once() -> None:
    async with serving(replica("a")) as a:
        port = free_port()
        up = upstream(f"http://127.0.0.1:{port}", a)
        try:
            with pytest.raises(Unavailable):
                await ask(up, "POST", b"{}")  # refused: not repeated on "a"
            assert await ask(up, "POST", b"{}") == "a"
        finally:
            await up.close()
    up = upstream(f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(Unavailable):
            await ask(up)
        assert up.replicas_held_out() == 2
        with pytest.raises(Unavailable, match="every replica is held out"):
            await ask(up)
    finally:
        await up.close()


def slow_replica(name: str, busy: asyncio.Event) -> Starlette:
    async def who(request: Request) -> PlainTextResponse:
        if busy.is_set():
            await asyncio.sleep(1.0)
        return PlainTextResponse(name)

    return Starlette(routes=[Route("/who", who), Route("/healthz", who)])


async def test_replicas_that_answer_late_are_busy_not_gone() -> None:
    busy = asyncio.Event()
    async with serving(slow_replica("a", busy)) as a, serving(slow_replica("b", busy)) as b:
        up = Upstream("mentions", f"{a},{b}", 0.3, CircuitBreaker(5, HOLD_S, CLOCK))
        health = Health({"mentions": up}, clock=CLOCK)
        try:
            busy.set()
            for _ in range(TIMEOUTS_TO_DOWN - 1):
                with pytest.raises(Unavailable) as late:
                    await ask(up)
                assert late.value.status == 504  # told it timed out
                await health.check()
            assert up.replicas_held_out() == 0  # busy, not gone: still in turn
            assert health.status("mentions") == "degraded"
            busy.clear()
            answered: set[str] = set()

            async def both() -> bool:  # each in turn again once its connection probe is done
                answered.add(await ask(up))
                return answered == {"a", "b"}

            await until(both)
            await health.check()
            assert health.status("mentions") == "ok"
        finally:
            await up.close()
