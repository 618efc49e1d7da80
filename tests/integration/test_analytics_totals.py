"""`hubbub analytics totals` reads the tiers that still cover the window: once retention
drops the minute rollups it answers from the hours and days, not zeros."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from hubbub.analytics.worker import enforce_retention
from hubbub.bootstrap import open_rollups
from hubbub.cli import app
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import SystemClock
from hubbub.settings import Settings
from tests.support.rollups import activity

CLOCK = SystemClock()


def hubbub(data_dir: Path, *args: str) -> str:
    result = CliRunner(env={"HUBBUB_LOG_LEVEL": "warning"}).invoke(
        app, ["--data-dir", str(data_dir), *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def totals(data_dir: Path, *window: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(hubbub(data_dir, "analytics", "totals", "--json", *window))
    return found


async def append_activity(data_dir: Path) -> None:
    """Two hours of posts, engagement and deletes on 2026-03-29, long past the minute
    rollups' retention."""
    log = SqliteEventLog(Settings(data_dir=data_dir).log_path)
    try:
        posts, others = activity()
        await log.append([*posts, *others])
    finally:
        await log.close()


def drop_minutes_as_retention_does(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir)
    store = open_rollups(settings, CLOCK)
    try:
        now = datetime.now(UTC)
        now_minute = int(now.timestamp() // 60)
        done = enforce_retention(store, None, settings.rollup_horizons(now_minute), None, now)
        assert done["rollup_rows_dropped"] > 0
        assert store.query("SELECT count(*) FROM global_minute") == [(0,)]
    finally:
        store.close()


def test_totals_outlive_the_minute_rollups(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    asyncio.run(append_activity(data_dir))
    hubbub(data_dir, "analytics", "run", "--once")
    before = totals(data_dir)
    assert {name: before[name] for name in ("posts", "replies", "likes", "reposts", "deleted")} == {
        "posts": 40, "replies": 10, "likes": 20, "reposts": 20, "deleted": 20,
    }  # fmt: skip
    assert before["top_tags"] == {f"tag{n}": 8 for n in range(5)}
    drop_minutes_as_retention_does(data_dir)
    assert totals(data_dir) == before


def test_a_window_past_the_minutes_is_widened_to_whole_days(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    asyncio.run(append_activity(data_dir))
    hubbub(data_dir, "analytics", "run", "--once")
    day = totals(data_dir, "--start", "2026-03-29T00:00", "--end", "2026-03-30T00:00")
    assert day["posts"] == 40
    drop_minutes_as_retention_does(data_dir)
    assert totals(data_dir, "--start", "2026-03-29T00:00", "--end", "2026-03-29T01:00") == day
    assert totals(data_dir, "--start", "2026-03-30T00:00")["posts"] == 0


def test_a_window_that_ends_before_it_starts_is_refused(tmp_path: Path) -> None:
    window = ["--start", "2026-03-30T00:00", "--end", "2026-03-29T00:00"]
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "analytics", "totals", *window])
    assert result.exit_code == 2
    assert "end must be after start" in result.output
