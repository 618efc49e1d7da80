"""The in-process cache stays within its bounds of entries and bytes, whatever keys its
callers make up, and forgets a lock nobody unlocked once it has expired."""

from __future__ import annotations

from hubbub.kernel.cache import MemoryCache
from hubbub.kernel.clock import FixedClock


async def test_the_oldest_answers_go_once_their_bytes_pass_the_bound() -> None:
    cache = MemoryCache(max_entries=1000, max_bytes=10_000)
    for n in range(50):
        await cache.set(f"report:{n}", bytes(1000), ttl_s=300)
    assert cache.size == (10, 10_000)
    assert await cache.get("report:39") is None
    assert await cache.get("report:40") == bytes(1000)
    await cache.set("report:49", bytes(10), ttl_s=300)  # replaced: counted once
    assert cache.size == (10, 9_010)
    await cache.set("huge", bytes(10_001), ttl_s=300)  # larger than the whole cache
    assert await cache.get("huge") is None
    assert cache.size == (10, 9_010)


async def test_locks_left_behind_are_forgotten_once_expired() -> None:
    clock = FixedClock()
    cache = MemoryCache(max_entries=10, clock=clock)
    for n in range(10):
        assert await cache.lock(f"fill:{n}", ttl_s=5)
    assert not await cache.lock("fill:3", ttl_s=5)  # still held
    clock.advance(6)
    assert await cache.lock("fill:new", ttl_s=5)
    assert len(cache._locks) == 1
