"""A mentions replica with two backends: shadow comparison and a live cutover under load.

Both use the real PostgreSQL (a database per test) beside the in-memory index.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
from typer.testing import CliRunner

from hubbub.bootstrap import Platform, build_platform, open_mentions_backend
from hubbub.cli import app
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.background import Background
from hubbub.kernel.events import Event, FollowersChanged, PageSeen
from hubbub.mentions import worker
from hubbub.mentions.service import MentionsReplica
from hubbub.settings import Settings
from hubbub.web.app import create_app
from tests.conftest import postgres_database, signed, until
from tests.support.net import free_port

NAMES = ["Taylor Swift", "Taylor Otwell", "Swift Language", "Zoë Ødegård", "山田 太郎"]


def pages(count: int) -> list[Event]:
    return [
        PageSeen(
            id=f"seen-{n}",
            key=f"did:plc:{n}",
            ts=n,
            source="jetstream",
            page=f"did:plc:{n}",
            handle=f"{NAMES[n % len(NAMES)].split()[0].lower()}{n}.example",
            display_name=f"{NAMES[n % len(NAMES)]} {n}",
            followers_count=(n * 7919) % 100_003,
        )
        for n in range(count)
    ]


QUERIES = ["tay", "taylor sw", "swift", "odeg", "山田", "t", "zo", "ta ot", "qqq"]


async def test_the_shadow_backend_answers_the_same_queries_off_the_request_path(
    tmp_path: Path,
) -> None:
    with postgres_database("hubbub_shadow") as dsn:
        settings = Settings(data_dir=tmp_path, mentions_postgres_url=dsn)
        log = SqliteEventLog(settings.log_path)
        await log.append(pages(300))
        replica = MentionsReplica(
            log,
            lambda name: open_mentions_backend(name, settings),
            serving="memory",
            shadow="postgres",
        )
        background = Background()
        try:
            await replica.start()
            worker.run(background, replica)
            for query in QUERIES * 3:
                backend, _ = await replica.suggest(query)
                assert backend == "memory"

            async def compared() -> bool:
                return (await replica.report()).compared == len(QUERIES) * 3

            await until(compared)
            report = await replica.report()
            assert (report.serving, report.shadow, report.agreement) == ("memory", "postgres", 1.0)
            assert report.latency["memory"]["count"] == report.latency["postgres"]["count"] == 27
            assert report.positions == {"memory": 300, "postgres": 300}
        finally:
            await replica.close()
            await log.close()


@asynccontextmanager
async def mentions_server(settings: Settings, count: int) -> AsyncIterator[tuple[Platform, str]]:
    """A platform with `count` pages in its log, serving the mentions role on a free port."""
    platform = await build_platform(settings)
    await platform.event_log.append(pages(count))
    await platform.mentions()
    port = free_port()
    app_ = create_app(platform, "mentions")
    server = uvicorn.Server(uvicorn.Config(app_, port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        await until(lambda: asyncio.sleep(0.01, server.started))
        yield platform, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        await platform.close()


async def test_a_cutover_under_load_fails_no_request(tmp_path: Path) -> None:
    statuses: Counter[int] = Counter()
    answers: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    stop = asyncio.Event()

    async def load(client: httpx.AsyncClient, worker: int) -> None:
        n = worker
        while not stop.is_set():
            query = QUERIES[n % len(QUERIES)]
            n += 1
            response = await client.get("/v1/mentions", params={"q": query})
            statuses[response.status_code] += 1
            backend = response.headers["x-mentions-backend"]
            ids = tuple(page["id"] for page in response.json())
            answers.setdefault((backend, query), set()).add(ids)

    with postgres_database("hubbub_cutover") as dsn:
        settings = Settings(
            data_dir=tmp_path, mentions_backend="postgres", mentions_postgres_url=dsn
        )
        async with (
            mentions_server(settings, 500) as (platform, base),
            httpx.AsyncClient(base_url=base, timeout=10, auth=signed(settings)) as client,
        ):
            replica = await platform.mentions()
            workers = [asyncio.create_task(load(client, w)) for w in range(8)]
            await asyncio.sleep(0.5)
            assert replica.serving == "postgres"
            # The operator's command, run as a person would run it.
            result = await asyncio.to_thread(
                CliRunner().invoke,
                app,
                ["--data-dir", str(tmp_path), "mentions", "cutover", "--to", "memory"],
            )
            assert result.exit_code == 0, result.output

            async def switched() -> bool:
                return replica.serving == "memory"

            await until(switched)
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*workers)

    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) > 100
    served_by = {backend for backend, _ in answers}
    assert served_by == {"postgres", "memory"}
    for query in QUERIES:
        assert answers[("postgres", query)] == answers[("memory", query)], query


async def test_replicas_each_build_their_index_from_the_same_log(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    replicas = [
        MentionsReplica(log, lambda _, d=d: open_mentions_backend("memory", Settings(data_dir=d)),
                        serving="memory", interval_s=0.01)
        for d in (tmp_path / "a", tmp_path / "b")
    ]  # fmt: skip
    followers = [Background() for _ in replicas]
    try:
        await log.append(pages(50))
        for replica, background in zip(replicas, followers, strict=True):
            await replica.start()
            worker.run(background, replica)
        await log.append(
            [FollowersChanged(id="f", key="did:plc:2", ts=9, source="jetstream",
                              page="did:plc:2", follower="did:plc:fan", delta=1_000_000)]
        )  # fmt: skip

        async def both_see_it() -> bool:
            answers = [await replica.suggest("swift") for replica in replicas]
            return all(found[0].id == "did:plc:2" for _, found in answers)

        await until(both_see_it)
    finally:
        for replica, background in zip(replicas, followers, strict=True):
            await background.close()
            await replica.close()
        await log.close()


async def test_the_shadow_report_command_reads_a_running_replica(tmp_path: Path) -> None:
    with postgres_database("hubbub_report") as dsn:
        settings = Settings(
            data_dir=tmp_path, mentions_shadow="postgres", mentions_postgres_url=dsn
        )
        async with mentions_server(settings, 100) as (platform, url):
            async with httpx.AsyncClient(base_url=url, auth=signed(settings)) as client:
                for query in QUERIES:
                    assert (await client.get("/v1/mentions", params={"q": query})).is_success
            replica = await platform.mentions()

            async def compared() -> bool:
                return (await replica.report()).compared == len(QUERIES)

            await until(compared)
            runner = CliRunner()
            data_dir = ["--data-dir", str(tmp_path)]  # the deployment's, and its secret
            result = await asyncio.to_thread(
                runner.invoke, app, [*data_dir, "mentions", "shadow-report", "--url", url, "--json"]
            )
            text = await asyncio.to_thread(
                runner.invoke, app, [*data_dir, "mentions", "shadow-report", "--url", url]
            )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["serving"], report["shadow"]) == ("memory", "postgres")
    assert (report["compared"], report["agreement"]) == (len(QUERIES), 1.0)
    assert report["latency"]["postgres"]["count"] == len(QUERIES)
    assert "100.00% identical top-k" in text.stdout
