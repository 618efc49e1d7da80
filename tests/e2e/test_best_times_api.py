"""The best time to post as a user meets it: `GET /v1/best-times` through the gateway (a
channel's own posts when it has enough, the firehose's otherwise, never another
tenant's), and `hubbub reports best-times`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from hubbub.analytics.best_times import HALF_US, as_slot, local_slot
from hubbub.bootstrap import build_platform
from hubbub.cli import app
from hubbub.kernel.events import EngagementRecorded, Event, PostPublished, PublishChanged
from hubbub.settings import Settings
from tests.conftest import until
from tests.support.stack import Stack, auth, start_stack

PARIS = ZoneInfo("Europe/Paris")
DAY_US = 86_400_000_000


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, exits = await start_stack(tmp_path / "data", {"best_time_min_posts": 2})
    async with exits:
        yield built


def post(uri: str, ts: int) -> PostPublished:
    return PostPublished(
        id=uri, key=uri, ts=ts, source="jetstream", post=uri, author="did:plc:someone",
        text="hi", langs=["en"],
    )  # fmt: skip


def likes(uri: str, ts: int, n: int) -> list[Event]:
    return [
        EngagementRecorded(
            id=f"{uri}-like-{i}",
            key=uri,
            ts=ts + 60_000_000 * (i + 1),
            source="jetstream",
            kind="like",
            post=uri,
            post_author="did:plc:someone",
            actor=f"did:plc:f{i}",
            delta=1,
        )
        for i in range(n)
    ]


def published(tenant: str, uri: str, ts: int) -> PublishChanged:
    return PublishChanged(
        id=f"{uri}-published", key=tenant, ts=ts, source="publishing", tenant=tenant,
        job=f"job-{uri}", post=f"p-{uri}", version=1, channel="ch-1", network="bluesky",
        state="published", due_us=ts, remote_id=uri,
    )  # fmt: skip


def slot_of(ts: int) -> dict[str, object]:
    slot = as_slot(local_slot(ts // HALF_US, PARIS), 0.0)
    return {"day": slot.day, "time": slot.time}


async def test_own_posts_rank_a_channels_slots_and_other_tenants_get_the_firehose(
    stack: Stack,
) -> None:
    owner, other = await stack.tenant("newsroom"), await stack.tenant("bakery")
    now = stack.platform.clock.now_us()
    own_ts = (now - 3 * DAY_US) // HALF_US * HALF_US + 60_000_000
    crowd_ts = own_ts - DAY_US + 4 * HALF_US
    events: list[Event] = []
    publications: list[Event] = []  # publishing reports a post before the firehose shows it
    for i in range(3):  # the channel's posts, a week apart, much liked
        uri = f"at://did:plc:someone/app.bsky.feed.post/own{i}"
        ts = own_ts - i * 7 * DAY_US
        publications.append(published(owner["id"], uri, ts))
        events += [post(uri, ts), *likes(uri, ts, 5)]
    for i in range(2):  # and two that no one liked, at another time
        uri = f"at://did:plc:someone/app.bsky.feed.post/quiet{i}"
        ts = own_ts + 6 * HALF_US
        publications.append(published(owner["id"], uri, ts))
        events.append(post(uri, ts))
    for i in range(10):  # the firehose's: liked most at another time, and not liked
        uri = f"at://did:plc:someone/app.bsky.feed.post/crowd{i}"
        events += [post(uri, crowd_ts), *likes(uri, crowd_ts, 9), post(f"{uri}q", own_ts)]
    await stack.platform.event_log.append(publications)
    store = await stack.platform.analytics()

    async def publications_folded() -> bool:
        return store.positions().get("publishing", 0) >= len(publications)

    await until(publications_folded)
    await stack.platform.event_log.append(events)
    params = {"zone": "Europe/Paris", "language": "en", "network": "bluesky", "channel": "ch-1"}

    async def folded() -> bool:
        answer = await stack.client.get(
            "/v1/best-times", params=params, headers=auth(owner["token"])
        )
        return answer.status_code == 200 and answer.json()["source"] == "own"

    await until(folded)
    mine = await stack.client.get("/v1/best-times", params=params, headers=auth(owner["token"]))
    body = mine.json()
    assert (body["zone"], body["posts"], len(body["slots"])) == ("Europe/Paris", 5, 336)
    assert {k: body["top"][0][k] for k in ("day", "time")} == slot_of(own_ts)

    theirs = await stack.client.get("/v1/best-times", params=params, headers=auth(other["token"]))
    assert theirs.json()["source"] == "firehose"
    assert {k: theirs.json()["top"][0][k] for k in ("day", "time")} == slot_of(crowd_ts)

    unknown = await stack.client.get(
        "/v1/best-times", params={**params, "zone": "Mars/Olympus"}, headers=auth(owner["token"])
    )
    assert unknown.status_code == 422


async def test_the_cli_draws_the_week_and_names_the_best_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = await build_platform(Settings(data_dir=tmp_path))
    now = platform.clock.now_us()
    liked_ts = (now - 2 * DAY_US) // HALF_US * HALF_US
    events: list[Event] = []
    for i in range(10):
        uri = f"at://did:plc:someone/app.bsky.feed.post/p{i}"
        events += [post(uri, liked_ts), *likes(uri, liked_ts, 4), post(f"{uri}q", now - DAY_US * 3)]
    await platform.event_log.append(events)
    store = await platform.analytics()

    async def caught_up() -> bool:
        return sum(store.positions().values()) == len(events)

    await until(caught_up)
    await platform.close()
    monkeypatch.setenv("HUBBUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUBBUB_LOG_LEVEL", "warning")
    runner = CliRunner()
    drawn = runner.invoke(app, ["reports", "best-times", "--zone", "Europe/Paris"])
    assert drawn.exit_code == 0, drawn.output
    expected = slot_of(liked_ts)
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[int(str(expected["day"]))]
    assert f"best: {day} {expected['time']}" in drawn.output
    assert "Sun " in drawn.output
    assert "█" in drawn.output
    as_json = runner.invoke(app, ["reports", "best-times", "--zone", "Europe/Paris", "--json"])
    assert json.loads(as_json.output)["source"] == "firehose"
