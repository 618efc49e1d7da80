"""A queue that takes its channel's best times to post: read from the analytics service
(the channel's own published posts' engagement), and used by "add to queue"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from hubbub.analytics.best_times import HALF_US
from hubbub.bootstrap import open_request_signer
from hubbub.kernel.events import Event
from hubbub.publishing.best_times import AnalyticsBestTimes
from tests.conftest import until
from tests.e2e.test_best_times_api import likes, post, published
from tests.support.stack import Stack, auth, start_stack

PARIS = ZoneInfo("Europe/Paris")
DAY_US = 86_400_000_000


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, exits = await start_stack(tmp_path / "data", {"best_time_min_posts": 2})
    async with exits:
        yield built


async def test_add_to_queue_takes_the_channels_best_time(stack: Stack, tmp_path: Path) -> None:
    owner = await stack.tenant("newsroom")
    made = await stack.client.post("/v1/channels", headers=auth(owner["token"]), json={
        "network": "bluesky", "account": "news.example", "time_zone": "Europe/Paris",
        "service": "https://bsky.social", "app_password": "xxxx-xxxx-xxxx-xxxx",
    })  # fmt: skip
    assert made.status_code == 201, made.text
    channel = made.json()["id"]
    now = stack.platform.clock.now_us()
    best_ts = (now - 3 * DAY_US) // HALF_US * HALF_US + 60_000_000
    publications: list[Event] = []
    events: list[Event] = []
    for i in range(3):  # the channel's posts at one half-hour, a week apart, much liked
        uri = f"at://did:plc:someone/app.bsky.feed.post/own{i}"
        ts = best_ts - i * 7 * DAY_US
        publications.append(
            msgspec.structs.replace(published(owner["id"], uri, ts), channel=channel)
        )
        events += [post(uri, ts), *likes(uri, ts, 5)]
    for i in range(2):  # and two that no one liked, at another time
        uri = f"at://did:plc:someone/app.bsky.feed.post/quiet{i}"
        ts = best_ts + 6 * HALF_US
        publications.append(msgspec.structs.replace(published(owner["id"], uri, ts),
                                                    channel=channel))  # fmt: skip
        events.append(post(uri, ts))
    await stack.platform.event_log.append(publications)
    rollups = await stack.platform.analytics()

    async def folded() -> bool:
        return rollups.positions().get("publishing", 0) >= len(publications)

    await until(folded)
    await stack.platform.event_log.append(events)

    publishing = await stack.platform.publishing()
    reader = AnalyticsBestTimes(
        stack.gateway_settings.analytics_url, open_request_signer(stack.platform.settings)
    )
    service = replace(publishing, best_times=reader, best_count=1)
    tenant = owner["id"]

    local = datetime.fromtimestamp(best_ts / 1e6, PARIS).replace(second=0)
    local = local.replace(minute=local.minute // 30 * 30)
    expected = (local.weekday(), f"{local:%H:%M}")

    async def read() -> bool:  # once analytics has folded the engagement
        found = await asyncio.to_thread(service.channel, tenant, channel)
        return await reader.best(found, "en", 1) == [expected]

    await until(read)
    kept = await service.set_queue(tenant, channel, "mon-fri 08:00", best=True)
    assert kept.best_queue
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    assert kept.best_slots == f"{day} {local:%H:%M}"
    _, jobs = await service.schedule(tenant, "user:ed", "At the best time", [channel], queue=True)
    due = datetime.fromtimestamp(jobs[0].due_us / 1e6, PARIS)
    assert (due.weekday(), due.hour, due.minute) == (local.weekday(), local.hour, local.minute)
    assert jobs[0].due_us > now

    # Through the API: the queue says it takes the best times, and which.
    shown = await stack.client.get(f"/v1/channels/{channel}/queue", headers=auth(owner["token"]))
    assert (shown.json()["best_times"], shown.json()["best_slots"]) == (True, kept.best_slots)
    await reader.close()
