"""Each account's budget on its network, kept so that publishing never trips a 429 by
itself, and waits when a network answers one anyway.

The networks' own budgets, per account:

- Bluesky (docs.bsky.app, "Rate Limits"): 5,000 points an hour and 35,000 a day of
  record writes per account (DID); a create costs 3 points, an update 2, a delete 1.
  Reads are limited per IP, not per account, so they spend nothing here.
- Mastodon (docs.joinmastodon.org, "Rate limits"): 300 requests every 5 minutes per
  account on all of `/api/*`, and 30 deletions every 30 minutes; and in Mastodon's own
  `RateLimiter` (app/lib/rate_limiter.rb) 300 new statuses every 3 hours.

Each is a window (`Window`: so many units per period) kept as a GCRA quota of the shared
`RateLimiter` (`hubbub.kernel.ratelimit`, in memory or in Redis, so every publisher
replica spends from one budget). A quota passes `burst` at once and refills at `rate`,
so in any stretch of time `t` it passes at most `burst + rate * t`; with
`rate = (limit - burst) / period` that is at most `limit` in any period, however the
network aligns its windows. `burst_share` sets the part of a window's limit that may go
at once (half by default: a queue due at 9:00 goes out together; the rest follows at
the sustained rate).

`take` spends an action's cost from every window of the account and answers how long to
wait before trying again (0.0: go ahead); it never sleeps, the caller schedules the
retry. A take refused by a longer window has spent its cost from the shorter ones
already checked: the budget can only be tighter than the network's, never looser, and
shortest windows are checked first since they refill soonest. `hold` records a server's
`Retry-After` for the account, so that every replica waits it out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from hubbub.kernel.ratelimit import Quota, RateLimiter

Action = Literal["create", "update", "delete", "read"]
"""What a call to a network does: a record or status created, edited, deleted, or read."""


@dataclass(frozen=True)
class Window:
    """A network's limit on one account: `limit` units every `period_s` seconds, and what
    each action costs in units (an action not named costs nothing here)."""

    name: str
    limit: int
    period_s: float
    costs: Mapping[Action, int]

    def quota(self, burst_share: float) -> Quota:
        """The GCRA quota that passes at most `limit` units in any `period_s`: a burst of
        `burst_share` of the limit (at least the dearest action, at most all but one)."""
        dearest = max(self.costs.values(), default=1)
        burst = min(self.limit - 1, max(dearest, round(self.limit * burst_share)))
        return Quota(rate_per_s=(self.limit - burst) / self.period_s, burst=burst, name=self.name)


WRITES: Final[Mapping[Action, int]] = {"create": 3, "update": 2, "delete": 1}
EVERY_CALL: Final[Mapping[Action, int]] = {"create": 1, "update": 1, "delete": 1, "read": 1}
WINDOWS: Final[Mapping[str, Sequence[Window]]] = {
    "bluesky": (
        Window("bluesky points per hour", 5_000, 3_600, WRITES),
        Window("bluesky points per day", 35_000, 86_400, WRITES),
    ),
    "mastodon": (
        Window("mastodon requests per 5 minutes", 300, 300, EVERY_CALL),
        Window("mastodon deletions per 30 minutes", 30, 1_800, {"delete": 1}),
        Window("mastodon statuses per 3 hours", 300, 10_800, {"create": 1}),
    ),
}
"""Each network's documented windows per account, shortest first."""


class Budget:
    """Every account's budget on its network, in `limiter` (whose keys it names
    `network:account:window`, and `network:account` for a hold).

    `account` is what identifies the account to its network: the DID (or the handle,
    while it names the same DID) on Bluesky, `user@instance` on Mastodon. An unknown
    network is a `ValueError`, as a budget silently missing would let a 429 through.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        windows: Mapping[str, Sequence[Window]] = WINDOWS,
        burst_share: float = 0.5,
    ) -> None:
        if not 0 < burst_share < 1:
            raise ValueError(f"burst_share must be between 0 and 1, not {burst_share}")
        self._limiter = limiter
        self._windows = {
            network: sorted(
                ((window, window.quota(burst_share)) for window in chosen),
                key=lambda pair: pair[0].period_s,
            )
            for network, chosen in windows.items()
        }

    async def take(self, network: str, account: str, action: Action = "create") -> float:
        """Spend `action`'s cost from the account's budget: 0.0 when the call may go now,
        else the seconds to wait (a hold's time left, or the longest window's wait),
        nothing spent from the window that refused."""
        windows = self._windows_of(network)
        held = await self._limiter.held_for(f"{network}:{account}")
        if held > 0:
            return held
        for window, quota in windows:
            cost = window.costs.get(action, 0)
            if cost == 0:
                continue
            decision = await self._limiter.acquire(
                f"{network}:{account}:{window.name}", quota, cost
            )
            if not decision.allowed:
                return decision.retry_after_s
        return 0.0

    async def hold(self, network: str, account: str, retry_after_s: float) -> None:
        """Honour a network's `Retry-After` (or rate-limit reset): every replica's `take`
        for the account answers the time left until it is over."""
        self._windows_of(network)
        await self._limiter.hold(f"{network}:{account}", retry_after_s)

    def _windows_of(self, network: str) -> Sequence[tuple[Window, Quota]]:
        try:
            return self._windows[network]
        except KeyError:
            known = ", ".join(sorted(self._windows))
            raise ValueError(f"no budget for the network {network!r}: one of {known}") from None
