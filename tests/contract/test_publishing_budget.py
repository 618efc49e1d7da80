"""Publishing's per-account budgets (`hubbub.publishing.budget.Budget`) on both rate
limiters: in memory on a fake clock, and the real Redis shared by two replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.kernel.clock import FixedClock
from hubbub.kernel.ratelimit import MemoryRateLimiter
from hubbub.publishing.budget import WINDOWS, Budget, Window
from tests.support.limiters import Limiters, shared_limiters


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def limiters(request: pytest.FixtureRequest) -> AsyncIterator[Limiters]:
    async with shared_limiters(request.param) as made:
        yield made


async def takes_until_refused(budget: Budget, network: str, account: str) -> tuple[int, float]:
    """How many creates pass at once, and the wait answered to the first one refused."""
    passed = 0
    while (wait := await budget.take(network, account, "create")) == 0.0:
        passed += 1
    return passed, wait


async def test_bluesky_passes_half_its_hourly_points_at_once(limiters: Limiters) -> None:
    budget = Budget(limiters.make())
    passed, wait = await takes_until_refused(budget, "bluesky", "alice.example.com")
    assert passed == 2_500 // 3  # 3 points a create, half of 5,000 points at once
    # the rest refills at 2,500 points an hour, one in 1.44 s: 2 more are due for a create
    assert 0 < wait <= 2 * 3_600 / 2_500


async def test_mastodon_passes_half_its_five_minutes_at_once(limiters: Limiters) -> None:
    budget = Budget(limiters.make())
    passed, wait = await takes_until_refused(budget, "mastodon", "ann@example.social")
    assert passed == 150
    assert 1.5 < wait <= 2.0  # 150 more requests over 5 minutes: one every 2 s


async def test_replicas_spend_from_one_budget_per_account(limiters: Limiters) -> None:
    windows = {"mastodon": (Window("requests", 4, 3_600, {"create": 1, "read": 1}),)}
    one, other = Budget(limiters.make(), windows), Budget(limiters.make(), windows)
    assert [await one.take("mastodon", "ann@a.example", "create") for _ in range(2)] == [0, 0]
    assert await other.take("mastodon", "ann@a.example", "read") > 0
    assert await other.take("mastodon", "bob@a.example", "read") == 0.0


async def test_a_wait_answered_is_a_wait_enough(limiters: Limiters) -> None:
    windows = {"bluesky": (Window("points", 6, 0.6, {"create": 3}),)}
    budget = Budget(limiters.make(), windows)
    assert await budget.take("bluesky", "alice.example.com") == 0.0
    wait = await budget.take("bluesky", "alice.example.com")
    assert wait > 0
    await limiters.wait(wait + 0.01)
    assert await budget.take("bluesky", "alice.example.com") == 0.0


async def test_a_hold_makes_every_replica_wait(limiters: Limiters) -> None:
    one, other = Budget(limiters.make()), Budget(limiters.make())
    await one.hold("mastodon", "ann@example.social", 0.3)
    for action in ("create", "read"):
        assert 0.2 < await other.take("mastodon", "ann@example.social", action) <= 0.3
    assert await other.take("mastodon", "bob@example.social") == 0.0
    await limiters.wait(0.35)
    assert await other.take("mastodon", "ann@example.social") == 0.0


async def test_bluesky_reads_cost_nothing_but_wait_out_a_hold(limiters: Limiters) -> None:
    budget = Budget(limiters.make())
    await takes_until_refused(budget, "bluesky", "alice.example.com")
    assert await budget.take("bluesky", "alice.example.com", "read") == 0.0
    await budget.hold("bluesky", "alice.example.com", 5)
    assert await budget.take("bluesky", "alice.example.com", "read") > 4


async def test_an_unknown_network_is_refused_by_name(limiters: Limiters) -> None:
    budget = Budget(limiters.make())
    with pytest.raises(ValueError, match=r"'threads'.*bluesky, mastodon"):
        await budget.take("threads", "someone")
    with pytest.raises(ValueError, match="'threads'"):
        await budget.hold("threads", "someone", 1)


def test_every_documented_window_fits_its_limit() -> None:
    for windows in WINDOWS.values():
        for window in windows:
            quota = window.quota(0.5)
            assert quota.burst + quota.rate_per_s * window.period_s == pytest.approx(window.limit)
            assert max(window.costs.values()) <= quota.burst


WINDOW = Window("points", 10, 60, {"create": 3, "delete": 1})


@settings(deadline=None, max_examples=60)
@given(
    steps=st.lists(st.tuples(st.floats(0, 30), st.sampled_from(["create", "delete"])), max_size=60),
    burst_share=st.floats(0.05, 0.95),
)
async def test_no_period_ever_spends_more_than_the_limit(
    steps: list[tuple[float, str]], burst_share: float
) -> None:
    clock = FixedClock()
    budget = Budget(MemoryRateLimiter(clock), {"bluesky": (WINDOW,)}, burst_share)
    spent: list[tuple[float, int]] = []
    for pause, action in steps:
        clock.advance(pause)
        if await budget.take("bluesky", "a", action) == 0.0:  # type: ignore[arg-type]
            spent.append((clock.monotonic_s(), WINDOW.costs[action]))  # type: ignore[index]
    for start, _ in spent:
        in_period = sum(cost for at, cost in spent if start <= at <= start + WINDOW.period_s)
        assert in_period <= WINDOW.limit
