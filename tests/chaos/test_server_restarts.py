"""NATS, PostgreSQL and Redis each stopped in the middle of a run and started again: the
platform (every role on the scale-out adapters: JetStream log, PostgreSQL stores and
rollups, Redis cache and rate limits) recovers within 10 s of the server's return,
loses and double-counts nothing, and the features that do not need the server keep
answering while it is down.

The servers are this test's own (conftest: other ports, temporary directories). The
firehose goes in through the gateway at `HUBBUB_CHAOS_RATE` lines a second (default
2,000) for `HUBBUB_CHAOS_RESTART_S` seconds (default 24); the server is down for
`HUBBUB_CHAOS_OUTAGE_S` seconds (default 6) from a third of the way in.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.chaos.conftest import Nats, Postgres, Redis, Server
from tests.chaos.harness import (
    Platform,
    PushStats,
    Tenant,
    env_int,
    firehose,
    ground_truth,
    hashtags,
    long_run,
    make_tenant,
    push,
    report,
    totals,
    until_reports_equal,
)

RATE = env_int("HUBBUB_CHAOS_RATE", 2_000)
RUN_S = env_int("HUBBUB_CHAOS_RESTART_S", 24)
OUTAGE_S = env_int("HUBBUB_CHAOS_OUTAGE_S", 6)
RECOVERY_S = 10.0
FOLLOWERS = ("mentions", "listening")
"""Roles that follow the log and say in /healthz how far they have folded it."""
pytestmark = [pytest.mark.services, long_run]

Probe = Callable[[], Awaitable[bool]]


@dataclass
class Outage:
    """What the features answered while the server was down, and after."""

    answered: dict[str, Counter[bool]] = field(default_factory=dict)
    recovery_s: float = 0.0
    waited_on: dict[str, float] = field(default_factory=dict)
    """What was still down after the server's return, and until when (seconds after)."""


def scale_out(nats: Nats, postgres: Postgres, redis: Redis) -> dict[str, str]:
    """The settings that put every role on the three servers."""
    database = postgres.url.replace("postgresql://", "postgresql+psycopg://")
    return {
        "HUBBUB_EVENT_LOG": "jetstream", "HUBBUB_NATS_URL": nats.url,
        "HUBBUB_STREAM_PREFIX": "chaos", "HUBBUB_RELATIONAL_URL": database,
        "HUBBUB_LISTENING_DB_URL": database, "HUBBUB_NOTIFICATIONS_DB_URL": database,
        "HUBBUB_ANALYTICS_STORE": "postgres", "HUBBUB_ANALYTICS_POSTGRES_URL": postgres.url,
        "HUBBUB_CACHE": "redis", "HUBBUB_RATE_LIMITER": "redis", "HUBBUB_REDIS_URL": redis.url,
    }  # fmt: skip


def autocomplete(client: httpx.AsyncClient, url: str, tenant: Tenant, prefix: str) -> Probe:
    async def answers() -> bool:
        try:
            found = await client.get(
                f"{url}/v1/mentions", params={"q": prefix}, headers=tenant.auth(), timeout=5
            )
        except httpx.HTTPError:
            return False
        return found.status_code == 200 and bool(found.json())

    return answers


def reports(client: httpx.AsyncClient, url: str, tenant: Tenant) -> Probe:
    async def answers() -> bool:
        try:
            return bool(await hashtags(client, tenant, url))
        except (httpx.HTTPError, AssertionError):
            return False

    return answers


def a_handle_prefix(lines: list[bytes]) -> str:
    """The first letters of a handle the firehose names early on (an identity event)."""
    for line in lines:
        event = json.loads(line)
        if event.get("kind") == "identity" and event["identity"].get("handle"):
            handle: str = event["identity"]["handle"]
            return handle[:4]
    raise AssertionError("no identity event in the firehose")


async def folded(client: httpx.AsyncClient, platform: Platform, role: str) -> int:
    """The log positions a role has folded (its /healthz), summed over its topics."""
    try:
        health = await client.get(f"http://127.0.0.1:{platform.roles[role].port}/healthz")
    except httpx.HTTPError:
        return 0
    positions = health.json().get("positions", {}) if health.status_code == 200 else {}
    return sum(int(p) for topic in positions.values() for p in _numbers(topic))


def _numbers(positions: object) -> list[int]:
    """The positions of one topic, whether given as one number or per partition."""
    if isinstance(positions, dict):
        return [int(p) for p in positions.values()]
    return [int(positions)] if isinstance(positions, int) else []


