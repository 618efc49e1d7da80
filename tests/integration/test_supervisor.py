"""The supervisor over real child processes: tiny Python programs standing in for roles."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psutil

from hubbub.supervisor import Backoff, RoleSpec, Supervisor
from tests.conftest import until

FAST = Backoff(initial_s=0.05, cap_s=0.4, reset_after_s=60.0, jitter=0.2)


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


SLEEPER = python("import time; time.sleep(60)")
CRASHER = python("raise SystemExit(1)")
STUBBORN = python(  # ignores SIGTERM: only SIGKILL ends it
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('ready', flush=True); time.sleep(60)"
)


@asynccontextmanager
async def supervising(
    *roles: RoleSpec, backoff: Backoff = FAST, grace_s: float = 2.0
) -> AsyncIterator[Supervisor]:
    """A supervisor running `roles` for the block, stopped after it."""
    supervisor = Supervisor(roles, backoff=backoff, grace_s=grace_s, rng=random.Random(7))
    stop = asyncio.Event()
    started = asyncio.Event()
    running = asyncio.create_task(supervisor.run(stop, on_started=started.set))
    await asyncio.wait_for(started.wait(), 5)
    try:
        yield supervisor
    finally:
        stop.set()
        await asyncio.wait_for(running, grace_s + 5)


async def pid_of(supervisor: Supervisor, name: str) -> int:
    """The role's process once it runs."""
    found: list[int] = []

    async def up() -> bool:
        pid = supervisor.pid(name)
        found[:] = [pid] if pid else []
        return bool(found)

    await until(up)
    return found[0]


async def test_a_killed_child_is_restarted_with_a_new_pid() -> None:
    async with supervising(RoleSpec("sleeper", SLEEPER)) as supervisor:
        first = await pid_of(supervisor, "sleeper")
        os.kill(first, signal.SIGKILL)
        await until(lambda: asyncio.sleep(0, supervisor.pid("sleeper") not in (None, first)))
        assert supervisor.restarts["sleeper"] == 1
        assert psutil.Process(supervisor.pid("sleeper") or 0).is_running()
    assert not psutil.pid_exists(first)


async def test_a_crash_looping_role_backs_off_and_the_others_stay_up() -> None:
    roles = RoleSpec("steady", SLEEPER), RoleSpec("crasher", CRASHER)
    async with supervising(*roles) as supervisor:
        steady = await pid_of(supervisor, "steady")
        await until(lambda: asyncio.sleep(0, supervisor.restarts["crasher"] >= 5))
        delays = supervisor.delays["crasher"]
        assert all(a < b for a, b in itertools.pairwise(delays[:4]))  # they grow
        assert all(FAST.cap_s * (1 - FAST.jitter) <= d <= FAST.cap_s for d in delays[4:])
        assert supervisor.pid("steady") == steady
        assert supervisor.restarts["steady"] == 0


async def test_a_role_that_cannot_start_is_retried_without_harming_the_others() -> None:
    roles = RoleSpec("steady", SLEEPER), RoleSpec("missing", ("/nonexistent/hubbub",))
    async with supervising(*roles) as supervisor:
        steady = await pid_of(supervisor, "steady")
        await until(lambda: asyncio.sleep(0, supervisor.restarts["missing"] >= 3))
        assert supervisor.pid("missing") is None
        assert supervisor.pid("steady") == steady


async def test_a_child_that_stayed_up_long_enough_starts_from_the_shortest_delay() -> None:
    short_lived = python("import time; time.sleep(0.3); raise SystemExit(3)")
    backoff = Backoff(initial_s=0.05, cap_s=5.0, reset_after_s=0.2, jitter=0.0)
    async with supervising(RoleSpec("flaky", short_lived), backoff=backoff) as supervisor:
        await until(lambda: asyncio.sleep(0, supervisor.restarts["flaky"] >= 3))
        assert supervisor.delays["flaky"][:3] == [0.05, 0.05, 0.05]


async def test_stopping_ends_every_child_even_one_that_ignores_sigterm() -> None:
    roles = (
        RoleSpec("one", SLEEPER),
        RoleSpec("two", SLEEPER),
        RoleSpec("stubborn", STUBBORN),
    )
    stopped_at = 0.0
    async with supervising(*roles, grace_s=1.0) as supervisor:
        pids = [await pid_of(supervisor, role.name) for role in roles]
        await asyncio.sleep(0.5)  # the stubborn child has set its handler
        stopped_at = time.monotonic()
    assert 1.0 <= time.monotonic() - stopped_at < 3  # the grace period, then SIGKILL
    assert [pid for pid in pids if psutil.pid_exists(pid)] == []
    assert all(supervisor.pid(role.name) is None for role in roles)
