"""The cache port, its two adapters, and `cached`, which computes a value once.

- `MemoryCache`: in the process, the embedded default.
- `RedisCache`: shared by every process of every host, to scale out. Keys carry a prefix,
  so several platforms (and tests) share one Redis. While Redis is unreachable or slow
  it keeps entries and locks in the process instead (a `Guard`: a timeout and a circuit
  breaker), so a report is computed rather than failed, and computed once per process.

Invalidation is by key: a caller puts the version of what the value depends on in the
key (the reports put the rollups' log positions), so an entry is never served once its
source has advanced, and old entries simply expire.

A stampede (many requests for one missing entry at once) computes the value once:
`cached` takes a short lock for the key (SET NX in Redis); the others wait for the
value instead of computing it too, and compute it themselves only if the holder of the
lock does not deliver in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from hubbub.kernel.breaker import Guard
from hubbub.kernel.clock import Clock, SystemClock
from hubbub.kernel.redis_guard import redis_client, redis_guard


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def lock(self, key: str, ttl_s: float) -> bool:
        """Take the lock named `key` unless someone holds it; it lapses after `ttl_s`."""
        ...

    async def unlock(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """Entries in a dict, in this process; the oldest go first beyond `max_entries` or
    `max_bytes` of values (a report answer may weigh hundreds of kilobytes: ten thousand
    of them would be gigabytes)."""

    def __init__(
        self, max_entries: int = 10_000, clock: Clock | None = None,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:  # fmt: skip
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock or SystemClock()
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._bytes = 0
        self._locks: dict[str, float] = {}

    @property
    def size(self) -> tuple[int, int]:
        """(entries, bytes of their values) held now."""
        return len(self._entries), self._bytes

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < self._clock.monotonic_s():
            self._drop(key)
            return None
        return entry[1]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._drop(key)
        if len(value) > self.max_bytes:
            return  # would push out everything else, and itself next
        self._entries[key] = (self._clock.monotonic_s() + ttl_s, value)
        self._bytes += len(value)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])

    async def lock(self, key: str, ttl_s: float) -> bool:
        now = self._clock.monotonic_s()
        if self._locks.get(key, 0.0) > now:
            return False
        if len(self._locks) >= self.max_entries:  # locks never unlocked (a crashed fill)
            self._locks = {k: until for k, until in self._locks.items() if until > now}
        self._locks[key] = now + ttl_s
        return True

    async def unlock(self, key: str) -> None:
        self._locks.pop(key, None)

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0


class RedisCache:
    """Entries in Redis under `prefix`, with Redis's own expiry.

    A call Redis does not answer within the guard's timeout, or that the guard's open
    circuit holds back, goes to `fallback` (an in-process cache unless given) instead;
    `guard.status` says `degraded` meanwhile. Entries are keyed by the version of their
    source, so one kept in the process while Redis was away is as right as Redis's.
    """

    def __init__(
        self, url: str, prefix: str, *, guard: Guard | None = None, fallback: Cache | None = None
    ) -> None:
        self.guard = guard or redis_guard()
        self._fallback = fallback or MemoryCache()
        self._redis = redis_client(url, self.guard.timeout_s)
        self._prefix = prefix + ":"

    async def get(self, key: str) -> bytes | None:
        return await self.guard.call(lambda: self._get(key), lambda: self._fallback.get(key))

    async def _get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._prefix + key)
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self.guard.call(
            lambda: self._set(key, value, ttl_s), lambda: self._fallback.set(key, value, ttl_s)
        )

    async def _set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))

    async def lock(self, key: str, ttl_s: float) -> bool:
        return await self.guard.call(
            lambda: self._lock(key, ttl_s), lambda: self._fallback.lock(key, ttl_s)
        )

    async def _lock(self, key: str, ttl_s: float) -> bool:
        taken = await self._redis.set(
            self._prefix + "lock:" + key, b"1", nx=True, px=max(1, int(ttl_s * 1000))
        )
        return bool(taken)

    async def unlock(self, key: str) -> None:
        # The lock may have been taken in either place, while Redis came or went.
        await self._fallback.unlock(key)
        await self.guard.call(lambda: self._unlock(key), _nothing)

    async def _unlock(self, key: str) -> None:
        await self._redis.delete(self._prefix + "lock:" + key)

    async def close(self) -> None:
        await self._redis.aclose()
        await self._fallback.close()


def shared_servers(cache: Cache) -> dict[str, Guard]:
    """The shared servers `cache` depends on, by name, with their guards (for health)."""
    if isinstance(cache, RedisCache):
        return {cache.guard.name: cache.guard}
    return {}


async def _nothing() -> None:
    """The fallback of a call with nothing left to do."""


async def cached(
    cache: Cache,
    key: str,
    compute: Callable[[], Awaitable[bytes]],
    *,
    ttl_s: float = 60.0,
    wait_s: float = 5.0,
) -> bytes:
    """The cached value of `key`, computed (once, however many ask at the same time)
    when it is missing."""
    value = await cache.get(key)
    if value is not None:
        return value
    deadline = time.monotonic() + wait_s
    while not await cache.lock(key, wait_s):
        await asyncio.sleep(0.005)  # another request is computing it
        value = await cache.get(key)
        if value is not None:
            return value
        if time.monotonic() > deadline:
            break  # its holder is gone or slow: compute it here
    try:
        value = await cache.get(key)  # it may have landed while the lock was taken
        if value is None:
            value = await compute()
            await cache.set(key, value, ttl_s)
        return value
    finally:
        await cache.unlock(key)
