"""One contract for both rate limiters: in-process (on a fake clock), and Redis (the real
server on 127.0.0.1:6379, real time, a key prefix of its own per test)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from hubbub.gateway.ratelimit import headers, strictest
from hubbub.kernel.clock import FixedClock, SystemClock
from hubbub.kernel.ratelimit import (
    Decision,
    MemoryRateLimiter,
    Quota,
    RateLimiter,
    RedisRateLimiter,
)
from hubbub.kernel.redis_guard import redis_guard
from tests.conftest import require_service, unique_name
from tests.redis_outage import redis_stopped

REDIS_URL = "redis://127.0.0.1:6379/0"
SLOW = Quota(rate_per_s=1, burst=3)  # nothing refills while a test runs
FAST = Quota(rate_per_s=20, burst=2)  # one request refills every 50 ms


@dataclass
class Bench:
    """Limiters sharing one store, and a way to let time pass for them."""

    make: Callable[[], RateLimiter]
    wait: Callable[[float], Awaitable[None]]
    made: list[RateLimiter] = field(default_factory=list)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def bench(request: pytest.FixtureRequest) -> AsyncIterator[Bench]:
    """For memory, one limiter on a fake clock; for Redis, clients of one prefix, as in
    several replicas, on real time (its keys deleted after)."""
    if request.param == "memory":
        clock = FixedClock()
        shared = MemoryRateLimiter(clock)

        async def wait(seconds: float) -> None:
            clock.advance(seconds)

        yield Bench(make=lambda: shared, wait=wait, made=[shared])
        await shared.close()
        return
    require_service("Redis", "127.0.0.1", 6379)
    prefix = unique_name("hubbub_test")
    made: list[RateLimiter] = []

    def make() -> RateLimiter:
        made.append(RedisRateLimiter(REDIS_URL, prefix, clock=SystemClock()))
        return made[-1]

    yield Bench(make=make, wait=asyncio.sleep, made=made)
    for limiter in made:
        await limiter.close()
    await delete_keys(prefix)


async def delete_keys(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + ":*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def acquire_all(limiter: RateLimiter, key: str, quota: Quota, n: int) -> list[Decision]:
    return [await limiter.acquire(key, quota) for _ in range(n)]


async def test_a_fresh_key_passes_its_burst_then_refuses(bench: Bench) -> None:
    limiter = bench.make()
    passed = await acquire_all(limiter, "k", FAST, FAST.burst)
    refused = await limiter.acquire("k", FAST)
    assert all(decision.allowed for decision in passed)
    assert not refused.allowed
    assert refused.remaining == 0
    assert 0.025 < refused.retry_after_s <= 0.05  # one emission interval, less time spent


async def test_one_more_passes_after_the_emission_interval(bench: Bench) -> None:
    limiter = bench.make()
    await acquire_all(limiter, "k", FAST, FAST.burst)
    refused = await limiter.acquire("k", FAST)
    await bench.wait(refused.retry_after_s + 0.005)
    assert (await limiter.acquire("k", FAST)).allowed
    assert not (await limiter.acquire("k", FAST)).allowed


async def test_a_refusal_consumes_nothing(bench: Bench) -> None:
    limiter = bench.make()
    await acquire_all(limiter, "k", FAST, FAST.burst)
    refusals = await acquire_all(limiter, "k", FAST, 10)
    assert not any(decision.allowed for decision in refusals)
    await bench.wait(0.06)  # one interval and a little: one cell, had the refusals cost none
    assert (await limiter.acquire("k", FAST)).allowed


async def test_remaining_counts_down_and_reset_grows(bench: Bench) -> None:
    limiter = bench.make()
    decisions = await acquire_all(limiter, "k", SLOW, SLOW.burst + 1)
    assert [decision.remaining for decision in decisions] == [2, 1, 0, 0]
    assert [decision.allowed for decision in decisions] == [True, True, True, False]
    assert {decision.limit for decision in decisions} == {SLOW.burst}
    assert [round(decision.reset_s) for decision in decisions] == [1, 2, 3, 3]
    assert decisions[0].retry_after_s == 0


async def test_a_cost_counts_as_that_many_requests(bench: Bench) -> None:
    limiter = bench.make()
    quota = Quota(rate_per_s=1, burst=5)
    assert (await limiter.acquire("k", quota, cost=3)).remaining == 2
    too_much = await limiter.acquire("k", quota, cost=3)
    assert (too_much.allowed, too_much.remaining) == (False, 2)
    assert (await limiter.acquire("k", quota, cost=2)).remaining == 0
    with pytest.raises(ValueError, match="cost"):
        await limiter.acquire("k", quota, cost=6)


async def test_keys_are_independent(bench: Bench) -> None:
    limiter = bench.make()
    await acquire_all(limiter, "busy", SLOW, SLOW.burst)
    assert not (await limiter.acquire("busy", SLOW)).allowed
    other = await limiter.acquire("other", SLOW)
    assert (other.allowed, other.remaining) == (True, SLOW.burst - 1)


async def test_clients_of_one_store_share_buckets(bench: Bench) -> None:
    first, second = bench.make(), bench.make()
    await acquire_all(first, "k", SLOW, SLOW.burst)
    assert not (await second.acquire("k", SLOW)).allowed


@pytest.mark.services
async def test_a_redis_key_expires_when_its_bucket_is_full_again() -> None:
    require_service("Redis", "127.0.0.1", 6379)
    prefix = unique_name("hubbub_test")
    limiter = RedisRateLimiter(REDIS_URL, prefix, clock=SystemClock())
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await limiter.acquire("k", FAST)
        assert 0 < await client.pttl(f"{prefix}:k") <= 50
        await asyncio.sleep(0.06)
        assert await client.exists(f"{prefix}:k") == 0
    finally:
        await limiter.close()
        await client.aclose()
        await delete_keys(prefix)


async def test_the_memory_limiter_forgets_keys_whose_bucket_is_full() -> None:
    clock = FixedClock()
    limiter = MemoryRateLimiter(clock, max_keys=10)
    for n in range(10):
        await limiter.acquire(f"old{n}", FAST)
    clock.advance(1.0)
    for n in range(5):
        await limiter.acquire(f"new{n}", FAST)
    assert len(limiter) == 5


@given(
    rate=st.floats(min_value=0.5, max_value=50),
    burst=st.integers(min_value=1, max_value=10),
    requests=st.lists(
        st.tuples(st.floats(min_value=0, max_value=0.5), st.integers(1, 10)), max_size=60
    ),
)
async def test_no_window_passes_more_than_burst_plus_rate_times_its_length(
    rate: float, burst: int, requests: list[tuple[float, int]]
) -> None:
    clock = FixedClock()
    limiter = MemoryRateLimiter(clock)
    quota = Quota(rate_per_s=rate, burst=burst)
    passed: list[tuple[float, int]] = []
    for gap, wanted in requests:
        clock.advance(gap)
        cost = min(wanted, burst)
        if (await limiter.acquire("k", quota, cost)).allowed:
            passed.append((clock.monotonic_s(), cost))
    for start, (opened, _) in enumerate(passed):
        cells = 0
        for closed, cost in passed[start:]:
            cells += cost
            # The clock is read in whole microseconds: a window may look 1 µs longer.
            assert cells <= burst + rate * (closed - opened + 1e-6) + 1e-9


def test_headers_of_a_pass_and_of_a_refusal() -> None:
    quota = Quota(rate_per_s=50, burst=200, name="key")
    passed = Decision(allowed=True, limit=200, remaining=17, reset_s=2.3, retry_after_s=0)
    refused = Decision(allowed=False, limit=200, remaining=0, reset_s=4.0, retry_after_s=0.02)
    assert headers(passed, quota) == {
        "RateLimit-Limit": "200",
        "RateLimit-Remaining": "17",
        "RateLimit-Reset": "3",
        "RateLimit-Policy": '200;w=4;name="key"',
    }
    assert headers(refused, quota) == {
        "RateLimit-Limit": "200",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "4",
        "RateLimit-Policy": '200;w=4;name="key"',
        "Retry-After": "1",
    }


def test_a_policy_rounds_its_window_up_and_names_only_a_named_quota() -> None:
    fresh = Decision(allowed=True, limit=10, remaining=10, reset_s=0, retry_after_s=0)
    fields = headers(fresh, Quota(rate_per_s=3, burst=10))
    assert fields["RateLimit-Policy"] == "10;w=4"
    assert fields["RateLimit-Reset"] == "0"


def test_strictest_is_a_refusal_if_any_else_the_fewest_remaining() -> None:
    per_key, per_tenant = Quota(10, 20, "key"), Quota(100, 500, "tenant")
    many = Decision(allowed=True, limit=500, remaining=400, reset_s=1, retry_after_s=0)
    few = Decision(allowed=True, limit=20, remaining=3, reset_s=1.7, retry_after_s=0)
    short = Decision(allowed=False, limit=20, remaining=0, reset_s=2, retry_after_s=0.1)
    long = Decision(allowed=False, limit=500, remaining=0, reset_s=5, retry_after_s=0.5)
    assert strictest([(many, per_tenant), (few, per_key)]) == (few, per_key)
    assert strictest([(few, per_key), (long, per_tenant)]) == (long, per_tenant)
    assert strictest([(short, per_key), (long, per_tenant)]) == (long, per_tenant)
    assert strictest([(many, per_tenant)]) == (many, per_tenant)
    with pytest.raises(ValueError, match="at least one"):
        strictest([])


def test_a_quota_needs_a_positive_rate_and_burst() -> None:
    with pytest.raises(ValueError, match="quota"):
        Quota(rate_per_s=0, burst=5)
    with pytest.raises(ValueError, match="quota"):
        Quota(rate_per_s=1, burst=0)


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A server that accepts connections and never answers: Redis hung, or a network
    that drops replies. Yields its redis:// URL."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.services
async def test_while_redis_is_down_the_limit_holds_in_process_then_redis_again() -> None:
    require_service("Redis", "127.0.0.1", 6379)
    prefix = unique_name("hubbub_test")
    guard = redis_guard(timeout_s=0.2, failures=2, reset_s=0.3)
    limiter = RedisRateLimiter(REDIS_URL, prefix, clock=SystemClock(), guard=guard)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        assert (await limiter.acquire("before", SLOW)).allowed
        assert guard.status == "ok"
        with redis_stopped():
            started = time.perf_counter()
            during = await acquire_all(limiter, "during", SLOW, 4)
            took_s = time.perf_counter() - started
            assert [d.allowed for d in during] == [True, True, True, False]
            assert guard.status == "degraded"
            assert took_s < 0.5
        await asyncio.sleep(0.35)  # the breaker's period ends: the next check is a trial
        assert (await limiter.acquire("after", SLOW)).allowed
        assert guard.status == "ok"
        assert await client.exists(f"{prefix}:after") == 1
    finally:
        await limiter.close()
        await client.aclose()
        await delete_keys(prefix)


async def test_a_silent_redis_costs_one_timeout_per_breaker_period() -> None:
    async with silent_server() as url:
        guard = redis_guard(timeout_s=0.1, failures=1, reset_s=60)
        limiter = RedisRateLimiter(url, "silent", clock=SystemClock(), guard=guard)
        try:
            started = time.perf_counter()
            decisions = await acquire_all(limiter, "k", SLOW, 20)
            took_s = time.perf_counter() - started
        finally:
            await limiter.close()
    assert sum(d.allowed for d in decisions) == SLOW.burst
    assert guard.status == "degraded"
    assert 0.1 <= took_s < 0.3  # one timeout, then the open circuit answers at once
