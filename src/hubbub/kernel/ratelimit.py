"""The rate limiter's port (`RateLimiter`, with its `Quota` and `Decision`) and its two
adapters, shared by the gateway (per key and per tenant) and publishing (per account on
each network).

- `MemoryRateLimiter`: in the process, the embedded default; time from an injected clock.
- `RedisRateLimiter`: shared by every replica; one Lua script does the whole check
  atomically on the Redis server's clock, so replicas agree however their clocks drift.
  While Redis is unreachable or slow it counts in the process instead (a `Guard`: a
  timeout and a circuit breaker), so an outage loosens the limit to one budget per
  replica for its duration rather than failing every request.

Both use GCRA, the generic cell rate algorithm (ITU-T I.371; as in redis-cell and the
`throttled` library). A key keeps one number, its theoretical arrival time (TAT): when
the bucket would be full again. Each request of cost `c` pushes the TAT `c` emission
intervals (T = 1 / rate) past `max(TAT, now)`; it passes if the new TAT is at most
`burst` intervals ahead of now, so `burst` requests pass at once from a fresh key and
one more every T after that. A refused request changes nothing. A key whose TAT has
passed is the same as a fresh one, so it can be forgotten (Redis expires it).

Times are whole microseconds (T rounded up, so the limit is never looser than the quota):
integer arithmetic is exact in Python, and exact in Lua's doubles below 2**53 µs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Protocol

from hubbub.kernel.breaker import Guard
from hubbub.kernel.clock import Clock
from hubbub.kernel.redis_guard import redis_client, redis_guard


@dataclass(frozen=True)
class Quota:
    """`burst` requests at once, then `rate_per_s` sustained; `name` labels the policy."""

    rate_per_s: float
    burst: int
    name: str = ""

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0 or self.burst < 1:
            raise ValueError(f"a quota needs a rate above 0 and a burst of 1 or more: {self}")


@dataclass(frozen=True)
class Decision:
    """The answer to one check: whether it passed, and what the client may do next."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float


class RateLimiter(Protocol):
    """Contract, met by every adapter (`tests/contract/test_rate_limiters.py`):

    - A fresh key passes `quota.burst` requests at once; the next is refused with
      `retry_after_s` of about one emission interval (1 / rate), after which one passes.
    - A refused request consumes nothing: the state after it is the state before it.
    - `cost` (1 to `quota.burst`, else `ValueError`) requests are counted as one check.
    - `remaining` is how many requests of cost 1 would pass right now; `reset_s` is how
      long until the key is as fresh as a new one.
    - Keys are independent. Clients of the same store (the same Redis prefix, the same
      `MemoryRateLimiter`) share every key's state.
    - `hold(key, seconds)` records that the key's holder must wait (a server answered
      429 with a Retry-After): `held_for(key)` answers the seconds left, 0.0 once it is
      over, to every client of the store. A hold only ever lengthens: a shorter one
      while a longer one lasts changes nothing. It is apart from the key's bucket, so
      `acquire` does not look at it; a caller that honours holds asks `held_for` first.
    """

    async def acquire(self, key: str, quota: Quota, cost: int = 1) -> Decision: ...

    async def hold(self, key: str, seconds: float) -> None: ...

    async def held_for(self, key: str) -> float: ...

    async def close(self) -> None: ...


MICROS: Final = 1_000_000


def interval_us(quota: Quota) -> int:
    """The emission interval, in whole microseconds, rounded up."""
    return max(1, math.ceil(MICROS / quota.rate_per_s))


def _check_cost(quota: Quota, cost: int) -> None:
    """Refuse to check a cost that could never pass (or that would give capacity back)."""
    if not 1 <= cost <= quota.burst:
        raise ValueError(f"cost must be between 1 and the burst {quota.burst}, not {cost}")


def decide(tat_us: int | None, now_us: int, quota: Quota, cost: int) -> tuple[Decision, int]:
    """GCRA: the decision for a request at `now_us`, and the key's TAT after it.

    The Lua script of `RedisRateLimiter` is this function, line for line.
    """
    interval = interval_us(quota)
    start = now_us if tat_us is None else max(tat_us, now_us)
    new_tat = start + cost * interval
    allow_at = new_tat - quota.burst * interval
    if now_us < allow_at:
        return _describe(False, start, now_us, quota, allow_at - now_us), start
    return _describe(True, new_tat, now_us, quota, 0), new_tat


def _describe(allowed: bool, tat_us: int, now_us: int, quota: Quota, retry_us: int) -> Decision:
    """A decision from the key's TAT after the check (never before `now_us`)."""
    interval = interval_us(quota)
    remaining = (now_us + quota.burst * interval - tat_us) // interval
    return Decision(
        allowed=allowed,
        limit=quota.burst,
        remaining=max(0, remaining),
        reset_s=(tat_us - now_us) / MICROS,
        retry_after_s=retry_us / MICROS,
    )


