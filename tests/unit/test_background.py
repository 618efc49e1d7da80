"""Background tasks outlive their errors, and say so while they fail."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.kernel.background import Background
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.telemetry import configure_logging


async def test_a_task_that_raises_is_logged_restarted_and_reported_failing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    runs = 0
    recovered = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise ConnectionError(f"log unreachable ({runs})")
        recovered.set()
        await asyncio.Event().wait()  # then runs for good

    clock = FixedClock()
    background = Background(initial_s=0.01, recent_s=0.3, clock=clock)
    background.start("follower", flaky)
    try:
        await asyncio.wait_for(recovered.wait(), 5)
        assert runs == 3
        assert background.report() == {"follower": "failing"}  # failed lately
        assert background.failing() == {"follower": "ConnectionError: log unreachable (2)"}
        clock.advance(0.35)
        assert background.report() == {"follower": "ok"}
    finally:
        await background.close()
    assert "background task failed" in capsys.readouterr().err


async def test_a_task_that_ends_is_started_again() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    background = Background(initial_s=0.01, cap_s=0.02)
    background.start("once", once)
    await asyncio.sleep(0.2)
    await background.close()
    assert runs >= 3
    background.start("twice", once)
    with pytest.raises(ValueError, match="runs already"):
        background.start("twice", once)
    await background.close()
