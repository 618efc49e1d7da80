"""`hubbub doctor` against the real servers of this machine (PostgreSQL, Redis, NATS),
servers of the test's own, and ports nothing listens on: what it says and how it exits."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from alembic import command
from alembic.config import Config
from click.testing import Result
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from hubbub.bootstrap import (
    build_platform,
    open_event_log,
    open_listening_store,
    open_notification_store,
    open_tenant_store,
)
from hubbub.cli import app
from hubbub.eventlog.jetstream import JetStreamEventLog, delete_streams
from hubbub.gateway.sql import MIGRATIONS as GATEWAY_MIGRATIONS
from hubbub.kernel.clock import SystemClock
from hubbub.publishing.sql import SqlJobStore
from hubbub.settings import Settings
from hubbub.web.app import create_app
from tests.conftest import (
    NATS_URL,
    post,
    postgres_database,
    require_service,
    service_missing,
    serving,
    unique_name,
)
from tests.support.net import free_port

ROLES = ("ingest", "mentions", "analytics", "web", "publishing", "listening", "notifications")


def nowhere() -> dict[str, str]:
    """Every role's URL on a port nothing listens on: a platform that is not running
    (whatever else runs on this machine's default ports)."""
    env = {f"HUBBUB_{role.upper()}_URL": f"http://127.0.0.1:{free_port()}" for role in ROLES}
    return {**env, "HUBBUB_HTTP_PORT": str(free_port())}


def doctor(data_dir: Path, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(
        app, ["--data-dir", str(data_dir), "doctor", *args], env={"COLUMNS": "300", **env}
    )


def checks(result: Result) -> dict[str, dict[str, str]]:
    """The findings of `doctor --json`, by check."""
    report = json.loads(result.stdout)
    assert report["ok"] == (result.exit_code == 0)
    return {found["check"]: found for found in report["checks"]}


def sqlalchemy_url(conninfo: str) -> str:
    """The database of a libpq connection string, as the relational settings take it."""
    params = conninfo_to_dict(conninfo)
    return sa.URL.create(
        "postgresql+psycopg", username=params.get("user"), password=params.get("password"),
        host=params.get("host", "127.0.0.1"), port=int(params.get("port", 5432)),
        database=params.get("dbname"),
    ).render_as_string(hide_password=False)  # fmt: skip


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_database("hubbub_doctor") as conninfo:
        yield conninfo


@pytest.mark.services
async def test_all_is_well_on_the_real_servers_with_migrated_stores(
    tmp_path: Path, postgres_url: str
) -> None:
    require_service("NATS", "127.0.0.1", 4222)
    require_service("Redis", "127.0.0.1", 6379)
    database = sqlalchemy_url(postgres_url)
    prefix = unique_name("doctor")
    settings = Settings(
        data_dir=tmp_path, relational_url=database, listening_db_url=database,
        notifications_db_url=database,
    )  # fmt: skip
    open_tenant_store(settings, SystemClock()).close()
    SqlJobStore(settings.relational).close()
    open_listening_store(settings).close()
    open_notification_store(settings).close()
    log = await JetStreamEventLog.connect(NATS_URL, stream_prefix=prefix)
    await log.append([post(1)])
    await log.close()
    env = {
        **nowhere(), "HUBBUB_EVENT_LOG": "jetstream", "HUBBUB_NATS_URL": NATS_URL,
        "HUBBUB_STREAM_PREFIX": prefix, "HUBBUB_RELATIONAL_URL": database,
        "HUBBUB_LISTENING_DB_URL": database, "HUBBUB_NOTIFICATIONS_DB_URL": database,
        "HUBBUB_CACHE": "redis", "HUBBUB_RATE_LIMITER": "redis",
        "HUBBUB_REDIS_URL": "redis://127.0.0.1:6379/0",
        "HUBBUB_ANALYTICS_STORE": "postgres", "HUBBUB_ANALYTICS_POSTGRES_URL": postgres_url,
    }  # fmt: skip
    try:
        result = await asyncio.to_thread(doctor, tmp_path, env, "--json")
        table = await asyncio.to_thread(doctor, tmp_path, env)
    finally:
        await delete_streams(NATS_URL, prefix)

    assert result.exit_code == 0, result.output
    found = checks(result)
    assert found["data dir"]["status"] == "ok"
    assert f"{tmp_path}: writable" in found["data dir"]["detail"]
    assert found["event log"]["status"] == "ok"
    assert f"JetStream on, 1 stream {prefix}_*" in found["event log"]["detail"]
    for service in ("gateway", "publishing", "listening", "notifications"):
        assert found[f"{service} store"]["status"] == "ok", found[f"{service} store"]
        assert f"{service} schema up to date" in found[f"{service} store"]["detail"]
    assert found["analytics database"]["status"] == "ok"
    assert "PostgreSQL" in found["analytics database"]["detail"]
    assert found["cache"]["status"] == "ok"
    assert "(cache and rate limits): Redis" in found["cache"]["detail"]
    assert found["roles"]["status"] == "warn"  # the platform is not running: not a failure
    assert "the platform is not running" in found["roles"]["detail"]
    assert found["roles"]["fix"] == "start it: `hubbub serve`"
    assert table.exit_code == 0, table.output
    assert "all well, 1 warning" in table.stdout


def test_a_database_port_nothing_listens_on_fails_naming_it_and_its_variable(
    tmp_path: Path,
) -> None:
    url = "postgresql+psycopg://hubbub:pg-S3cret@127.0.0.1:1/hubbub"
    started = time.monotonic()
    result = doctor(tmp_path, {**nowhere(), "HUBBUB_RELATIONAL_URL": url}, "--json")

    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 15
    found = checks(result)
    for store in ("gateway store", "publishing store"):  # both keep their tables there
        assert found[store]["status"] == "fail"
        assert "postgresql+psycopg://hubbub:***@127.0.0.1:1/hubbub" in found[store]["detail"]
        assert "port 1 failed: Connection refused" in found[store]["detail"]
        assert "HUBBUB_RELATIONAL_URL" in found[store]["fix"]
    assert found["listening store"]["status"] == "ok"  # its own SQLite, not made yet
    assert "pg-S3cret" not in result.output
    table = doctor(tmp_path, {**nowhere(), "HUBBUB_RELATIONAL_URL": url})
    assert table.exit_code == 1
    assert "2 failed" in table.stdout
    assert "pg-S3cret" not in table.output


def test_a_server_that_never_answers_is_a_finding_within_the_timeout(tmp_path: Path) -> None:
    """A NATS URL on an address that drops packets (TEST-NET-1, RFC 5737): the check
    gives up after its timeout; doctor neither hangs nor crashes."""
    env = {**nowhere(), "HUBBUB_EVENT_LOG": "jetstream", "HUBBUB_NATS_URL": "nats://192.0.2.1:4222"}
    started = time.monotonic()
    result = doctor(tmp_path, env, "--json", "--timeout", "1")

    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 15
    event_log = checks(result)["event log"]
    assert event_log["status"] == "fail"
    # "no answer within 1 s" where packets are dropped; at once, where there is no route.
    assert event_log["detail"].startswith("NATS at nats://192.0.2.1:4222: ")
    assert "start nats-server with JetStream (-js)" in event_log["fix"]


def wait_for_port(port: int) -> None:
    """Wait until a server of the test's listens on `port` (ten seconds at most)."""
    for _ in range(1000):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise AssertionError(f"nothing listens on {port} after 10 s")


@pytest.fixture
def nats_without_jetstream() -> Iterator[str]:
    """A NATS server of the test's own, JetStream off."""
    server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(server).exists():
        service_missing("nats-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [server, "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.services
def test_nats_without_jetstream_fails_saying_to_turn_it_on(
    tmp_path: Path, nats_without_jetstream: str
) -> None:
    env = {**nowhere(), "HUBBUB_EVENT_LOG": "jetstream", "HUBBUB_NATS_URL": nats_without_jetstream}
    result = doctor(tmp_path, env, "--json")

    assert result.exit_code == 1, result.output
    event_log = checks(result)["event log"]
    assert event_log["status"] == "fail"
    assert (
        f"NATS at {nats_without_jetstream} answers, but JetStream does not" in (event_log["detail"])
    )
    assert "start nats-server with JetStream (-js)" in event_log["fix"]


def test_a_redis_port_nothing_listens_on_fails(tmp_path: Path) -> None:
    env = {
        **nowhere(), "HUBBUB_CACHE": "redis",
        "HUBBUB_REDIS_URL": f"redis://:r3dis-Pw@127.0.0.1:{free_port()}/0",
    }  # fmt: skip
    result = doctor(tmp_path, env, "--json")

    assert result.exit_code == 1
    cache = checks(result)["cache"]
    assert cache["status"] == "fail"
    assert "Redis at redis://:***@127.0.0.1:" in cache["detail"]
    assert "(cache)" in cache["detail"]
    assert "r3dis-Pw" not in result.output


async def test_a_role_down_while_others_answer_is_a_failure(tmp_path: Path) -> None:
    env = {**nowhere(), "HUBBUB_LEGACY_URL": f"http://127.0.0.1:{free_port()}"}
    platform = await build_platform(Settings(data_dir=tmp_path))
    try:
        async with serving(create_app(platform, "ingest")) as ingest_url:
            env["HUBBUB_INGEST_URL"] = ingest_url
            result = await asyncio.to_thread(doctor, tmp_path, env, "--json")
    finally:
        await platform.close()

    assert result.exit_code == 1, result.output
    found = checks(result)
    assert found["role ingest"] == {
        "check": "role ingest", "status": "ok", "detail": f"{ingest_url}: answers", "fix": "",
    }  # fmt: skip
    mentions = found["role mentions"]
    assert mentions["status"] == "fail"
    assert f"nothing answers at {env['HUBBUB_MENTIONS_URL']}" in mentions["detail"]
    assert mentions["fix"] == (
        "start it (`hubbub serve --role mentions`), or fix HUBBUB_MENTIONS_URL"
    )
    assert "HUBBUB_HTTP_HOST / HUBBUB_HTTP_PORT" in found["role gateway"]["fix"]
    assert found["role legacy"]["status"] == "fail"
    assert found["role legacy"]["fix"] == ("start the legacy application, or fix HUBBUB_LEGACY_URL")


async def test_each_replica_a_role_names_is_asked(tmp_path: Path) -> None:
    platform = await build_platform(Settings(data_dir=tmp_path))
    try:
        async with serving(create_app(platform, "mentions")) as replica:
            gone = f"http://127.0.0.1:{free_port()}"
            env = {**nowhere(), "HUBBUB_MENTIONS_URL": f"{replica}, {gone}"}
            result = await asyncio.to_thread(doctor, tmp_path, env, "--json")
    finally:
        await platform.close()

    assert result.exit_code == 1, result.output
    found = checks(result)
    assert found["role mentions (1 of 2)"]["status"] == "ok"
    assert found["role mentions (2 of 2)"]["status"] == "fail"
    assert f"nothing answers at {gone}" in found["role mentions (2 of 2)"]["detail"]


def test_a_legacy_app_not_answering_is_a_warning_while_the_platform_is_down(
    tmp_path: Path,
) -> None:
    legacy = f"http://old:l3gacy-Pw@127.0.0.1:{free_port()}"
    result = doctor(tmp_path, {**nowhere(), "HUBBUB_LEGACY_URL": legacy}, "--json")

    assert result.exit_code == 0, result.output
    found = checks(result)
    assert found["roles"]["status"] == "warn"
    assert "legacy" not in found["roles"]["detail"]  # not one of the platform's roles
    assert found["role legacy"]["status"] == "warn"
    assert "nothing answers at http://old:***@127.0.0.1:" in found["role legacy"]["detail"]
    assert "l3gacy-Pw" not in result.output


def migrated_to(path: Path, revision: str) -> None:
    """The gateway's SQLite store at `revision`, as an older Hubbub left it."""
    config = Config()
    config.set_main_option("script_location", str(GATEWAY_MIGRATIONS))
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def test_a_store_a_migration_behind_is_a_warning_naming_both_revisions(tmp_path: Path) -> None:
    migrated_to(tmp_path / "relational.db", "0002")
    result = doctor(tmp_path, nowhere(), "--json")

    assert result.exit_code == 0, result.output
    gateway = checks(result)["gateway store"]
    assert gateway["status"] == "warn"
    assert "gateway schema at 0002, newest is 0004" in gateway["detail"]
    assert "the gateway role migrates it when it starts" in gateway["fix"]
    assert checks(result)["publishing store"]["status"] == "warn"  # same file, no tables yet


def test_a_store_migrated_by_a_newer_hubbub_fails(tmp_path: Path) -> None:
    migrated_to(tmp_path / "relational.db", "head")
    with sqlite3.connect(tmp_path / "relational.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
    result = doctor(tmp_path, nowhere(), "--json")

    assert result.exit_code == 1, result.output
    gateway = checks(result)["gateway store"]
    assert gateway["status"] == "fail"
    assert "at revision 0099, unknown to this Hubbub" in gateway["detail"]
    assert "a newer Hubbub migrated it" in gateway["fix"]


def test_little_free_space_and_a_bad_secret_key(tmp_path: Path) -> None:
    env = {**nowhere(), "HUBBUB_SECRET_KEY": "not-a-fernet-key"}
    result = doctor(tmp_path, env, "--json", "--min-free-gib", "1000000")

    assert result.exit_code == 1
    found = checks(result)
    assert found["data dir"]["status"] == "warn"
    assert "writable, only" in found["data dir"]["detail"]
    assert "free (under 976.6 TiB)" in found["data dir"]["detail"]
    assert found["secret key"]["status"] == "fail"
    assert "Fernet.generate_key()" in found["secret key"]["fix"]
    assert "not-a-fernet-key" not in result.output


def test_invalid_settings_are_the_one_failure(tmp_path: Path) -> None:
    result = doctor(tmp_path, {"HUBBUB_CACHE": "memcached"}, "--json")

    assert result.exit_code == 1
    found = checks(result)
    assert list(found) == ["settings"]
    assert "HUBBUB_CACHE='memcached'" in found["settings"]["detail"]


def authenticator(*args: Any) -> AuthResult:
    """The relay's one password; any other is refused (not handled: aiosmtpd says 535)."""
    data = args[-1]
    known = isinstance(data, LoginPassword) and data.password == b"relay-Pa55"
    return AuthResult(success=known, handled=False)


@pytest.fixture
def relay_port() -> Iterator[int]:
    """An SMTP server of the test's own (aiosmtpd) that asks for a password."""
    port = free_port()
    controller = Controller(
        object(), hostname="127.0.0.1", port=port, authenticator=authenticator,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.mark.parametrize(
    ("password", "status", "said"),
    [
        ("relay-Pa55", "ok", "answers, signed in as hubbub"),
        ("wr0ng-Pa55", "fail", "the credentials were refused (535"),
    ],
)
def test_the_smtp_server_is_asked_to_sign_in(
    tmp_path: Path, relay_port: int, password: str, status: str, said: str
) -> None:
    env = {
        **nowhere(), "HUBBUB_SMTP_HOST": "127.0.0.1", "HUBBUB_SMTP_PORT": str(relay_port),
        "HUBBUB_SMTP_SECURITY": "none", "HUBBUB_SMTP_USERNAME": "hubbub",
        "HUBBUB_SMTP_PASSWORD": password,
    }  # fmt: skip
    result = doctor(tmp_path, env, "--json")

    smtp = checks(result)["smtp"]
    assert smtp["status"] == status, smtp
    assert f"SMTP at 127.0.0.1:{relay_port} (none): {said}" in smtp["detail"]
    assert password not in result.output


async def test_the_sqlite_log_is_read_and_a_damaged_one_fails(tmp_path: Path) -> None:
    event_log = await open_event_log(Settings(data_dir=tmp_path))
    await event_log.append([post(n) for n in range(3)])
    await event_log.close()
    readable = await asyncio.to_thread(doctor, tmp_path, nowhere(), "--json")
    (tmp_path / "eventlog.db").write_bytes(b"not a database, whatever it was" * 100)
    damaged = await asyncio.to_thread(doctor, tmp_path, nowhere(), "--json")

    assert readable.exit_code == 0, readable.output
    assert checks(readable)["event log"] == {
        "check": "event log", "status": "ok",
        "detail": f"SQLite {tmp_path / 'eventlog.db'}: 1 topic, 3 events", "fix": "",
    }  # fmt: skip
    assert damaged.exit_code == 1
    found = checks(damaged)["event log"]
    assert found["status"] == "fail"
    assert "cannot be read: file is not a database" in found["detail"]
    assert "restore it from a backup" in found["fix"]


def test_a_data_dir_that_is_a_file_fails(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file")
    result = doctor(tmp_path / "data", nowhere(), "--json")

    assert result.exit_code == 1
    assert checks(result)["data dir"] == {
        "check": "data dir", "status": "fail", "detail": f"{tmp_path / 'data'} is not a directory",
        "fix": "set HUBBUB_DATA_DIR (or --data-dir) to a directory",
    }  # fmt: skip
