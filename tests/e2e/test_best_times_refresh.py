"""The best time to post over time and across languages: a channel with too few posts of
its own is scored from the firehose's posts in the language its posts are written in
(for the heat map and for "add to queue" alike); a queue that takes its best times reads
them again once a day; and only the last 16 weeks' posts count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from hubbub.analytics.best_times import HALF_US
from hubbub.bootstrap import open_request_signer
from hubbub.kernel.events import Event, PostPublished
from hubbub.publishing.best_times import AnalyticsBestTimes
from hubbub.publishing.service import Publishing
from tests.conftest import until
from tests.e2e.test_best_times_api import likes, post, published, slot_of
from tests.support.stack import Stack, auth, start_stack

PARIS = ZoneInfo("Europe/Paris")
DAY_US = 86_400_000_000
WEEK_US = 7 * DAY_US
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, exits = await start_stack(tmp_path / "data", {"best_time_min_posts": 2})
    async with exits:
        yield built


def in_language(uri: str, ts: int, language: str) -> PostPublished:
    return msgspec.structs.replace(post(uri, ts), langs=[language])


def weekly(ts: int) -> str:
    """A half-hour as a queue's slots name it, in Paris."""
    local = datetime.fromtimestamp(ts / 1e6, PARIS)
    return f"{DAYS[local.weekday()]} {local.hour:02d}:{local.minute // 30 * 30:02d}"


async def channel_of(stack: Stack, owner: dict[str, Any]) -> str:
    made = await stack.client.post("/v1/channels", headers=auth(owner["token"]), json={
        "network": "bluesky", "account": "news.example", "time_zone": "Europe/Paris",
        "service": "https://bsky.social", "app_password": "xxxx-xxxx-xxxx-xxxx",
    })  # fmt: skip
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def service_of(stack: Stack) -> tuple[Publishing, AnalyticsBestTimes]:
    reader = AnalyticsBestTimes(
        stack.gateway_settings.analytics_url, open_request_signer(stack.platform.settings)
    )
    publishing = await stack.platform.publishing()
    return replace(publishing, best_times=reader, best_count=1), reader


async def test_a_channel_writing_french_is_scored_from_french_posts_on_the_firehose(
    stack: Stack,
) -> None:
    owner = await stack.tenant("journal")
    channel = await channel_of(stack, owner)
    service, reader = await service_of(stack)
    tenant = owner["id"]
    await service.set_queue(tenant, channel, "mon-fri 08:00", best=False)
    for text in ("Bonjour", "Bonsoir"):  # its posts, written in French, not published yet
        await service.schedule(tenant, "user:ed", text, [channel], queue=True, language="fr")
    await service.schedule(tenant, "user:ed", "Hello", [channel], queue=True, language="en")
    now = stack.platform.clock.now_us()
    french_ts = (now - 3 * DAY_US) // HALF_US * HALF_US + 60_000_000
    english_ts = french_ts - DAY_US + 4 * HALF_US
    events: list[Event] = []
    for i in range(10):  # French posts liked at one time, English ones at another, more
        uri = f"at://did:plc:someone/app.bsky.feed.post/fr{i}"
        events += [in_language(uri, french_ts, "fr"), *likes(uri, french_ts, 5),
                   in_language(f"{uri}q", english_ts, "fr")]  # fmt: skip
        uri = f"at://did:plc:someone/app.bsky.feed.post/en{i}"
        events += [post(uri, english_ts), *likes(uri, english_ts, 9), post(f"{uri}q", french_ts)]
    await stack.platform.event_log.append(events)

    said = await stack.client.get(
        f"/v1/calendar/channels/{channel}/language", headers=auth(owner["token"])
    )
    assert said.json() == {"channel": channel, "language": "fr"}
    params = {"zone": "Europe/Paris", "network": "bluesky", "channel": channel, "language": "fr"}

    async def folded() -> bool:
        answer = await stack.client.get("/v1/best-times", params=params,
                                        headers=auth(owner["token"]))  # fmt: skip
        top = answer.json()["top"] if answer.status_code == 200 else []
        return bool(top) and {k: top[0][k] for k in ("day", "time")} == slot_of(french_ts)

    await until(folded)  # what the heat map shows, asked in the channel's language
    kept = await service.set_queue(tenant, channel, "mon-fri 08:00", best=True)
    assert kept.best_slots == weekly(french_ts)  # and what "add to queue" takes
    await reader.close()


async def test_the_best_times_are_read_again_once_a_day_from_the_last_16_weeks(
    stack: Stack,
) -> None:
    owner = await stack.tenant("newsroom")
    channel = await channel_of(stack, owner)
    service, reader = await service_of(stack)
    tenant = owner["id"]
    now = stack.platform.clock.now_us()
    first_ts = (now - 3 * DAY_US) // HALF_US * HALF_US + 60_000_000
    later_ts = first_ts + DAY_US + 6 * HALF_US

    async def publish(ts: int, name: str, liked: int, weeks_ago: range) -> None:
        publications: list[Event] = []
        events: list[Event] = []
        for i in weeks_ago:
            uri = f"at://did:plc:someone/app.bsky.feed.post/{name}{i}"
            at = ts - i * WEEK_US
            publications.append(msgspec.structs.replace(published(tenant, uri, at),
                                                        channel=channel))  # fmt: skip
            events += [post(uri, at), *likes(uri, at, liked)]
        await stack.platform.event_log.append(publications)
        rollups = await stack.platform.analytics()
        wanted = rollups.positions().get("publishing", 0) + len(publications)

        async def folded() -> bool:
            return rollups.positions().get("publishing", 0) >= wanted

        await until(folded)
        await stack.platform.event_log.append(events)

    # Long ago (17 to 19 weeks), the channel's posts at `later_ts`'s half-hour were loved;
    # in the last weeks, those at `first_ts`'s were liked a little, and others not at all.
    await publish(later_ts, "old", 50, range(17, 20))
    await publish(first_ts, "recent", 2, range(0, 3))
    await publish(first_ts - 5 * HALF_US, "quiet", 0, range(0, 2))

    async def best_is(ts: int) -> bool:
        found = await service.set_queue(tenant, channel, None, best=True)
        return found.best_slots == weekly(ts)

    await until(lambda: best_is(first_ts))  # the old posts are out of the window
    answer = await stack.client.get("/v1/best-times", headers=auth(owner["token"]), params={
        "zone": "Europe/Paris", "network": "bluesky", "channel": channel,
    })  # fmt: skip
    assert (answer.json()["source"], answer.json()["posts"]) == ("own", 5)

    # Now posts at another half-hour, liked more: read again once the day has passed.
    await publish(later_ts, "newer", 20, range(0, 3))
    assert await service.refresh_stale_best() == 0  # read less than a day ago
    assert service.channel(tenant, channel).best_slots == weekly(first_ts)

    async def refreshed() -> bool:
        assert await service.refresh_stale_best(every_s=0) == 1  # a day on, as it were
        return service.channel(tenant, channel).best_slots == weekly(later_ts)

    await until(refreshed)
    await reader.close()