class MemoryRateLimiter:
    """Each key's TAT in a dict, in this process.

    Past `max_keys`, the keys whose bucket is full again (their TAT has passed) are
    swept out; forgetting them changes no decision. The next sweep waits until the dict
    has doubled, so a sweep costs O(1) per request however many keys stay busy, and the
    dict holds at most about twice the busy keys (or `max_keys`).
    """

    def __init__(self, clock: Clock, max_keys: int = 100_000) -> None:
        self._clock = clock
        self.max_keys = max_keys
        self._sweep_at = max_keys
        self._tats: dict[str, int] = {}
        self._holds: dict[str, int] = {}

    async def acquire(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        _check_cost(quota, cost)
        now_us = self._now_us()
        decision, tat_us = decide(self._tats.get(key), now_us, quota, cost)
        if decision.allowed:
            self._tats[key] = tat_us
            if len(self._tats) > self._sweep_at:
                self._sweep(now_us)
        return decision

    def _sweep(self, now_us: int) -> None:
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now_us}
        self._sweep_at = max(self.max_keys, 2 * len(self._tats))

    async def hold(self, key: str, seconds: float) -> None:
        now_us = self._now_us()
        until_us = now_us + math.ceil(seconds * MICROS)
        if until_us > self._holds.get(key, now_us):
            self._holds[key] = until_us
        if len(self._holds) > self.max_keys:  # holds are rare: a plain sweep will do
            self._holds = {key: until for key, until in self._holds.items() if until > now_us}

    async def held_for(self, key: str) -> float:
        left_us = self._holds.get(key, 0) - self._now_us()
        if left_us <= 0:
            self._holds.pop(key, None)
            return 0.0
        return left_us / MICROS

    def _now_us(self) -> int:
        return math.floor(self._clock.monotonic_s() * MICROS)

    def __len__(self) -> int:
        """How many keys are held (busy ones, and full ones not yet swept)."""
        return len(self._tats)

    async def close(self) -> None:
        self._tats.clear()
        self._holds.clear()


# `decide` in Lua. Redis (5 and later) replicates a script's writes, not the script, so
# reading TIME before writing is allowed and replicas store the primary's TAT. Lua
# numbers are doubles: microseconds stay exact integers, and the TAT is written with
# "%.0f" because tostring() would keep only 14 digits of its 16.
GCRA_SCRIPT: Final = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local start = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now)
local new_tat = start + cost * interval
local allow_at = new_tat - burst * interval
local allowed, tat, retry = 1, new_tat, 0
if now < allow_at then
  allowed, tat, retry = 0, start, allow_at - now
else
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
    'PX', math.ceil((new_tat - now) / 1000))
end
local remaining = math.max(0, math.floor((now + burst * interval - tat) / interval))
return {allowed, remaining, tat - now, retry}
"""

# A hold is a key that expires when the hold ends: PTTL answers the time left. Set in a
# script so that a shorter hold never cuts a longer one short, whichever replica sets it.
HOLD_SCRIPT: Final = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
"""


class RedisRateLimiter:
    """Each key's TAT in Redis under `prefix`, expiring (SET ... PX) when its bucket is
    full again; the check is one EVALSHA of `GCRA_SCRIPT`. A hold is a key of its own,
    under `prefix/held:`, that expires when the hold ends (whole milliseconds, rounded up).

    A check Redis does not answer within the guard's timeout, or that the guard's open
    circuit holds back, is made by `fallback` (an in-process limiter unless given);
    `guard.status` says `degraded` meanwhile. Once Redis answers again every check is
    made there, from the state it kept.
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        clock: Clock,
        guard: Guard | None = None,
        fallback: RateLimiter | None = None,
    ) -> None:
        self.guard = guard or redis_guard()
        self._fallback = fallback or MemoryRateLimiter(clock)
        self._redis = redis_client(url, self.guard.timeout_s)
        self._prefix = prefix + ":"
        self._held_prefix = prefix + "/held:"
        self._script = self._redis.register_script(GCRA_SCRIPT)
        self._hold_script = self._redis.register_script(HOLD_SCRIPT)

    async def acquire(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        _check_cost(quota, cost)
        return await self.guard.call(
            lambda: self._acquire(key, quota, cost),
            lambda: self._fallback.acquire(key, quota, cost),
        )

    async def _acquire(self, key: str, quota: Quota, cost: int) -> Decision:
        reply = await self._script(
            keys=[self._prefix + key], args=[interval_us(quota), quota.burst, cost]
        )
        allowed, remaining, reset_us, retry_us = (int(value) for value in reply)
        return Decision(
            allowed=bool(allowed),
            limit=quota.burst,
            remaining=remaining,
            reset_s=reset_us / MICROS,
            retry_after_s=retry_us / MICROS,
        )

    async def hold(self, key: str, seconds: float) -> None:
        milliseconds = math.ceil(seconds * 1000)
        if milliseconds <= 0:
            return

        async def hold_in_redis() -> None:
            await self._hold_script(keys=[self._held_prefix + key], args=[milliseconds])

        await self.guard.call(hold_in_redis, lambda: self._fallback.hold(key, seconds))

    async def held_for(self, key: str) -> float:
        return await self.guard.call(
            lambda: self._held_for(key), lambda: self._fallback.held_for(key)
        )

    async def _held_for(self, key: str) -> float:
        left_ms = int(await self._redis.pttl(self._held_prefix + key))
        return max(0, left_ms) / 1000  # -2: no such key, -1: never (not one of ours)

    async def close(self) -> None:
        await self._redis.aclose()
        await self._fallback.close()


def shared_servers(limiter: RateLimiter) -> dict[str, Guard]:
    """The shared servers `limiter` depends on, by name, with their guards (for health)."""
    if isinstance(limiter, RedisRateLimiter):
        return {limiter.guard.name: limiter.guard}
    return {}
