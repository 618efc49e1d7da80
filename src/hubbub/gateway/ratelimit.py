"""The HTTP side of the gateway's rate limits: a decision rendered as the fields of
draft-ietf-httpapi-ratelimit-headers-06 (RateLimit-Limit, -Remaining, -Reset and -Policy),
plus Retry-After on a refusal, and the strictest of several checks of one request.

The limiter itself (`RateLimiter` and its memory and Redis adapters) is in the kernel,
`hubbub.kernel.ratelimit`, as publishing limits each account with it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hubbub.kernel.ratelimit import MICROS, Decision, Quota, interval_us


def headers(decision: Decision, quota: Quota) -> dict[str, str]:
    """RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset (whole seconds, rounded up)
    and RateLimit-Policy (e.g. `200;w=4;name="key"` where w is burst/rate rounded up), per
    draft-ietf-httpapi-ratelimit-headers-06; plus Retry-After (whole seconds, at least 1)
    when the decision is a refusal."""
    fields = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset_s)),
        "RateLimit-Policy": policy(quota),
    }
    if not decision.allowed:
        fields["Retry-After"] = str(max(1, math.ceil(decision.retry_after_s)))
    return fields


def policy(quota: Quota) -> str:
    """The quota as a RateLimit-Policy item: `burst;w=seconds to refill;name="name"`."""
    window_s = -(-quota.burst * interval_us(quota) // MICROS)  # integer ceiling
    item = f"{quota.burst};w={window_s}"
    if quota.name:
        escaped = quota.name.replace("\\", "\\\\").replace('"', '\\"')
        item += f';name="{escaped}"'
    return item


def strictest(decisions: Sequence[tuple[Decision, Quota]]) -> tuple[Decision, Quota]:
    """Of several checks of one request (per key and per tenant), the one whose headers the
    caller sees: a refusal if any, else the fewest remaining.

    Among refusals, the longest wait (the client must wait for all of them); among ties
    in remaining, the longest reset. `ValueError` when there are no decisions.
    """
    if not decisions:
        raise ValueError("strictest() needs at least one decision")
    return min(decisions, key=lambda pair: _strictness(pair[0]))


def _strictness(decision: Decision) -> tuple[bool, float, int, float]:
    """A sort key that puts the strictest decision first."""
    return (decision.allowed, -decision.retry_after_s, decision.remaining, -decision.reset_s)