async def outage(
    server: Server,
    probes: dict[str, Probe],
    still_down: Callable[[], Awaitable[str | None]],
) -> Outage:
    """Stop `server` for OUTAGE_S seconds, asking each probe twice a second meanwhile;
    start it again and measure the seconds until `still_down` answers None (nothing)."""
    seen = Outage({name: Counter() for name in probes})
    await asyncio.to_thread(server.stop)
    ends = time.monotonic() + OUTAGE_S
    while time.monotonic() < ends:
        for name, probe in probes.items():
            seen.answered[name][await probe()] += 1
        await asyncio.sleep(0.5)
    await asyncio.to_thread(server.start)
    back = time.monotonic()
    while (down := await still_down()) is not None:
        seen.waited_on[down[:120]] = round(time.monotonic() - back, 1)
        assert time.monotonic() - back < 60, f"{server.name} returned a minute ago: {down}"
        await asyncio.sleep(0.1)
    seen.recovery_s = time.monotonic() - back
    return seen


async def restart_in_a_run(
    tmp_path: Path,
    settings: dict[str, str],
    restarted: Server,
    still_serving: tuple[str, ...],
) -> None:
    lines = firehose(tmp_path, RATE * RUN_S, 5)
    prefix = a_handle_prefix(lines)
    platform = Platform(tmp_path / "data", settings=settings)
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            await platform.start(client)
            tenant = await make_tenant(client, platform.url, "restarts")
            stats = PushStats()
            feeding = asyncio.create_task(
                push(client, platform.url, tenant.pusher, lines, RATE, stats)
            )
            probes = {
                "autocomplete": autocomplete(client, platform.url, tenant, prefix),
                "reports": reports(client, platform.url, tenant),
            }
            started = time.monotonic()
            while not await probes["autocomplete"]() or stats.lines < len(lines) // 3:
                assert time.monotonic() - started < 120, "the platform never served the prefix"
                await asyncio.sleep(0.2)
            accepted_before = stats.lines

            baseline: list[int] = []

            async def still_down() -> str | None:
                """What does not work yet: a push, the reports, the folds moving on from
                where they were when the server came back."""
                try:
                    report_sum = sum((await hashtags(client, tenant, platform.url)).values())
                except (httpx.HTTPError, AssertionError):
                    return "the reports do not answer"
                following = [await folded(client, platform, r) for r in FOLLOWERS]
                if not baseline:
                    baseline.extend((report_sum, *following))
                if stats.lines == accepted_before and not feeding.done():
                    return "no push accepted since the outage began"
                if report_sum <= baseline[0]:
                    return "the reports count nothing new"
                for role, now, then in zip(FOLLOWERS, following, baseline[1:], strict=True):
                    if now <= then:
                        return f"the {role} role folds nothing new"
                return None

            seen = await outage(restarted, {n: probes[n] for n in still_serving}, still_down)
            await feeding
            truth = ground_truth(lines[: stats.lines])
            caught_up_s = await until_reports_equal(client, tenant, platform.url, truth, 120)
        finally:
            platform.stop()
    assert totals(platform.env) == truth.totals()
    report(f"{restarted.name} restart", {
        "outage_s": OUTAGE_S, "recovery_s": round(seen.recovery_s, 2),
        "answered_meanwhile": {n: dict(c) for n, c in seen.answered.items()},
        "waited_on": seen.waited_on,
        "max_stall_s": round(stats.max_stall_s, 2), "refusals": dict(stats.refusals),
        "lines": stats.lines, "caught_up_s": round(caught_up_s, 1), "totals": truth.totals(),
    })  # fmt: skip
    assert seen.recovery_s <= RECOVERY_S
    for name, answered in seen.answered.items():
        assert answered[False] == 0, f"{name} failed while {restarted.name} was down: {answered}"


async def test_nats_restarted(tmp_path: Path, nats: Nats, postgres: Postgres, redis: Redis) -> None:
    await restart_in_a_run(
        tmp_path, scale_out(nats, postgres, redis), nats, ("autocomplete", "reports")
    )


async def test_postgres_restarted(
    tmp_path: Path, nats: Nats, postgres: Postgres, redis: Redis
) -> None:
    await restart_in_a_run(tmp_path, scale_out(nats, postgres, redis), postgres, ("autocomplete",))


async def test_redis_restarted(
    tmp_path: Path, nats: Nats, postgres: Postgres, redis: Redis
) -> None:
    await restart_in_a_run(
        tmp_path, scale_out(nats, postgres, redis), redis, ("autocomplete", "reports")
    )
