"""The reports API over rollups the analytics worker keeps up from the log."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hubbub.bootstrap import Platform, build_platform
from hubbub.kernel.cache import MemoryCache
from hubbub.settings import Settings
from tests.conftest import api_client, until
from tests.support.reports import EVENTS, at, post


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    # The events are of March 2026: kept past the default retention, which the worker
    # enforces as it starts, so that no read races the prune.
    built = await build_platform(
        Settings(data_dir=tmp_path, rollup_minute_days=3650, rollup_post_days=3650)
    )
    await built.event_log.append(EVENTS)
    store = await built.analytics()

    async def caught_up() -> bool:
        return sum(store.positions().values()) == len(EVENTS)

    await until(caught_up)
    yield built
    await built.close()


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(platform) as client:
        yield client


WINDOW = {"start": "2026-03-29T00:00:00Z", "end": "2026-03-29T04:00:00Z"}


async def test_top_hashtags_count_each_post_once_and_forget_deleted_ones(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/v1/reports/top/hashtags", params=WINDOW)
    assert answer.json() == [
        {"rank": 1, "key": "python", "count": 3},
        {"rank": 2, "key": "rust", "count": 2},
        {"rank": 3, "key": "duckdb", "count": 1},
    ]
    page = await client.get("/v1/reports/top/hashtags", params={**WINDOW, "limit": 1, "offset": 1})
    assert page.json() == [{"rank": 2, "key": "rust", "count": 2}]


async def test_mentioned_and_engaged_pages_and_a_summary(client: httpx.AsyncClient) -> None:
    mentioned = await client.get("/v1/reports/top/mentioned", params=WINDOW)
    assert [(row["key"], row["count"]) for row in mentioned.json()] == [("alice", 1), ("bob", 1)]
    engaged = await client.get("/v1/reports/top/engaged", params=WINDOW)
    assert [(row["key"], row["count"]) for row in engaged.json()] == [("alice", 1), ("bob", 1)]
    summary = await client.get("/v1/reports/pages/alice/summary", params=WINDOW)
    assert summary.json() == [
        {"page": "alice", "posts": 2, "replies": 0, "mentions_received": 1,
         "likes_received": 1, "reposts_received": 0, "replies_received": 0}
    ]  # fmt: skip


async def test_series_are_bucketed_in_the_callers_time_zone(client: httpx.AsyncClient) -> None:
    utc = await client.get("/v1/reports/series/hashtag/python", params=WINDOW)
    assert [(r["bucket"], r["value"]) for r in utc.json()] == [
        ("2026-03-29T00:00:00+00:00", 2),
        ("2026-03-29T01:00:00+00:00", 1),
        ("2026-03-29T02:00:00+00:00", 0),  # carol's post was deleted
        ("2026-03-29T03:00:00+00:00", 0),
    ]
    paris = await client.get(
        "/v1/reports/series/hashtag/python", params={**WINDOW, "tz": "Europe/Paris"}
    )
    assert [(r["bucket"], r["value"]) for r in paris.json()] == [
        ("2026-03-29T01:00:00+01:00", 2),
        ("2026-03-29T03:00:00+02:00", 1),  # 02:00 does not exist there that night
        ("2026-03-29T04:00:00+02:00", 0),
        ("2026-03-29T05:00:00+02:00", 0),
    ]
    days = await client.get(
        "/v1/reports/series/page/alice",
        params={**WINDOW, "bucket": "day", "tz": "Europe/Paris", "metric": "likes_received"},
    )
    assert days.json() == [{"bucket": "2026-03-29T00:00:00+01:00", "value": 1}]


async def test_every_report_exports_as_csv(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/reports/top/hashtags", params={**WINDOW, "format": "csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="top-hashtags.csv"' in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows[0] == {"rank": "1", "key": "python", "count": "3"}


async def test_a_csv_export_names_its_file_whatever_the_key(client: httpx.AsyncClient) -> None:
    """A key outside Latin-1, or with a quote, used to fail the header: a 500."""
    answer = await client.get('/v1/reports/series/page/🦆"duck', params={**WINDOW, "format": "csv"})
    assert answer.status_code == 200, answer.text
    disposition = answer.headers["content-disposition"]
    assert disposition == (
        'attachment; filename="page-__duck-hour.csv"; '
        "filename*=UTF-8''page-%F0%9F%A6%86%22duck-hour.csv"
    )


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/v1/reports/top/hashtags", {**WINDOW, "end": "2026-03-28T00:00:00Z"}, "after start"),
        ("/v1/reports/top/hashtags", {**WINDOW, "start": "2026-03-29T00:00:00"}, "offset"),
        ("/v1/reports/top/hashtags", {**WINDOW, "limit": "0"}, "greater than or equal"),
        ("/v1/reports/top/hashtags", {"start": "yesterday", "end": "now"}, "datetime"),
        ("/v1/reports/top/nothing", WINDOW, "hashtags"),
        ("/v1/reports/series/hashtag/x", {**WINDOW, "tz": "Mars/Olympus"}, "time zone"),
        ("/v1/reports/series/page/x", {**WINDOW, "metric": "vibes"}, "unknown metric"),
        ("/v1/reports/series/page/x", {**WINDOW, "bucket": "week"}, "minute"),
        ("/v1/reports/series/page/x", {"start": "2026-01-01T00:00Z", "end": "2026-03-01T00:00Z",
                                       "bucket": "minute"}, "7 days"),
        # A series answers every bucket: these took seconds to minutes and gigabytes.
        ("/v1/reports/series/page/x", {"start": "2000-01-01T00:00Z", "end": "2026-01-01T00:00Z",
                                       "bucket": "hour"}, "hour buckets cover at most 2 years"),
        ("/v1/reports/series/page/x", {"start": "1970-01-01T00:00Z", "end": "8999-01-01T00:00Z",
                                       "bucket": "day"}, "day buckets cover at most 100 years"),
        # These were 500s: dates overflowed, the offset overflowed DuckDB's integers.
        ("/v1/reports/series/page/x", {"start": "0001-01-01T00:00+01:00",
                                       "end": "0001-01-02T00:00Z"}, "between 1970-01-01 and"),
        ("/v1/reports/top/hashtags", {"start": "0001-01-01T00:00Z", "end": "0001-01-02T00:00Z"},
         "between 1970-01-01 and 9000-01-01"),
        ("/v1/reports/top/hashtags", {**WINDOW, "offset": str(2**63)}, "less than or equal"),
    ],
)  # fmt: skip
async def test_bad_parameters_get_a_422_that_says_what_is_wrong(
    client: httpx.AsyncClient, path: str, params: dict[str, str], says: str
) -> None:
    answer = await client.get(path, params=params)
    assert answer.status_code == 422
    assert says in answer.text


async def test_a_cached_report_is_recomputed_once_the_rollups_advance(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    def python_count(answer: httpx.Response) -> int:
        return next(row["count"] for row in answer.json() if row["key"] == "python")

    params = {**WINDOW, "limit": 5}
    assert python_count(await client.get("/v1/reports/top/hashtags", params=params)) == 3
    assert python_count(await client.get("/v1/reports/top/hashtags", params=params)) == 3
    await platform.event_log.append([post(6, "dave", at(2), ["python"])])
    store = await platform.analytics()

    async def folded() -> bool:
        return sum(store.positions().values()) == len(EVENTS) + 1

    await until(folded)
    assert python_count(await client.get("/v1/reports/top/hashtags", params=params)) == 4


async def test_a_report_keeps_one_cache_entry_however_often_the_rollups_advance(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    cache = platform.cache()
    assert isinstance(cache, MemoryCache)
    store = await platform.analytics()
    params = {**WINDOW, "bucket": "minute"}
    for n in range(3):
        answer = await client.get("/v1/reports/series/hashtag/python", params=params)
        assert sum(row["value"] for row in answer.json()) == 3 + n
        await platform.event_log.append([post(10 + n, "dave", at(2), ["python"])])

        async def folded(expected: int = len(EVENTS) + n + 1) -> bool:
            return sum(store.positions().values()) == expected

        await until(folded)
    # One entry, replaced as the rollups advanced: not one for each batch folded.
    assert cache.size[0] == 1
