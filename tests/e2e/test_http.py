"""The HTTP API: push ingest and the operations endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hubbub.bootstrap import Platform, build_platform
from hubbub.kernel.events import DEADLETTER, ENGAGEMENT
from hubbub.settings import Settings
from tests.conftest import FIXTURES, api_client


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    settings = Settings(
        data_dir=tmp_path,
        max_push_bytes=200_000,
        mastodon_instances="mastodon.social, mastodon.example",
        max_ingestors=3,
    )
    built = await build_platform(settings)
    yield built
    await built.close()


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(platform, "all") as client:
        yield client


async def test_a_pushed_ndjson_batch_is_answered_with_the_counts(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    body = (FIXTURES / "jetstream-sample.jsonl").read_bytes() + b"\n{broken\n"
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = await client.post(
        "/v1/ingest/jetstream", content=body, headers={"traceparent": traceparent}
    )
    assert response.status_code == 200
    counts = response.json()
    assert (counts["accepted"], counts["skipped"], counts["rejected"], counts["duplicates"]) == (
        145,
        7,
        1,
        0,
    )
    again = (await client.post("/v1/ingest/jetstream", content=body)).json()
    assert again["duplicates"] == 145
    assert len(await platform.event_log.read(ENGAGEMENT, 1, 1000)) == 128
    (letter,) = await platform.event_log.read(DEADLETTER)
    assert letter.event.trace.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"


async def test_push_errors_say_what_to_do(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/v1/ingest/twitter", content=b"{}")
    assert unknown.status_code == 404
    assert "use jetstream, mastodon" in unknown.json()["detail"]
    too_big = await client.post("/v1/ingest/jetstream", content=b"x" * 300_000)
    assert too_big.status_code == 413
    assert "over 200000 bytes" in too_big.json()["detail"]


async def test_pushed_events_record_who_pushed_them(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    lines = (FIXTURES / "jetstream-sample.jsonl").read_bytes().splitlines()[:50]
    pushed = await client.post("/v1/ingest/jetstream", content=b"\n".join([*lines, b"{oops"]))
    assert pushed.json()["accepted"] > 0
    stats = await platform.event_log.stats()
    written = [
        r.event for t in stats.topics for r in await platform.event_log.read(t.topic, 1, 10_000)
    ]
    assert written
    assert {e.pushed_by for e in written} == {"t-test/test-key"}  # type: ignore[attr-defined]


async def test_mastodon_instances_are_an_allow_list_and_ingestors_are_bounded(
    client: httpx.AsyncClient,
) -> None:
    status = (FIXTURES / "mastodon-status-example.json").read_bytes().replace(b"\n", b"")
    refused = await client.post(
        "/v1/ingest/mastodon", content=status, params={"instance": "evil.example"}
    )
    assert refused.status_code == 422
    assert "HUBBUB_MASTODON_INSTANCES" in refused.json()["detail"]
    for instance in ("push", "mastodon.social"):  # two ingestors, then the third is the last
        answer = await client.post(
            "/v1/ingest/mastodon", content=status, params={"instance": instance}
        )
        assert answer.status_code == 200
    third = await client.post("/v1/ingest/jetstream", content=b"")
    assert third.status_code == 200
    over = await client.post(
        "/v1/ingest/mastodon", content=status, params={"instance": "mastodon.example"}
    )
    assert over.status_code == 503
    assert "HUBBUB_MAX_INGESTORS" in over.json()["detail"]


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["event_log"] == "sqlite"
    await client.post(
        "/v1/ingest/jetstream", content=(FIXTURES / "jetstream-sample.jsonl").read_bytes()
    )
    metrics = (await client.get("/metrics")).text
    assert 'hubbub_ingest_events_total{outcome="accepted",source="jetstream"}' in metrics
    assert "hubbub_ingest_batch_size_bucket" in metrics
    assert "hubbub_ingest_lag_seconds" in metrics


async def test_readiness_fails_when_the_log_is_gone(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await platform.event_log.close()
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert "event log (sqlite) not reachable" in ready.json()["reason"]


async def test_health_says_degraded_while_background_work_fails(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await platform.analytics()  # the role's log followers, monitor and webhooks start
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    await platform.event_log.close()  # every follower of the log fails from now on
    for _ in range(100):  # each follower finds out at its own next read
        health = (await client.get("/healthz")).json()
        if {"rollups", "archive"} <= set(health.get("failing_tasks", {})):
            break
        await asyncio.sleep(0.05)
    assert health["status"] == "degraded"
    assert {"rollups", "archive"} <= set(health["failing_tasks"]), health


async def test_a_pushed_page_is_suggested_within_two_seconds(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/mentions", params={"q": "eug"})).json() == []
    status = (FIXTURES / "mastodon-status-example.json").read_bytes().replace(b"\n", b"")
    pushed = await client.post(
        "/v1/ingest/mastodon", content=status, params={"instance": "mastodon.social"}
    )
    assert pushed.json()["accepted"] == 1
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    while not (found := (await client.get("/v1/mentions", params={"q": "@Eug"})).json()):
        assert loop.time() < deadline, "the new page was not suggested within 2 s"
        await asyncio.sleep(0.05)
    assert found == [
        {
            "id": "https://mastodon.social/@Gargron",
            "handle": "Gargron@mastodon.social",
            "display_name": "Eugen",
            "followers": 322930,
            "source": "mastodon",
        }
    ]


async def test_mention_queries_that_cannot_be_answered_get_a_4xx(
    client: httpx.AsyncClient,
) -> None:
    for bad in ("", "   ", "@", "x" * 1000):
        response = await client.get("/v1/mentions", params={"q": bad})
        assert response.status_code == 422
    assert (await client.get("/v1/mentions")).status_code == 422
