"""The Mastodon connector against a local HTTP/1.1 server streaming Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.ingest.connectors.mastodon import SseParser, run_mastodon, stream_line
from hubbub.ingest.mapping.mastodon import MastodonMapping
from hubbub.ingest.service import Ingestor
from hubbub.ingest.sqlite import SqliteIngestState
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import TOPICS, EngagementRecorded, PostDeleted, PostEdited, PostPublished
from tests.conftest import running, until
from tests.support.mastodon import FakeMastodon, Reply


@pytest.fixture
async def mastodon() -> AsyncIterator[FakeMastodon]:
    fake = FakeMastodon()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield fake


@dataclass
class Rig:
    log: SqliteEventLog
    ingestor: Ingestor


def make_ingestor(log: SqliteEventLog, state: SqliteIngestState) -> Ingestor:
    mapping = MastodonMapping(SystemClock(), 1 << 20, instance="mastodon.social")
    return Ingestor(mapping, log, state, SystemClock())


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    log = SqliteEventLog(tmp_path / "log.db")
    state = SqliteIngestState(tmp_path / "ingest.db")
    async with make_ingestor(log, state) as ingestor:
        yield Rig(log, ingestor)
    await state.close()
    await log.close()


@asynccontextmanager
async def connector(rig: Rig, url: str, **options: Any) -> AsyncIterator[asyncio.Task[None]]:
    """Run the connector with test-sized waits; stop it (via `stop`) on the way out."""
    settings: dict[str, Any] = {"token": "s3cret", "batch_max_wait_s": 0.02, "max_backoff_s": 0.05}
    settings.update(options)
    async with running(
        lambda stop: run_mastodon(rig.ingestor, url=url, stop=stop, **settings)
    ) as task:
        yield task


def has_posts(log: SqliteEventLog, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(await log.read("posts")) >= count

    return check


def reconnects() -> float:
    value = REGISTRY.get_sample_value("hubbub_source_reconnects_total", {"source": "mastodon"})
    return value or 0.0


def sse(event: str, data: str, newline: str = "\n") -> bytes:
    lines = [f"event: {event}", *(f"data: {line}" for line in data.split("\n")), "", ""]
    return newline.join(lines).encode()


@pytest.fixture
def status(mastodon_status: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(mastodon_status)
    return loaded


def variant(status: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**status, **changes}


@pytest.fixture
def reply_status(status: dict[str, Any]) -> dict[str, Any]:
    return variant(
        status,
        id="103270115826049000",
        in_reply_to_id=status["id"],
        uri=status["uri"].replace("975", "999"),
        content="<p>a reply</p>",
    )


async def contents_of(log: SqliteEventLog) -> dict[str, list[str]]:
    return {topic: [r.event.id for r in await log.read(topic, 1, 100_000)] for topic in TOPICS}


async def expected_contents(tmp_path: Path, lines: Sequence[bytes]) -> dict[str, list[str]]:
    """What the log holds after ingesting `lines` directly, in one batch."""
    log = SqliteEventLog(tmp_path / "expected" / "log.db")
    state = SqliteIngestState(tmp_path / "expected" / "ingest.db")
    async with make_ingestor(log, state) as ingestor:
        await ingestor.ingest(lines)
    contents = await contents_of(log)
    await state.close()
    await log.close()
    return contents


async def test_stream_events_land_in_the_log(
    rig: Rig,
    mastodon: FakeMastodon,
    status: dict[str, Any],
    reply_status: dict[str, Any],
    tmp_path: Path,
) -> None:
    edited = variant(status, content="<p>edited text</p>", edited_at="2019-12-08T04:00:00.000Z")
    body = b"".join(
        [
            b":)\n\n",
            sse("update", json.dumps(status)),
            b":thump\n\n",
            sse("notification", '{"id": "1"}', newline="\r\n"),
            sse("status.update", json.dumps(edited), newline="\r\n"),
            b":thump\n",
            sse("update", json.dumps(reply_status, indent=2)),
            sse("delete", status["id"]),
        ]
    )
    mastodon.replies = [Reply(body=body)]
    async with connector(rig, mastodon.url):
        await until(has_posts(rig.log, 3))
        await until(lambda: _has(rig.log, "deletes"))

    posts = [record.event for record in await rig.log.read("posts")]
    assert [type(post) for post in posts] == [PostPublished, PostEdited, PostPublished]
    texts = [post.text for post in posts if isinstance(post, PostPublished | PostEdited)]
    assert texts[0].startswith('"I lost my inheritance with one wrong digit on my sort code"')
    assert texts[1:] == ["edited text", "a reply"]
    [engagement] = [record.event for record in await rig.log.read("engagement")]
    assert isinstance(engagement, EngagementRecorded)
    assert (engagement.kind, engagement.post) == ("reply", status["uri"])
    [deleted] = [record.event for record in await rig.log.read("deletes")]
    assert isinstance(deleted, PostDeleted)
    assert deleted.post == status["uri"]
    totals = rig.ingestor.totals
    assert (totals.accepted, totals.skipped, totals.rejected) == (4, 1, 0)

    lines = [
        stream_line("update", json.dumps(status)),
        stream_line("notification", '{"id": "1"}'),
        stream_line("status.update", json.dumps(edited)),
        stream_line("update", json.dumps(reply_status, indent=2)),
        stream_line("delete", status["id"]),
    ]
    expected = await expected_contents(tmp_path, lines)
    assert await contents_of(rig.log) == expected

    [request] = mastodon.requests
    assert request.target == "/api/v1/streaming/public"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["accept"] == "text/event-stream"


async def _has(log: SqliteEventLog, topic: str) -> bool:
    return bool(await log.read(topic))


async def test_a_closed_stream_is_reconnected(
    rig: Rig, mastodon: FakeMastodon, status: dict[str, Any], reply_status: dict[str, Any]
) -> None:
    mastodon.replies = [
        Reply(body=sse("update", json.dumps(status)), hold=False),
        Reply(body=sse("update", json.dumps(reply_status))),
    ]
    before = reconnects()
    with capture_logs() as logs:
        async with connector(rig, mastodon.url, stream="public:local"):
            await until(has_posts(rig.log, 2))
    posts = [record.event for record in await rig.log.read("posts")]
    assert [getattr(post, "post", None) for post in posts] == [status["uri"], reply_status["uri"]]
    assert [request.target for request in mastodon.requests] == [
        "/api/v1/streaming/public/local"
    ] * 2
    assert reconnects() - before == 1
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning["event"] == "mastodon stream disconnected, reconnecting"
    assert warning["reason"] == "the server ended the stream"


async def test_a_refused_token_is_reported_and_retried(
    rig: Rig, mastodon: FakeMastodon, status: dict[str, Any]
) -> None:
    mastodon.replies = [
        Reply(401, "application/json", b'{"error":"The access token is invalid"}'),
        Reply(body=sse("update", json.dumps(status))),
    ]
    with capture_logs() as logs:
        async with connector(rig, mastodon.url, token="expired") as task:
            await until(has_posts(rig.log, 1))
            assert not task.done()
    [error] = [entry for entry in logs if entry["log_level"] == "error"]
    assert "HTTP 401" in error["problem"]
    assert "The access token is invalid" in error["problem"]
    assert "check the token" in error["problem"]
    assert [r.headers["authorization"] for r in mastodon.requests] == ["Bearer expired"] * 2


async def test_a_wrong_url_says_it_is_not_a_streaming_endpoint(
    rig: Rig, mastodon: FakeMastodon
) -> None:
    mastodon.replies = [
        Reply(404, "text/html", b"<h1>Not Found</h1>"),
        Reply(200, "text/html", b"<html>a web page</html>"),
    ]
    with capture_logs() as logs:
        async with connector(rig, mastodon.url, token=None):
            await until(lambda: _true(len(mastodon.requests) >= 3))
    errors = [entry["problem"] for entry in logs if entry["log_level"] == "error"]
    assert "HTTP 404" in errors[0]
    assert "not a Mastodon streaming endpoint" in errors[0]
    assert "text/html" in errors[1]
    assert "not a Mastodon streaming endpoint" in errors[1]
    assert all("authorization" not in request.headers for request in mastodon.requests)


async def _true(value: bool) -> bool:
    return value


async def test_stop_flushes_the_partial_batch(
    rig: Rig, mastodon: FakeMastodon, status: dict[str, Any]
) -> None:
    mastodon.replies = [Reply(body=sse("update", json.dumps(status)))]
    async with connector(rig, mastodon.url, batch_max_wait_s=60):
        await mastodon.streamed.wait()
        await asyncio.sleep(0.05)
        assert await rig.log.read("posts") == []
    assert len(await rig.log.read("posts")) == 1


def test_sse_parser_follows_the_event_stream_rules() -> None:
    parser = SseParser()
    lines = [
        "\ufeff:comment",
        "event: update",
        "data:first",
        "data: second",
        "id: 7",
        "",
        "data",
        "",
        "event: lonely",
        "",
        "data:  two spaces",
        "retry: 10",
        "",
        "event: unfinished",
        "data: never dispatched",
    ]
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    assert events == [("update", "first\nsecond"), ("message", ""), ("message", " two spaces")]
