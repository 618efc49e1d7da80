"""The volume of a listening search over HTTP: its matches per bucket, folded by the
analytics worker from the `matches` topic, for the caller's tenant only; and a watch of
a search, set over HTTP like any other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from hubbub.bootstrap import Platform, build_platform
from hubbub.kernel.events import Event, MatchWithdrawn, SearchMatched
from hubbub.settings import Settings
from tests.conftest import api_client, until

DAY = datetime(2026, 11, 20, tzinfo=UTC)
WINDOW = {"start": "2026-11-20T00:00:00Z", "end": "2026-11-20T03:00:00Z"}


def ts(minute: int) -> int:
    return int((DAY + timedelta(minutes=minute)).timestamp() * 1_000_000)


def matched(tenant: str, search: str, post: str, minute: int, kind: str = "match") -> Event:
    return SearchMatched(
        id=f"m-{tenant}-{search}-{post}", key=tenant, ts=ts(minute), source="listening",
        tenant=tenant, search=search, post=post, author="did:plc:a", text="acme", kind=kind,
    )  # fmt: skip


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    built = await build_platform(Settings(data_dir=tmp_path / "data"))
    await built.analytics()  # the worker starts following the log
    yield built
    await built.close()


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(platform, tenant="newsroom") as client:
        yield client


async def logged_and_folded(platform: Platform, events: Sequence[Event]) -> None:
    """Append the events, and wait until the analytics worker has folded them."""
    store = await platform.analytics()
    expected = sum(store.positions().values()) + len(events)
    await platform.event_log.append(events)

    async def folded() -> bool:
        return sum(store.positions().values()) == expected

    await until(folded)


def values(answer: httpx.Response) -> list[tuple[str, int]]:
    assert answer.status_code == 200, answer.text
    return [(row["bucket"], row["value"]) for row in answer.json()]


async def test_a_search_series_counts_its_matches_and_drops_a_withdrawn_one(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await logged_and_folded(
        platform,
        [
            matched("newsroom", "s1", "post1", 10),
            matched("newsroom", "s1", "post2", 20),
            matched("newsroom", "s1", "post3", 130),
            matched("newsroom", "inbox:bsky", "post4", 15, kind="mention"),
        ],
    )
    assert values(await client.get("/v1/reports/series/search/s1", params=WINDOW)) == [
        ("2026-11-20T00:00:00+00:00", 2),
        ("2026-11-20T01:00:00+00:00", 0),
        ("2026-11-20T02:00:00+00:00", 1),
    ]
    gone = MatchWithdrawn(
        id="w1", key="newsroom", ts=ts(170), source="listening", tenant="newsroom",
        search="s1", post="post2",
    )  # fmt: skip
    await logged_and_folded(platform, [gone])
    daily = await client.get("/v1/reports/series/search/s1", params={**WINDOW, "bucket": "day"})
    assert values(daily) == [("2026-11-20T00:00:00+00:00", 2)]
    csv = await client.get("/v1/reports/series/search/s1", params={**WINDOW, "format": "csv"})
    assert csv.text.splitlines()[1:] == [
        "2026-11-20T00:00:00+00:00,1", "2026-11-20T01:00:00+00:00,0",
        "2026-11-20T02:00:00+00:00,1",
    ]  # fmt: skip
    assert 'filename="search-s1-hour.csv"' in csv.headers["content-disposition"]


async def test_a_tenant_never_sees_the_matches_of_another_tenants_search(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await logged_and_folded(
        platform,
        [
            matched("rival", "s1", "post1", 10),
            matched("rival", "s1", "post2", 11),
            matched("rival", "s7", "post3", 12),
            matched("newsroom", "s1", "post3", 13),
        ],
    )
    async with api_client(platform, tenant="rival") as rival:
        # Asked first, so an answer cached for one tenant would be served to the other.
        assert values(await rival.get("/v1/reports/series/search/s1", params=WINDOW))[0][1] == 2
        assert values(await rival.get("/v1/reports/series/search/s7", params=WINDOW))[0][1] == 1
    assert values(await client.get("/v1/reports/series/search/s1", params=WINDOW))[0][1] == 1
    others = values(await client.get("/v1/reports/series/search/s7", params=WINDOW))
    assert [n for _, n in others] == [0, 0, 0]

    async with api_client(platform, tenant="") as anonymous:
        answer = await anonymous.get("/v1/reports/series/search/s1", params=WINDOW)
    assert answer.status_code == 401


async def test_a_search_is_watched_like_a_hashtag(client: httpx.AsyncClient) -> None:
    added = await client.post("/v1/watches", json={"kind": "search", "target": " s1 "})
    assert added.status_code == 201, added.text
    assert (added.json()["kind"], added.json()["target"]) == ("search", "s1")
    listed = await client.get("/v1/watches")
    assert [(w["kind"], w["target"]) for w in listed.json()] == [("search", "s1")]
    answer = await client.post("/v1/watches", json={"kind": "stream", "target": "s1"})
    assert answer.status_code == 422
    assert "search" in answer.text
