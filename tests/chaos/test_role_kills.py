"""Every role killed with SIGKILL at random moments while a synthetic firehose is pushed
through the gateway: afterwards every report total equals the ground truth computed
from the lines pushed, nothing is counted twice, and a watch whose threshold the
firehose crosses has raised exactly one alert.

Each of the six roles (ingest, mentions, analytics, publishing, listening, gateway) is
its own `hubbub serve --role X` process; one task per role kills it
`HUBBUB_CHAOS_KILLS` times (default 1), at a random moment 0.5 to `HUBBUB_CHAOS_GAP_S`
(default 3) seconds after it answers, and starts it again at once, so several roles may
be down together (a longer gap keeps the platform up, and the firehose at its rate, for
more of the run). The firehose goes
in at `HUBBUB_CHAOS_RATE` lines a second (default 2,000) until the last kill; a chunk
that fails (connection refused, 502, 503) is pushed again, as a client would.
`make chaos` runs 20 kills of each role at 10,000 lines a second.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx

from tests.chaos.harness import (
    ROLES,
    Platform,
    PushStats,
    Role,
    alerts,
    env_int,
    firehose,
    ground_truth,
    long_run,
    make_tenant,
    push,
    report,
    totals,
    until_reports_equal,
    watch,
)

KILLS = env_int("HUBBUB_CHAOS_KILLS", 1)
RATE = env_int("HUBBUB_CHAOS_RATE", 2_000)
SEED = env_int("HUBBUB_CHAOS_SEED", 11)
GAP_S = env_int("HUBBUB_CHAOS_GAP_S", 3)
CATCH_UP_S = 240.0
pytestmark = long_run


async def kill_repeatedly(
    role: Role, client: httpx.AsyncClient, kills: int, rng: random.Random
) -> None:
    """Kill `role` `kills` times at random moments, each time starting it again."""
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(0.5, GAP_S))
        await role.restart_after_kill(client)


async def test_every_role_killed_at_random_counts_each_event_once(tmp_path: Path) -> None:
    # Lines for the kills (a restart takes about 5 s on a busy machine, then the gap)
    # and ten seconds more.
    lines = firehose(tmp_path, int(RATE * (KILLS * (5 + GAP_S / 2) + 10)), SEED)
    platform = Platform(tmp_path / "data")
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            await platform.start(client)
            tenant = await make_tenant(client, platform.url, "chaos")
            tag, _ = ground_truth(lines[: len(lines) // 2]).tags.most_common(1)[0]
            watched = await watch(client, tenant, platform.url, tag)
            stats, stop = PushStats(), asyncio.Event()
            feeding = asyncio.create_task(
                push(client, platform.url, tenant.pusher, lines, RATE, stats, stop=stop)
            )
            rng = random.Random(SEED)
            started = time.monotonic()
            await asyncio.gather(*(
                kill_repeatedly(role, client, KILLS, random.Random(rng.random()))
                for role in platform.roles.values()
            ))  # fmt: skip
            stop.set()
            await feeding
            kills_s = time.monotonic() - started
            truth = ground_truth(lines[: stats.lines])
            assert truth.tags[tag] >= 40, "the firehose must cross the watch's threshold"
            caught_up_s = await until_reports_equal(client, tenant, platform.url, truth, CATCH_UP_S)
            await asyncio.sleep(3)  # nothing more comes in after the truth was reached
            await until_reports_equal(client, tenant, platform.url, truth, 0.1)
            raised = [a for a in await alerts(client, tenant, platform.url)
                      if a["watch"] == watched]  # fmt: skip
        finally:
            platform.stop()
    assert totals(platform.env) == truth.totals()
    assert len(raised) == 1, raised
    restarts = [s for role in platform.roles.values() for s in role.restarts]
    assert len(restarts) == KILLS * len(ROLES)
    report("role kills", {
        "kills_per_role": KILLS, "gap_s_max": GAP_S, "rate_target": RATE,
        "rate_pushed": round(stats.rate),
        "lines": stats.lines, "run_s": round(kills_s, 1), "caught_up_s": round(caught_up_s, 1),
        "retried_chunks": stats.retries, "refusals": dict(stats.refusals),
        "max_stall_s": round(stats.max_stall_s, 2), "restart_s_max": round(max(restarts), 2),
        "restart_s_median": round(sorted(restarts)[len(restarts) // 2], 2),
        "restart_s_max_by_role": {
            role.name: round(max(role.restarts), 1) for role in platform.roles.values()
        },
        "totals": truth.totals(), "hashtags": len(truth.tags), "alerts": len(raised),
    })  # fmt: skip
