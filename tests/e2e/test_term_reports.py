"""Series of a watched term over HTTP: not counted (404) until a watch names it, then
counted by the analytics worker from the watch on; a tenant sees only the terms it
watches itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from hubbub.bootstrap import Platform, build_platform
from hubbub.kernel.events import Event, PostPublished
from hubbub.settings import Settings
from tests.conftest import api_client, until

DAY = datetime(2026, 11, 20, tzinfo=UTC)
WINDOW = {"start": "2026-11-20T00:00:00Z", "end": "2026-11-20T04:00:00Z"}
SERIES = "/v1/reports/series/term/climate%20change"


def said(n: int, minute: int, text: str) -> PostPublished:
    ts = int((DAY + timedelta(minutes=minute)).timestamp() * 1_000_000)
    return PostPublished(
        id=f"p{n}", key="alice", ts=ts, source="jetstream", post=f"post{n}", author="alice",
        text=text, tags=["news"],
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


async def test_a_term_is_not_counted_until_watched_then_counted_from_the_watch_on(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await logged_and_folded(platform, [said(1, 10, "climate change, before anyone watched")])
    unwatched = await client.get(SERIES, params=WINDOW)
    assert unwatched.status_code == 404
    assert "'climate change' is not counted for you" in unwatched.json()["detail"]
    assert "POST /v1/watches, kind term" in unwatched.json()["detail"]

    watch = await client.post("/v1/watches", json={"kind": "term", "target": "Climate-Change!"})
    assert watch.status_code == 201, watch.text
    assert watch.json()["target"] == "climate change"
    # A post after the watch, folded: the worker has read the watch for what follows.
    await logged_and_folded(platform, [said(2, 30, "the weather")])
    await logged_and_folded(
        platform,
        [
            said(3, 70, "The climate change summit opens"),
            said(4, 75, "CLIMATE-CHANGE: a thread"),
            said(5, 130, "climates changed"),
            said(6, 185, "on climate change, again"),
        ],
    )

    assert values(await client.get(SERIES, params=WINDOW)) == [
        ("2026-11-20T00:00:00+00:00", 0),  # folded before the watch
        ("2026-11-20T01:00:00+00:00", 2),
        ("2026-11-20T02:00:00+00:00", 0),
        ("2026-11-20T03:00:00+00:00", 1),
    ]
    same_term = await client.get(
        "/v1/reports/series/term/CLIMATE-change", params={**WINDOW, "bucket": "day"}
    )
    assert values(same_term) == [("2026-11-20T00:00:00+00:00", 3)]


async def test_a_term_without_a_word_is_refused_with_a_422(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/reports/series/term/%21%21%21", params=WINDOW)
    assert answer.status_code == 422
    assert "no word" in answer.text
    watch = await client.post("/v1/watches", json={"kind": "term", "target": "?!"})
    assert watch.status_code == 422
    assert "no word" in watch.text


async def test_a_hashtag_series_of_another_metric_than_posts_is_a_422(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await logged_and_folded(platform, [said(1, 10, "news")])
    answer = await client.get(
        "/v1/reports/series/hashtag/news", params={**WINDOW, "metric": "likes_received"}
    )
    assert answer.status_code == 422
    assert "counts posts only" in answer.json()["detail"]
    posts = await client.get("/v1/reports/series/hashtag/news", params=WINDOW)
    assert values(posts)[0] == ("2026-11-20T00:00:00+00:00", 1)


async def test_a_term_another_tenant_watches_is_answered_as_one_no_one_watches(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    async with api_client(platform, tenant="rival") as rival:
        watch = await rival.post("/v1/watches", json={"kind": "term", "target": "acme merger"})
        assert watch.status_code == 201, watch.text
        await logged_and_folded(platform, [said(1, 10, "the acme merger is off")])
        assert values(await rival.get("/v1/reports/series/term/acme%20merger", params=WINDOW))

    watched_by_another = await client.get("/v1/reports/series/term/acme%20merger", params=WINDOW)
    watched_by_none = await client.get("/v1/reports/series/term/acme%20murder", params=WINDOW)
    assert watched_by_another.status_code == watched_by_none.status_code == 404
    assert watched_by_another.json() == {
        "detail": watched_by_none.json()["detail"].replace("murder", "merger")
    }


async def test_a_term_series_without_a_tenant_is_refused(platform: Platform) -> None:
    async with api_client(platform, tenant="") as anonymous:
        answer = await anonymous.get(SERIES, params=WINDOW)
    assert answer.status_code == 401
    assert "through the gateway" in answer.json()["detail"]
