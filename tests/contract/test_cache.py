"""One contract for both caches: in-process, and Redis (the real server on 127.0.0.1:6379,
with a key prefix of its own per test)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from hubbub.kernel.cache import Cache, MemoryCache, RedisCache, cached
from hubbub.kernel.redis_guard import redis_guard
from tests.conftest import require_service, unique_name
from tests.redis_outage import redis_stopped

REDIS_URL = "redis://127.0.0.1:6379/0"
MakeCache = Callable[[], Cache]


@pytest.fixture(params=["memory", "redis"])
async def make_cache(request: pytest.FixtureRequest) -> AsyncIterator[MakeCache]:
    """Caches sharing one store: for Redis, clients of the same prefix, as in several
    processes; in process, the one cache every request of the process shares."""
    made: list[Cache] = []
    if request.param == "memory":
        shared = MemoryCache()

        def make() -> Cache:
            return shared
    else:
        require_service("Redis", "127.0.0.1", 6379)
        prefix = unique_name("hubbub_test")

        def make() -> Cache:
            made.append(RedisCache(REDIS_URL, prefix))
            return made[-1]

    yield make
    for cache in made:
        await cache.close()


async def test_values_come_back_until_they_expire(make_cache: MakeCache) -> None:
    cache = make_cache()
    assert await cache.get("k") is None
    await cache.set("k", b"value", ttl_s=0.2)
    assert await make_cache().get("k") == b"value"
    await asyncio.sleep(0.3)
    assert await cache.get("k") is None


async def test_a_lock_has_one_holder_until_released_or_lapsed(make_cache: MakeCache) -> None:
    first, second = make_cache(), make_cache()
    assert await first.lock("job", ttl_s=0.2)
    assert not await second.lock("job", ttl_s=0.2)
    await first.unlock("job")
    assert await second.lock("job", ttl_s=0.2)
    await asyncio.sleep(0.3)
    assert await first.lock("job", ttl_s=0.2)


async def test_a_stampede_computes_once(make_cache: MakeCache) -> None:
    computed = 0

    async def compute() -> bytes:
        nonlocal computed
        computed += 1
        await asyncio.sleep(0.1)
        return b"report"

    answers = await asyncio.gather(
        *(cached(make_cache(), "report?v=1", compute) for _ in range(20))
    )
    assert answers == [b"report"] * 20
    assert computed == 1


async def test_a_new_version_in_the_key_is_computed_again(make_cache: MakeCache) -> None:
    versions = iter([b"old", b"new"])

    async def compute() -> bytes:
        return next(versions)

    cache = make_cache()
    assert await cached(cache, "report?positions=10", compute) == b"old"
    assert await cached(cache, "report?positions=10", compute) == b"old"
    assert await cached(cache, "report?positions=11", compute) == b"new"


@pytest.mark.services
async def test_while_redis_is_down_reports_are_computed_then_cached_in_redis_again() -> None:
    require_service("Redis", "127.0.0.1", 6379)
    prefix = unique_name("hubbub_test")
    guard = redis_guard(timeout_s=0.2, failures=2, reset_s=0.3)
    cache = RedisCache(REDIS_URL, prefix, guard=guard)
    client = aioredis.Redis.from_url(REDIS_URL)
    computed: list[str] = []

    def compute(value: str) -> Callable[[], Awaitable[bytes]]:
        async def run() -> bytes:
            computed.append(value)
            return value.encode()

        return run

    try:
        with redis_stopped():
            started = time.perf_counter()
            answers = [await cached(cache, "during", compute("during")) for _ in range(10)]
            took_s = time.perf_counter() - started
            assert answers == [b"during"] * 10
            assert computed == ["during"]  # once, kept in the process meanwhile
            assert guard.status == "degraded"
            assert took_s < 0.5
        await asyncio.sleep(0.35)  # the breaker's period ends: the next call is a trial
        assert await cached(cache, "after", compute("after")) == b"after"
        assert guard.status == "ok"
        assert await client.get(f"{prefix}:after") == b"after"
    finally:
        await cache.close()
        await client.aclose()
