"""Rate limiters sharing one store, as several replicas do, for the contract suites of
what is built on `hubbub.kernel.ratelimit`: in memory on a fake clock, or in the real
Redis on 127.0.0.1:6379 on real time, under a key prefix of its own (deleted after)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import redis.asyncio as aioredis

from hubbub.kernel.clock import FixedClock, SystemClock
from hubbub.kernel.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tests.conftest import require_service, unique_name

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Limiters:
    """`make()` is one more replica's limiter on the shared store; `wait` lets time pass
    for all of them (a fake clock's advance, or a real sleep)."""

    make: Callable[[], RateLimiter]
    wait: Callable[[float], Awaitable[None]]
    made: list[RateLimiter] = field(default_factory=list)


@asynccontextmanager
async def shared_limiters(kind: Literal["memory", "redis"]) -> AsyncIterator[Limiters]:
    if kind == "memory":
        clock = FixedClock()
        shared = MemoryRateLimiter(clock)

        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        yield Limiters(make=lambda: shared, wait=advance, made=[shared])
        await shared.close()
        return
    require_service("Redis", "127.0.0.1", 6379)
    prefix = unique_name("hubbub_test")
    made: list[RateLimiter] = []

    def make() -> RateLimiter:
        made.append(RedisRateLimiter(REDIS_URL, prefix, clock=SystemClock()))
        return made[-1]

    try:
        yield Limiters(make=make, wait=asyncio.sleep, made=made)
    finally:
        for limiter in made:
            await limiter.close()
        await delete_keys(prefix)


async def delete_keys(prefix: str) -> None:
    """Every key of the limiters under `prefix`: buckets and holds."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
