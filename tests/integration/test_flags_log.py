"""Flags on a real log: replicas that follow it, and the HTTP routes over it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request

from hubbub.eventlog.ports import LogUnavailable
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.gateway.flags import FlagBook, remove_flag, set_flag
from hubbub.gateway.flags_api import build_router
from hubbub.gateway.ports import Caller, Role
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import WatchChanged
from tests.conftest import until


@pytest.fixture
async def event_log(tmp_path: Path) -> AsyncIterator[SqliteEventLog]:
    opened = SqliteEventLog(tmp_path / "log.db")
    yield opened
    await opened.close()


@contextlib.asynccontextmanager
async def following(book: FlagBook, interval_s: float = 0.05) -> AsyncIterator[FlagBook]:
    task = asyncio.create_task(book.follow(interval_s))
    try:
        yield book
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


CLOCK = FixedClock()  # every change's stamp: the flags' ids keep them apart


async def put(event_log: SqliteEventLog, scope: str, name: str, **fields: Any) -> None:
    rule: dict[str, Any] = {"enabled": True, "percent": 0.0, "allow": [], "deny": []}
    await set_flag(event_log, scope, name, description="", clock=CLOCK, **(rule | fields))


async def within_a_second(check: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return check()

    async with asyncio.timeout(1.0):
        await until(holds)


async def test_a_change_reaches_another_replica_without_a_restart(
    event_log: SqliteEventLog, tmp_path: Path
) -> None:
    writer = FlagBook(event_log)
    other_log = SqliteEventLog(tmp_path / "log.db")  # the second process's own connection
    try:
        async with following(FlagBook(other_log)) as replica:
            await put(event_log, "platform", "new-composer", percent=100)
            await within_a_second(lambda: replica.evaluate("new-composer", "acme") is not None)
            assert replica.evaluate("new-composer", "acme") == (True, "SPLIT")

            await put(event_log, "platform", "new-composer", enabled=False, percent=100)
            await within_a_second(
                lambda: replica.evaluate("new-composer", "acme") == (False, "DISABLED")
            )
            await remove_flag(event_log, "platform", "new-composer", clock=CLOCK)
            await within_a_second(lambda: replica.evaluate("new-composer", "acme") is None)
    finally:
        await other_log.close()
    await writer.catch_up()
    assert writer.flags("platform") == []


async def test_a_replica_keeps_its_flags_while_the_log_is_unreadable_then_catches_up(
    event_log: SqliteEventLog, tmp_path: Path
) -> None:
    await put(event_log, "platform", "beta", percent=100)
    replica = FlagBook(event_log)
    await replica.catch_up()
    outage = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    try:
        outage.execute("ALTER TABLE segments RENAME TO segments_away")  # reads now fail
        async with following(replica) as followed:
            with pytest.raises(LogUnavailable):
                await followed.catch_up()
            await asyncio.sleep(0.2)  # a few failed polls
            assert followed.evaluate("beta", "acme") == (True, "SPLIT")  # still answers

            outage.execute("ALTER TABLE segments_away RENAME TO segments")
            await put(event_log, "platform", "beta", enabled=False, percent=100)
            await within_a_second(lambda: followed.evaluate("beta", "acme") == (False, "DISABLED"))
    finally:
        outage.close()


async def test_setting_the_same_flag_the_same_way_twice_is_two_changes(
    event_log: SqliteEventLog,
) -> None:
    book = FlagBook(event_log)
    await put(event_log, "platform", "beta", percent=10)
    await put(event_log, "platform", "beta", percent=10)
    assert await book.catch_up() == 2


async def test_a_tenant_flag_beats_the_platform_flag_of_that_name(
    event_log: SqliteEventLog,
) -> None:
    book = FlagBook(event_log)
    await put(event_log, "platform", "dark-mode", percent=100)
    await put(event_log, "acme", "dark-mode", percent=0, allow=["user-1"])
    await event_log.append([WatchChanged(
        id="w1", key="acme", ts=1, source="test", tenant="acme", watch="w1",
        kind="hashtag", target="quake",
    )])  # fmt: skip
    await book.catch_up()

    assert book.evaluate("dark-mode", "globex") == (True, "SPLIT")
    assert book.evaluate("dark-mode", "acme") == (False, "SPLIT")
    assert book.evaluate("dark-mode", "acme", "user-1") == (True, "TARGETING_MATCH")
    assert [f.name for f in book.flags("acme")] == ["dark-mode"]

    await remove_flag(event_log, "acme", "dark-mode", clock=CLOCK)
    await book.catch_up()
    assert book.evaluate("dark-mode", "acme") == (True, "SPLIT")  # the platform's again
    assert book.lookup("acme", "dark-mode") is None


async def test_a_platform_flag_is_bucketed_by_tenant_not_by_subject(
    event_log: SqliteEventLog,
) -> None:
    book = FlagBook(event_log)
    await put(event_log, "platform", "half", percent=50)
    await book.catch_up()
    answers = {book.evaluate("half", "acme", f"user-{n}") for n in range(100)}
    assert len(answers) == 1  # a tenant is in a platform rollout whole, or not at all


@pytest.mark.parametrize(
    ("name", "percent", "message"),
    [("Bad Name", 10, "invalid flag name"), ("ok", 101, "invalid percent"),
     ("ok", float("nan"), "invalid percent"), ("-dash", 1, "invalid flag name")],
)  # fmt: skip
async def test_bad_input_is_refused_before_anything_is_written(
    event_log: SqliteEventLog, name: str, percent: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await put(event_log, "platform", name, percent=percent)
    assert await FlagBook(event_log).catch_up() == 0


# The HTTP routes, in an app of the test's own. `X-Test-Caller: tenant/role` stands in for
# the gateway's authentication, which is not what these tests are about.


def caller_from_header(request: Request) -> Caller:
    tenant, _, role = request.headers.get("x-test-caller", "").partition("/")
    if not tenant or role not in get_args(Role):
        raise HTTPException(401, "no caller")
    return Caller(tenant=tenant, key=f"key-of-{tenant}", role=role)  # type: ignore[arg-type]


Client = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def client(event_log: SqliteEventLog) -> AsyncIterator[Client]:
    app = FastAPI()
    app.include_router(
        build_router(FlagBook(event_log), event_log, caller_from_header, FixedClock())
    )
    transport = httpx.ASGITransport(app=app)
    clients: list[httpx.AsyncClient] = []

    def as_caller(who: str) -> httpx.AsyncClient:
        made = httpx.AsyncClient(
            transport=transport, base_url="http://hubbub", headers={"x-test-caller": who}
        )
        clients.append(made)
        return made

    yield as_caller
    for made in clients:
        await made.aclose()


async def ok(answer: Awaitable[httpx.Response], status: int = 200) -> Any:
    response = await answer
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def test_a_tenant_admin_sets_reads_evaluates_and_removes_its_flag(client: Client) -> None:
    admin = client("acme/admin")
    body = {"percent": 0, "allow": ["user-1"], "description": "dark mode"}
    written = await ok(admin.put("/v1/flags/dark-mode", json=body))
    assert written == {
        "name": "dark-mode", "scope": "acme", "enabled": True, "percent": 0.0,
        "allow": ["user-1"], "deny": [], "description": "dark mode",
    }  # fmt: skip
    assert await ok(admin.get("/v1/flags/dark-mode")) == written  # reads its own write
    assert await ok(admin.get("/v1/flags")) == [written]

    evaluation = "/v1/flags/dark-mode/evaluation"
    assert await ok(admin.get(evaluation, params={"subject": "user-1"})) == {
        "flag": "dark-mode", "value": True, "reason": "TARGETING_MATCH", "scope": "acme",
    }  # fmt: skip
    assert (await ok(admin.get(evaluation, params={"subject": "user-2"})))["value"] is False

    await ok(admin.delete("/v1/flags/dark-mode"), 204)
    assert (await admin.get("/v1/flags/dark-mode")).status_code == 404
    assert (await admin.delete("/v1/flags/dark-mode")).status_code == 404


async def test_a_viewer_reads_flags_but_cannot_change_them(client: Client) -> None:
    await ok(client("acme/owner").put("/v1/flags/beta", json={"percent": 5}))
    viewer = client("acme/viewer")
    assert [f["name"] for f in await ok(viewer.get("/v1/flags"))] == ["beta"]
    refused = await viewer.put("/v1/flags/beta", json={"percent": 100})
    assert refused.status_code == 403
    assert "admin" in refused.json()["detail"]
    assert (await client("acme/editor").delete("/v1/flags/beta")).status_code == 403
    assert (await ok(viewer.get("/v1/flags/beta")))["percent"] == 5.0


async def test_one_tenant_never_sees_another_tenants_flags(client: Client) -> None:
    await ok(client("acme/admin").put("/v1/flags/secret-project", json={"percent": 100}))
    globex = client("globex/admin")
    assert (await globex.get("/v1/flags/secret-project")).status_code == 404
    assert (await globex.get("/v1/flags/secret-project/evaluation")).status_code == 404
    assert (await globex.delete("/v1/flags/secret-project")).status_code == 404
    assert await ok(globex.get("/v1/flags")) == []


async def test_platform_flags_are_the_operators_and_reach_every_tenant(client: Client) -> None:
    tenant_admin = client("acme/owner")
    assert (await tenant_admin.get("/v1/platform/flags")).status_code == 403
    assert (await tenant_admin.put("/v1/platform/flags/x", json={})).status_code == 403

    operator = client("platform/admin")
    written = await ok(operator.put("/v1/platform/flags/new-composer", json={"percent": 100}))
    assert written["scope"] == "platform"
    assert [f["name"] for f in await ok(operator.get("/v1/platform/flags"))] == ["new-composer"]
    assert (await client("platform/viewer").delete("/v1/platform/flags/x")).status_code == 403

    assert (await tenant_admin.get("/v1/flags/new-composer")).status_code == 404  # not its own
    assert await ok(tenant_admin.get("/v1/flags/new-composer/evaluation")) == {
        "flag": "new-composer", "value": True, "reason": "SPLIT", "scope": "platform",
    }  # fmt: skip
    await ok(operator.delete("/v1/platform/flags/new-composer"), 204)
    assert (await tenant_admin.get("/v1/flags/new-composer/evaluation")).status_code == 404


async def test_bad_input_is_answered_422_with_what_is_wrong(client: Client) -> None:
    admin = client("acme/admin")
    too_much = await admin.put("/v1/flags/beta", json={"percent": 150})
    assert too_much.status_code == 422
    assert "100" in too_much.text
    bad_name = await admin.put("/v1/flags/Not_Valid!", json={})
    assert bad_name.status_code == 422
    assert "invalid flag name 'Not_Valid!'" in bad_name.text
    assert (await client("nobody").get("/v1/flags")).status_code == 401
