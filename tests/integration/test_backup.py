"""`hubbub backup` on a platform that ingests a live Jetstream while the backup is made:
the backup verifies, restores onto a wiped data directory with the log the manifest
names, every read model answers what a rebuild from that log answers, and ingest then
resumes from the restored cursor to the very state the original reached, nothing
counted twice. A damaged backup is refused with the fault named."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner
from websockets.asyncio.server import ServerConnection, serve

from hubbub.analytics import service
from hubbub.analytics.service import Window
from hubbub.analytics.worker import TOPICS as ANALYTICS_TOPICS
from hubbub.bootstrap import Platform, build_platform
from hubbub.cli import app
from hubbub.eventlog.jetstream import JetStreamEventLog
from hubbub.eventlog.jetstream.streams import delete_streams
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.ingest.connectors.jetstream import run_jetstream
from hubbub.kernel.events import MATCHES, PAGES
from hubbub.listening.ports import MatchFilter, Search
from hubbub.listening.sql import SqlListeningStore
from hubbub.operations.backup import positions
from hubbub.operations.copies import sha256_of
from hubbub.settings import Settings
from hubbub.synthetic.firehose import FirehoseSpec, generate_firehose
from tests.conftest import post, postgres_database, running, service_missing
from tests.contract.test_tenant_stores import sqlalchemy_url
from tests.support.cli import cli, hubbub
from tests.support.net import free_port

TENANT = "t-backup"
QUERIES = ("a", "s", "m", "jo", "ma", "ka")


def firehose(events: int, seed: int = 7) -> list[bytes]:
    """Jetstream lines of the last hour, in time order (rollups keep them all)."""
    start_us = int((time.time() - 3600) * 1_000_000)
    spec = FirehoseSpec(events=events, pages=600, seed=seed, start_us=start_us)
    return sorted(generate_firehose(spec), key=lambda line: json.loads(line)["time_us"])


@dataclass
class FakeJetstream:
    """Jetstream's replay rules over a fixed history: a connection gets every line from
    its `cursor` on (from the first without one), `pace` lines each 10 ms."""

    lines: list[bytes]
    pace: int = 40
    url: str = ""
    sent: int = 0
    progressed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def sent_at_least(self, lines: int) -> None:
        """Wait until `lines` lines went out (to any connection)."""
        async with self.progressed:
            await self.progressed.wait_for(lambda: self.sent >= lines)

    async def handler(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        query = parse_qs(urlsplit(websocket.request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else 0
        stamps = [json.loads(line)["time_us"] for line in self.lines]
        start = bisect.bisect_left(stamps, cursor)
        while start < len(self.lines):
            chunk = self.lines[start : start + self.pace]
            for line in chunk:
                await websocket.send(line.decode())
            start += len(chunk)
            async with self.progressed:
                self.sent = max(self.sent, start)
                self.progressed.notify_all()
            await asyncio.sleep(0.01)
        await websocket.wait_closed()


@asynccontextmanager
async def jetstream_serving(lines: list[bytes]) -> AsyncIterator[FakeJetstream]:
    fake = FakeJetstream(lines)
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/subscribe"
        yield fake


def platform_settings(data_dir: Path) -> Settings:
    """The embedded defaults, with the mentions snapshot rewritten every 0.2 s (so a
    backup meets snapshots being replaced) and the archive flushed often."""
    return Settings(
        data_dir=data_dir, mentions_snapshot_interval_s=0.2, archive_flush_s=0.3,
        listening_interval_s=0.05,
    )  # fmt: skip


async def start(data_dir: Path, *, search: bool = False) -> tuple[Platform, str]:
    """A platform on `data_dir` with mentions, analytics and listening at work; with
    `search`, a saved search of the tenant's (else its one saved search's id)."""
    platform = await build_platform(platform_settings(data_dir))
    await platform.mentions()
    await platform.analytics()
    listening = await platform.listening()
    if search:
        made = await listening.save(TENANT, "tester", "festivals", "festival OR game")
        return platform, made.id
    (found,) = await listening.streams(TENANT)
    return platform, found.id


async def ingested(platform: Platform, lines: list[bytes]) -> None:
    """Wait until ingest's cursor reached the last line: every line is in the log."""
    last = max(json.loads(line)["time_us"] for line in lines)
    for _ in range(1200):
        if await platform.ingest_state.load_cursor("jetstream") == last:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("ingest did not reach the last line within a minute")


