"""The holds of `RateLimiter` (a server's Retry-After, honoured by every client of the
store), against both adapters: in memory on a fake clock, and the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hubbub.kernel.ratelimit import Quota
from tests.support.limiters import Limiters, shared_limiters


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def limiters(request: pytest.FixtureRequest) -> AsyncIterator[Limiters]:
    async with shared_limiters(request.param) as made:
        yield made


async def test_a_key_never_held_is_not_held(limiters: Limiters) -> None:
    assert await limiters.make().held_for("k") == 0.0


async def test_a_hold_is_seen_by_every_client_until_it_ends(limiters: Limiters) -> None:
    one, other = limiters.make(), limiters.make()
    await one.hold("k", 0.3)
    left = await other.held_for("k")
    assert 0.2 < left <= 0.3
    await limiters.wait(0.35)
    assert await other.held_for("k") == 0.0
    assert await one.held_for("k") == 0.0


async def test_a_shorter_hold_does_not_cut_a_longer_one_short(limiters: Limiters) -> None:
    limiter = limiters.make()
    await limiter.hold("k", 0.5)
    await limiter.hold("k", 0.1)
    assert await limiter.held_for("k") > 0.4
    await limiter.hold("k", 0.8)
    assert await limiter.held_for("k") > 0.7


async def test_holds_are_per_key_and_apart_from_the_bucket(limiters: Limiters) -> None:
    limiter = limiters.make()
    await limiter.hold("k", 10)
    assert await limiter.held_for("other") == 0.0
    assert (await limiter.acquire("k", Quota(rate_per_s=1, burst=1))).allowed


async def test_a_hold_of_no_time_holds_nothing(limiters: Limiters) -> None:
    limiter = limiters.make()
    await limiter.hold("k", 0)
    await limiter.hold("j", -5)
    assert await limiter.held_for("k") == 0.0
    assert await limiter.held_for("j") == 0.0
