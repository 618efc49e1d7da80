"""Ingest and mentions go on while analytics is stopped; analytics catches up after."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hubbub.analytics.duckdb import LiveDuckDB
from hubbub.analytics.worker import catch_up
from hubbub.bootstrap import build_platform
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import POSTS, PostPublished
from hubbub.settings import Settings
from tests.conftest import FIXTURES, api_client

CLOCK = SystemClock()


async def test_ingest_and_mentions_answer_without_analytics_which_then_catches_up(
    tmp_path: Path,
) -> None:
    platform = await build_platform(Settings(data_dir=tmp_path))
    try:
        async with (
            api_client(platform, "ingest") as ingest,
            api_client(platform, "mentions") as mentions,
        ):
            body = (FIXTURES / "jetstream-sample.jsonl").read_bytes()
            pushed = await ingest.post("/v1/ingest/jetstream", content=body)
            assert pushed.status_code == 200
            assert pushed.json()["accepted"] == 145
            suggested = await mentions.get("/v1/mentions", params={"q": "a", "limit": 5})
            assert suggested.status_code == 200
        rollups = await asyncio.to_thread(lambda: list(tmp_path.glob("analytics*.duckdb")))
        assert rollups == []  # no rollups were ever opened

        posts = [r.event for r in await platform.event_log.read(POSTS, 1, 10_000)]
        published = [p for p in posts if isinstance(p, PostPublished)]
        assert published  # the sample has posts for analytics to catch up on
        store = LiveDuckDB(tmp_path, CLOCK)
        try:
            assert await catch_up(store, platform.event_log, clock=CLOCK) > 0
            ((counted,),) = store.query("SELECT sum(posts) FROM global_minute")
            assert counted == len({p.post for p in published}) - _deleted(store)
        finally:
            store.close()
    finally:
        await platform.close()


def _deleted(store: LiveDuckDB) -> int:
    ((deleted,),) = store.query("SELECT coalesce(sum(deleted), 0) FROM global_minute")
    return int(deleted)