async def heads(platform: Platform) -> dict[str, int]:
    stats = await platform.event_log.stats()
    return {topic.topic: topic.last_position for topic in stats.topics}


async def caught_up(platform: Platform) -> None:
    """Wait until every read model has folded all the log holds, twice in a row."""
    settled = 0
    for _ in range(1200):
        now = await heads(platform)
        replica = await platform.mentions()
        stored = {
            "mentions": {PAGES: await replica.backends["memory"].position()},
            "analytics": (await platform.analytics()).positions(),
            "listening": (await platform.listening()).store.positions(),
        }
        wanted = {
            "mentions": {PAGES: now.get(PAGES, 0)},
            "analytics": {t: now[t] for t in ANALYTICS_TOPICS if now.get(t)},
            "listening": {t: now[t] for t in ("posts", "deletes", MATCHES) if now.get(t)},
        }
        done = all(
            stored[model].get(topic, 0) == position
            for model, topics in wanted.items()
            for topic, position in topics.items()
        )
        settled = settled + 1 if done else 0
        if settled == 3:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the read models did not catch up: {stored} vs {now}")


async def reports(platform: Platform, search: str) -> dict[str, Any]:
    """What users read: analytics totals and top lists, @mention suggestions, the
    search's kept matches."""
    store = await platform.analytics()
    now = datetime.now(UTC)
    window = Window(now - timedelta(days=1), now + timedelta(hours=1))
    replica = await platform.mentions()
    listening = await platform.listening()
    kept = await listening.matches(TENANT, search, MatchFilter(limit=10_000))
    return {
        "totals": service.global_totals(store.query, window),
        "hashtags": service.top(store.query, "hashtags", window, 20, 0),
        "mentioned": service.top(store.query, "mentioned", window, 20, 0),
        "engaged": service.top(store.query, "engaged", window, 20, 0),
        "suggestions": {q: [s.id for s in (await replica.suggest(q, 10))[1]] for q in QUERIES},
        "matches": sorted(m.post for m in kept.matches),
    }


def ingesting(platform: Platform, fake: FakeJetstream) -> Any:
    async def follow(stop: asyncio.Event) -> None:
        ingestor = await platform.ingestor("jetstream")
        await run_jetstream(
            ingestor, platform.ingest_state, url=fake.url, batch_size=500,
            batch_max_wait_s=0.05, rewind_s=platform.settings.jetstream_rewind_s, stop=stop,
        )  # fmt: skip

    return running(follow)


