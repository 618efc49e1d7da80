"""The Jetstream connector against a local websocket server that replays the sample lines."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs
from websockets.asyncio.server import ServerConnection, serve

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.ingest.connectors.jetstream import newest_time_us, run_jetstream, time_us_of
from hubbub.ingest.mapping.jetstream import JetstreamMapping
from hubbub.ingest.service import Ingestor, IngestSummary
from hubbub.ingest.sqlite import SqliteIngestState
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import TOPICS, InputRejected
from tests.conftest import running, until

Contents = dict[str, list[str]]


def stamp(line: bytes) -> int:
    return int(json.loads(line)["time_us"])


@dataclass
class FakeJetstream:
    """Jetstream's replay rules over a fixed history, sorted by `time_us`.

    With a `cursor`, a connection gets every line from that time on; without one it gets
    the live stream, the lines not yet sent. `drop_after` lines into a connection, it waits
    for `before_drop`, aborts the connection, and the rest of the history happens while
    the client is away (only a cursor gets it back).
    """

    history: list[bytes]
    url: str = ""
    first_frames: list[str | bytes] = field(default_factory=list)
    drop_after: int | None = None
    before_drop: Callable[[], Awaitable[None]] | None = None
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    live: int = 0

    def publish(self, lines: Sequence[bytes]) -> None:
        self.history.extend(sorted(lines, key=stamp))

    def _wanted(self, line: bytes, collections: list[str]) -> bool:
        commit = json.loads(line).get("commit")
        return not collections or commit is None or commit["collection"] in collections

    async def handler(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        query = parse_qs(urlsplit(websocket.request.path).query)
        self.requests.append(query)
        self.sent.append(0)
        for frame in self.first_frames:
            await websocket.send(frame)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        start = (
            self.live
            if cursor is None
            else next(
                (i for i, line in enumerate(self.history) if stamp(line) >= cursor),
                len(self.history),
            )
        )
        for index in range(start, len(self.history)):
            if self.drop_after is not None and self.sent[-1] == self.drop_after:
                await self._drop(websocket)
                return
            line = self.history[index]
            if self._wanted(line, query.get("wantedCollections", [])):
                await websocket.send(line.decode())
                self.sent[-1] += 1
            self.live = max(self.live, index + 1)
        await websocket.wait_closed()

    async def _drop(self, websocket: ServerConnection) -> None:
        self.drop_after = None
        if self.before_drop is not None:
            await self.before_drop()
        self.live = len(self.history)
        websocket.transport.abort()


@pytest.fixture
def sorted_lines(jetstream_lines: list[bytes]) -> list[bytes]:
    return sorted(jetstream_lines, key=stamp)


@pytest.fixture
async def jetstream(jetstream_lines: list[bytes]) -> AsyncIterator[FakeJetstream]:
    fake = FakeJetstream(sorted(jetstream_lines, key=stamp))
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/subscribe"
        yield fake


@dataclass
class Rig:
    log: SqliteEventLog
    state: SqliteIngestState
    ingestor: Ingestor


def make_ingestor(log: SqliteEventLog, state: SqliteIngestState) -> Ingestor:
    return Ingestor(JetstreamMapping(SystemClock(), 1 << 20), log, state, SystemClock())


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    log = SqliteEventLog(tmp_path / "log.db")
    state = SqliteIngestState(tmp_path / "ingest.db")
    async with make_ingestor(log, state) as ingestor:
        yield Rig(log, state, ingestor)
    await state.close()
    await log.close()


async def contents_of(log: SqliteEventLog) -> Contents:
    return {topic: [r.event.id for r in await log.read(topic, 1, 100_000)] for topic in TOPICS}


async def expected_contents(tmp_path: Path, lines: Sequence[bytes]) -> Contents:
    """What the log holds after ingesting `lines` directly, in one batch."""
    log = SqliteEventLog(tmp_path / "expected" / "log.db")
    state = SqliteIngestState(tmp_path / "expected" / "ingest.db")
    async with make_ingestor(log, state) as ingestor:
        await ingestor.ingest(lines)
    contents = await contents_of(log)
    await state.close()
    await log.close()
    return contents


def reconnects() -> float:
    value = REGISTRY.get_sample_value("hubbub_source_reconnects_total", {"source": "jetstream"})
    return value or 0.0


@asynccontextmanager
async def connector(rig: Rig, url: str, **options: Any) -> AsyncIterator[asyncio.Task[None]]:
    """Run the connector with test-sized waits; stop it (via `stop`) on the way out."""
    settings: dict[str, Any] = {"batch_size": 25, "batch_max_wait_s": 0.02, "max_backoff_s": 0.05}
    settings.update(options)
    async with running(
        lambda stop: run_jetstream(rig.ingestor, rig.state, url=url, stop=stop, **settings)
    ) as task:
        yield task


def log_has(log: SqliteEventLog, expected: Contents) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await contents_of(log) == expected

    return check


async def test_every_sample_line_reaches_the_log(
    rig: Rig, jetstream: FakeJetstream, sorted_lines: list[bytes], tmp_path: Path
) -> None:
    expected = await expected_contents(tmp_path, sorted_lines)
    summaries: list[IngestSummary] = []
    async with connector(rig, jetstream.url, on_batch=summaries.append):
        await until(log_has(rig.log, expected))
    assert len(expected["engagement"]) == 128
    assert sum(summary.total for summary in summaries) == 152
    assert sum(summary.duplicates for summary in summaries) == 0
    stats = {topic.topic: topic.count for topic in (await rig.log.stats()).topics}
    assert stats == {topic: len(ids) for topic, ids in expected.items() if ids}
    assert await rig.state.load_cursor("jetstream") == max(map(stamp, sorted_lines))
    assert jetstream.requests == [{}]


async def test_reconnects_after_a_drop_and_loses_nothing(
    rig: Rig, jetstream: FakeJetstream, sorted_lines: list[bytes], tmp_path: Path
) -> None:
    expected = await expected_contents(tmp_path, sorted_lines)
    dropped_at = stamp(sorted_lines[59])

    async def cursor_saved() -> None:
        await until(lambda: _cursor_at_least(rig.state, dropped_at))

    jetstream.drop_after, jetstream.before_drop = 60, cursor_saved
    before = reconnects()
    with capture_logs() as logs:
        async with connector(rig, jetstream.url, rewind_s=0.01):
            await until(log_has(rig.log, expected))
    assert len(jetstream.requests) == 2
    resumed = int(jetstream.requests[1]["cursor"][0])
    assert resumed == dropped_at - 10_000
    assert reconnects() - before == 1
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["event"] for entry in warnings] == ["jetstream disconnected, reconnecting"]
    assert rig.ingestor.totals.duplicates > 0  # the rewound overlap came again, and was dropped


async def _cursor_at_least(state: SqliteIngestState, value: int) -> bool:
    saved = await state.load_cursor("jetstream")
    return saved is not None and saved >= value


async def test_restart_resumes_from_the_stored_cursor_minus_rewind(
    tmp_path: Path, jetstream: FakeJetstream, sorted_lines: list[bytes]
) -> None:
    expected = await expected_contents(tmp_path, sorted_lines)
    first, later = sorted_lines[:100], sorted_lines[100:]
    jetstream.history = list(first)
    log = SqliteEventLog(tmp_path / "log.db")
    state = SqliteIngestState(tmp_path / "ingest.db")
    async with (
        make_ingestor(log, state) as ingestor,
        connector(Rig(log, state, ingestor), jetstream.url),
    ):
        await until(lambda: _cursor_at_least(state, stamp(first[-1])))
    await state.close()

    jetstream.publish(later)
    state = SqliteIngestState(tmp_path / "ingest.db")
    saved = await state.load_cursor("jetstream")
    assert saved == stamp(first[-1])
    async with make_ingestor(log, state) as ingestor:
        async with connector(Rig(log, state, ingestor), jetstream.url, rewind_s=0.05):
            await until(log_has(log, expected))
        replayed = [line for line in sorted_lines if stamp(line) >= saved - 50_000]
        assert jetstream.requests[-1]["cursor"] == [str(saved - 50_000)]
        assert jetstream.sent[-1] == len(replayed)
        assert ingestor.totals.total == len(replayed)
        assert ingestor.totals.accepted < len(replayed)
    assert await state.load_cursor("jetstream") == max(map(stamp, sorted_lines))
    await state.close()
    await log.close()


async def test_wanted_collections_are_asked_for(
    rig: Rig, jetstream: FakeJetstream, sorted_lines: list[bytes], tmp_path: Path
) -> None:
    wanted = ["app.bsky.feed.like", "app.bsky.graph.follow"]
    kept = [line for line in sorted_lines if jetstream._wanted(line, wanted)]
    expected = await expected_contents(tmp_path, kept)
    async with connector(rig, jetstream.url, collections=wanted):
        await until(log_has(rig.log, expected))
    assert jetstream.requests[0]["wantedCollections"] == wanted
    assert "compress" not in jetstream.requests[0]
    assert expected["posts"] == []
    assert expected["engagement"]


async def test_garbage_frames_become_dead_letters(
    rig: Rig, jetstream: FakeJetstream, sorted_lines: list[bytes], tmp_path: Path
) -> None:
    garbage: list[str | bytes] = ["not json at all", "{}", b"\xff\xfe binary", b"\x00\x01"]
    jetstream.first_frames = garbage
    as_lines = [g.encode() if isinstance(g, str) else g for g in garbage]
    expected = await expected_contents(tmp_path, [*as_lines, *sorted_lines])
    async with connector(rig, jetstream.url) as task:
        await until(log_has(rig.log, expected))
        assert not task.done()
    letters = [record.event for record in await rig.log.read("deadletter")]
    assert all(isinstance(letter, InputRejected) for letter in letters)
    reasons = {
        bytes(letter.raw): letter.reason.split(":")[0]
        for letter in letters
        if isinstance(letter, InputRejected)
    }
    assert reasons == {
        b"not json at all": "malformed JSON",
        b"{}": "missing field",
        b"\xff\xfe binary": "invalid UTF-8",
        b"\x00\x01": "malformed JSON",
    }
    assert len(jetstream.requests) == 1


async def test_unreachable_server_is_retried_until_stopped(rig: Rig) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = reconnects()
    with capture_logs() as logs:
        async with connector(rig, f"ws://127.0.0.1:{port}", max_backoff_s=0.02) as task:
            await until(lambda: _true(reconnects() - before >= 3))
            assert not task.done()
    lines = [entry for entry in logs if entry["event"] == "jetstream disconnected, reconnecting"]
    assert len(lines) == reconnects() - before
    assert "ConnectionRefusedError" in lines[0]["reason"]
    assert await rig.state.load_cursor("jetstream") is None


async def _true(value: bool) -> bool:
    return value


def test_time_us_is_read_from_the_top_level_only() -> None:
    assert time_us_of(b'{"did":"did:plc:x","time_us": 1725911162329308,"kind":"commit"}') == (
        1725911162329308
    )
    assert time_us_of(b'{"did":"x","commit":{"record":{"time_us":99}}}') is None
    assert time_us_of(b' {"time_us":12,"commit":{}}') == 12
    assert time_us_of(b"garbage") is None
    assert newest_time_us([b'{"time_us":5}', b"x", b'{"time_us":7}']) == 7
    assert newest_time_us([b"x"]) is None
