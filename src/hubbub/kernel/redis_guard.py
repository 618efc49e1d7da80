"""Redis clients that fail fast, and the guard their callers go through.

Redis is shared by every process (rate-limit counters, the cache), so an outage of it
must cost each caller little: a client gives up on a connection or a reply after a
short timeout and never retries by itself, and a `Guard` answers from the process
while Redis fails, trying it again once per breaker period.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hubbub.kernel.breaker import CircuitBreaker, Guard

DEFAULT_TIMEOUT_S = 0.25
DEFAULT_FAILURES = 3
DEFAULT_RESET_S = 5.0


def redis_guard(
    name: str = "redis",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    failures: int = DEFAULT_FAILURES,
    reset_s: float = DEFAULT_RESET_S,
) -> Guard:
    """A guard for calls to Redis: its errors, broken connections and timeouts are
    outages, answered by the caller's fallback; `failures` in a row open the circuit
    for `reset_s`."""
    return Guard(name, CircuitBreaker(failures, reset_s), timeout_s, (RedisError, OSError))


def redis_client(url: str, timeout_s: float) -> aioredis.Redis:
    """A client that gives up on a connection or a reply after `timeout_s`, and does not
    retry by itself: the guard's breaker decides when Redis is tried again."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
