"""The circuit breaker's states, and route matching with the strangler fig over it."""

from __future__ import annotations

import itertools
from pathlib import Path

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.gateway.routing import RouteTable, remove_route, set_route
from hubbub.gateway.upstreams import CircuitBreaker
from hubbub.kernel.clock import FixedClock


def test_a_breaker_opens_after_failures_in_a_row_and_tries_once_when_half_open() -> None:
    clock = FixedClock()
    breaker = CircuitBreaker(failures=3, reset_s=5, clock=clock)
    breaker.failed()
    breaker.failed()
    breaker.succeeded()  # a success in between starts the count again
    breaker.failed()
    breaker.failed()
    assert breaker.state == "closed"
    assert breaker.admit()
    breaker.failed()
    assert breaker.state == "open"
    assert not breaker.admit()
    assert breaker.retry_after_s() == 5
    clock.advance(5)
    assert breaker.state == "half-open"
    assert breaker.admit()  # one trial
    assert not breaker.admit()  # and only one
    breaker.failed()  # the trial failed: open again, for a full period
    assert breaker.state == "open"
    assert breaker.retry_after_s() == 5
    clock.advance(5)
    assert breaker.admit()
    breaker.succeeded()
    assert breaker.state == "closed"
    assert all(breaker.admit() for _ in range(10))


async def test_the_longest_prefix_wins_and_strangler_routes_override_services(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    clock = FixedClock()
    table = RouteTable(log)
    assert table.match("/v1/reports/top/hashtags").service == "analytics"  # type: ignore[union-attr]
    assert table.match("/v1/reportsX") is None  # a prefix ends at a /
    assert table.match("/v1/unknown") is None

    await set_route(log, "/v1/reports/top", "legacy", clock=clock)
    await set_route(log, "/v1/old", "legacy", clock=clock)
    await table.catch_up()
    top = table.match("/v1/reports/top/hashtags")
    assert top is not None
    assert (top.prefix, top.service, top.side("t1")) == ("/v1/reports/top", "analytics", "legacy")
    rest = table.match("/v1/reports/series/hashtag/x")
    assert rest is not None
    assert rest.side("t1") == "new"
    old = table.match("/v1/old/thing")
    assert old is not None
    assert (old.service, old.upstream("new"), old.upstream("legacy")) == (None, None, "legacy")

    await remove_route(log, "/v1/reports/top", clock=clock)
    await table.catch_up()
    assert table.match("/v1/reports/top/hashtags").prefix == "/v1/reports"  # type: ignore[union-attr]
    await log.close()


async def test_a_percentage_grows_without_moving_a_tenant_back(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    clock = FixedClock()
    table = RouteTable(log)
    tenants = [f"tenant-{n}" for n in range(400)]
    on_new: list[set[str]] = []
    for percent in (10, 25, 50, 100):
        await set_route(log, "/v1/mentions", "percent", percent=percent, clock=clock)
        await table.catch_up()
        route = table.match("/v1/mentions")
        assert route is not None
        on_new.append({t for t in tenants if route.side(t) == "new"})
    assert all(earlier <= later for earlier, later in itertools.pairwise(on_new))
    assert 20 <= len(on_new[0]) <= 60
    assert len(on_new[-1]) == 400
    await log.close()