async def test_a_backup_made_during_live_ingest_restores_and_resumes_without_double_counting(
    tmp_path: Path,
) -> None:
    data, backup = tmp_path / "data", tmp_path / "backup"
    lines = firehose(4000)
    async with jetstream_serving(lines) as fake:
        original, search = await start(data, search=True)
        try:
            async with ingesting(original, fake):
                await fake.sent_at_least(len(lines) // 4)
                fake.pace = 10  # the rest takes 3 s at least: the backup is made meanwhile
                await cli(data, "backup", "create", str(backup))
                sent_after_backup = fake.sent
                fake.pace = 200
                await ingested(original, lines)
                await caught_up(original)
            final_heads = await heads(original)
            final = await reports(original, search)
        finally:
            await original.close()

        manifest = json.loads((backup / "manifest.json").read_text())
        assert sent_after_backup < len(lines), "the backup was made after ingest ended"
        assert manifest["log"]["posts"] < final_heads["posts"]
        code, said = hubbub(data, "backup", "verify", str(backup))
        assert code == 0, said
        assert "sound" in said

        code, said = hubbub(data, "backup", "restore", str(backup))
        assert code == 1
        assert "is not empty" in said
        assert "--force" in said
        shutil.rmtree(data)
        await cli(data, "backup", "restore", str(backup))
        restored = positions(data)
        assert restored["log"] == manifest["log"]
        assert restored["read_models"] == manifest["read_models"]
        assert restored["ingest_cursors"] == manifest["ingest_cursors"]
        assert {"mentions", "analytics", "listening", "archive"} <= set(restored["read_models"])

        reference = tmp_path / "rebuilt"
        shutil.copytree(data, reference)
        for model in ("mentions", "analytics", "listening"):
            await cli(reference, "rebuild", model)
        rebuilt, _ = await start(reference)
        try:
            await caught_up(rebuilt)
            from_the_log = await reports(rebuilt, search)
        finally:
            await rebuilt.close()

        resumed, _ = await start(data)
        try:
            await caught_up(resumed)
            assert await reports(resumed, search) == from_the_log
            async with ingesting(resumed, fake):
                await ingested(resumed, lines)
                await caught_up(resumed)
            now = await heads(resumed)
            for topic in ("posts", "pages", "engagement", "deletes"):
                assert now.get(topic) == final_heads.get(topic), topic
            assert await reports(resumed, search) == final
        finally:
            await resumed.close()


@pytest.fixture(scope="module")
def small_backup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small backup of a platform that ingested a few hundred lines."""
    made = tmp_path_factory.mktemp("small")
    data, backup = made / "data", made / "backup"

    async def make() -> None:
        async with jetstream_serving(firehose(600, seed=3)) as fake:
            platform, _ = await start(data, search=True)
            try:
                async with ingesting(platform, fake):
                    await ingested(platform, fake.lines)
                    await caught_up(platform)
            finally:
                await platform.close()

    asyncio.run(make())
    code, said = hubbub(data, "backup", "create", str(backup))
    assert code == 0, said
    return backup


@pytest.fixture
def made_backup(small_backup: Path, tmp_path: Path) -> Path:
    """A copy of the small backup, for a test to damage."""
    return Path(shutil.copytree(small_backup, tmp_path / "backup"))


def test_a_damaged_backup_is_refused_naming_each_fault(made_backup: Path, tmp_path: Path) -> None:
    with (made_backup / "eventlog.db").open("r+b") as log:
        log.seek(4096 + 100)
        log.write(b"\xff" * 16)
    (made_backup / "stray.txt").write_text("not from the backup")
    (made_backup / "ingest.db").unlink()

    code, said = hubbub(tmp_path / "fresh", "backup", "verify", str(made_backup))
    assert code == 1
    assert "eventlog.db: checksum differs from the manifest's" in said
    assert "stray.txt: in the backup, not in the manifest" in said
    assert "ingest.db: listed in the manifest, missing from the backup" in said

    code, said = hubbub(tmp_path / "fresh", "backup", "restore", str(made_backup))
    assert code == 1
    assert "does not verify" in said
    assert not (tmp_path / "fresh").exists()


def test_a_backup_is_checked_database_by_database(made_backup: Path, tmp_path: Path) -> None:
    """A file damaged together with its manifest entry still fails its own check."""
    broken = made_backup / "relational.db"
    if not broken.exists():
        broken = made_backup / "listening.db"
    with broken.open("r+b") as database:
        database.seek(4096 * 2)
        database.write(b"\x00" * 4096)
    manifest = json.loads((made_backup / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == broken.name:
            entry["sha256"] = sha256_of(broken)
    (made_backup / "manifest.json").write_text(json.dumps(manifest))

    code, said = hubbub(tmp_path, "backup", "verify", str(made_backup))
    assert code == 1, said
    assert f"fault {broken.name}:" in said


def test_no_backup_where_there_is_no_log(tmp_path: Path) -> None:
    code, said = hubbub(tmp_path / "empty", "backup", "create", str(tmp_path / "backup"))
    assert code == 1
    assert "no event log to back up" in said


SCRIPTS = Path(__file__).parents[2] / "deploy" / "backup"


def script(name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A backup script run as an operator runs it, the venv's `hubbub` on its path."""
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return subprocess.run(
        [str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": path, **env}, check=False,
    )  # fmt: skip


def test_postgres_script_dumps_checks_and_restores_a_database(tmp_path: Path) -> None:
    for tool in ("pg_dump", "pg_restore", "psql"):
        if shutil.which(tool) is None:
            service_missing(f"no {tool} on the path (PostgreSQL's client programs)")
    dump = tmp_path / "listening.dump"
    with (
        postgres_database("hubbub_backup") as source,
        postgres_database("hubbub_restore") as target,
    ):
        kept = SqlListeningStore(sqlalchemy_url(source))
        kept.put_search(
            Search(tenant=TENANT, id="s1", name="festivals", query="festival", terms=1,
                   costly=False, created_by="tester", created_us=1, updated_us=1),
            max_searches=10,
        )  # fmt: skip
        kept.advance({"posts": 42, "deletes": 7})
        kept.close()

        made = script("postgres.sh", "backup", sqlalchemy_url(source), str(dump))
        assert made.returncode == 0, made.stderr
        assert "checksum matches" in made.stdout
        assert dump.stat().st_mode & 0o777 == 0o600
        restored = script("postgres.sh", "restore", str(dump), sqlalchemy_url(target))
        assert restored.returncode == 0, restored.stderr

        back = SqlListeningStore(sqlalchemy_url(target))
        try:
            assert back.positions() == {"posts": 42, "deletes": 7}
            assert [s.name for s in back.searches(TENANT)] == ["festivals"]
        finally:
            back.close()
        again = script("postgres.sh", "restore", str(dump), sqlalchemy_url(target))
        assert again.returncode == 1
        assert "restore into an empty one (or pass --force)" in again.stderr

    missing = "postgresql+psycopg://hubbub:hunter2@127.0.0.1:5432/hubbub_backup_no_such_db"
    failed = script("postgres.sh", "backup", missing, str(tmp_path / "missing.dump"))
    assert failed.returncode == 1
    assert 'connection to server at "127.0.0.1", port 5432' in failed.stderr
    assert "hunter2" not in failed.stderr + failed.stdout

    with dump.open("ab") as damaged:
        damaged.write(b"\0")
    checked = script("postgres.sh", "verify", str(dump))
    assert checked.returncode == 1
    assert "checksum differs" in checked.stderr


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[str]:
    """A JetStream server of the test's own, on a free port, stopped after."""
    server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(server).exists():
        service_missing(f"no nats-server at {server}")
    port = free_port()
    process = subprocess.Popen(
        [server, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "nats")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(500):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            time.sleep(0.01)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_jetstream_script_snapshots_and_restores_the_log(
    nats_server: str, tmp_path: Path
) -> None:
    servers = f"{nats_server},{nats_server}"  # a list of servers, as deployments set it
    env = {"HUBBUB_NATS_URL": servers, "HUBBUB_STREAM_PREFIX": "hubbub_backup",
           "HUBBUB_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    log = await JetStreamEventLog.connect(nats_server, stream_prefix="hubbub_backup")
    try:
        await log.append([post(n) for n in range(1, 1501)])
        before = [r.event.id for r in await log.read("posts", 1, 5000)]
    finally:
        await log.close()

    made = await asyncio.to_thread(script, "jetstream.sh", "backup", str(tmp_path / "b"), **env)
    assert made.returncode == 0, made.stderr
    assert "hubbub_backup_posts" in made.stderr
    saved = tmp_path / "b"
    assert saved.stat().st_mode & 0o777 == 0o700
    assert {path.stat().st_mode & 0o777 for path in saved.iterdir()} == {0o600}
    order = json.loads((saved / "streams.json").read_text())["order"]
    offsets = [name for name in order if name.startswith("KV_")]
    assert offsets, order
    assert order[: len(offsets)] == offsets, "offsets are saved before the log"
    refused = await asyncio.to_thread(
        CliRunner().invoke, app, ["backup", "jetstream", "restore", str(tmp_path / "b")], env=env
    )
    assert refused.exit_code == 1
    assert "these streams exist" in refused.output
    await delete_streams(nats_server, "hubbub_backup")
    restored = await asyncio.to_thread(
        script, "jetstream.sh", "restore", str(tmp_path / "b"), **env
    )
    assert restored.returncode == 0, restored.stderr

    log = await JetStreamEventLog.connect(nats_server, stream_prefix="hubbub_backup")
    try:
        assert [r.event.id for r in await log.read("posts", 1, 5000)] == before
        await log.append([post(1501)])
        (posts,) = [t for t in (await log.stats()).topics if t.topic == "posts"]
        assert posts.last_position == 1501
    finally:
        await log.close()


async def test_rollups_another_process_writes_are_copied_as_of_one_moment(
    tmp_path: Path,
) -> None:
    """`hubbub serve` runs analytics in a process of its own, which holds the DuckDB
    file: the backup copies it while that process folds a log being appended to, and
    the restored rollups, caught up, count each post of the restored log once."""
    data, backup, restored = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    log = SqliteEventLog(data / "eventlog.db")
    appended = 3000
    await log.append([post(n) for n in range(1, appended + 1)])
    owner = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "hubbub"), "--data-dir", str(data), "analytics", "run",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    async def keep_appending(stop: asyncio.Event) -> None:
        nonlocal appended
        while not stop.is_set():
            await log.append([post(n) for n in range(appended + 1, appended + 101)])
            appended += 100
            await asyncio.sleep(0.02)

    def folding() -> bool:
        """The owner committed folded batches (the post records' write-ahead log holds
        more than a thousand records)."""
        wal = data / "analytics.posts.db-wal"
        return wal.exists() and wal.stat().st_size > 100_000

    try:
        for _ in range(6000):
            if folding():
                break
            await asyncio.sleep(0.01)
        assert folding(), "the analytics process did not start folding within a minute"
        async with running(keep_appending):
            code, said = await asyncio.to_thread(hubbub, data, "backup", "create", str(backup))
            assert code == 0, said
    finally:
        owner.send_signal(signal.SIGINT)
        await asyncio.wait_for(owner.wait(), 60)
        await log.close()

    manifest = json.loads((backup / "manifest.json").read_text())
    assert {"analytics.duckdb", "analytics.posts.db"} <= {f["path"] for f in manifest["files"]}
    assert 0 < manifest["read_models"]["analytics"]["posts"] <= manifest["log"]["posts"]
    assert manifest["log"]["posts"] < appended
    await cli(restored, "backup", "restore", str(backup))
    await cli(restored, "analytics", "run", "--once")
    totals = json.loads(await cli(restored, "analytics", "totals", "--json"))
    assert totals["posts"] == manifest["log"]["posts"]


def test_a_backup_and_its_restore_are_readable_by_their_owner_only(
    small_backup: Path, tmp_path: Path
) -> None:
    assert small_backup.stat().st_mode & 0o777 == 0o700
    for name in ("secret.key", "internal.key", "eventlog.db", "manifest.json"):
        assert (small_backup / name).stat().st_mode & 0o777 == 0o600, name
    data = tmp_path / "data"
    code, said = hubbub(data, "backup", "restore", str(small_backup))
    assert code == 0, said
    for name in ("secret.key", "internal.key", "eventlog.db", "archive/positions.json"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name


def test_a_restore_puts_the_archive_where_the_settings_keep_it(
    small_backup: Path, tmp_path: Path
) -> None:
    data, archive = tmp_path / "data", tmp_path / "archive-elsewhere"
    env = {"HUBBUB_ARCHIVE_DIR": str(archive)}
    restored = CliRunner().invoke(
        app, ["--data-dir", str(data), "backup", "restore", str(small_backup)], env=env
    )
    assert restored.exit_code == 0, restored.output
    assert (archive / "positions.json").exists()
    assert not (data / "archive").exists()
    assert positions(data)["log"] == json.loads((small_backup / "manifest.json").read_text())["log"]

    again = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path / "other"), "backup", "restore", str(small_backup)],
        env=env,
    )  # fmt: skip
    assert again.exit_code == 1
    assert f"the archive directory {archive} is not empty" in " ".join(again.output.split())


async def test_a_forced_restore_is_refused_while_the_platform_runs(
    small_backup: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    await cli(data, "backup", "restore", str(small_backup))
    head = positions(data)["log"]["posts"]
    log = SqliteEventLog(data / "eventlog.db")
    try:
        await log.append([post(10**6)])
        code, said = await asyncio.to_thread(
            hubbub, data, "backup", "restore", "--force", str(small_backup)
        )
        assert code == 1
        assert "stop the platform first" in said
        assert positions(data)["log"]["posts"] == head + 1
    finally:
        await log.close()
    await cli(data, "backup", "restore", "--force", str(small_backup))
    assert positions(data)["log"]["posts"] == head


async def test_a_mentions_snapshot_that_does_not_load_fails_the_backup(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = SqliteEventLog(data / "eventlog.db")
    await log.append([post(1)])
    await log.close()
    (data / "mentions").mkdir()
    (data / "mentions" / "manifest.json").write_text("{not json")
    code, said = hubbub(data, "backup", "create", str(tmp_path / "backup"))
    assert code == 1
    assert "the copied mentions snapshot does not load" in " ".join(said.split())  # wrapped


def test_jetstream_errors_name_the_servers_without_their_password(tmp_path: Path) -> None:
    closed = f"nats://hubbub:hunter2@127.0.0.1:{free_port()}"
    failed = CliRunner().invoke(
        app, ["backup", "jetstream", "create", str(tmp_path / "b")],
        env={"HUBBUB_NATS_URL": f"{closed},{closed}", "HUBBUB_DATA_DIR": str(tmp_path / "d")},
    )  # fmt: skip
    assert failed.exit_code == 1
    assert "cannot reach NATS at nats://hubbub:***@127.0.0.1" in " ".join(failed.output.split())
    assert "hunter2" not in failed.output
