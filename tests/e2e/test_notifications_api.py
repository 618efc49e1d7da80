"""`/v1/notifications` through the gateway, as the web app and people's clients call it:
a person's own notifications, marking them read, their live arrival over SSE (streamed
through the gateway), and nothing of another person's or another tenant's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hubbub.kernel.events import NoticeIssued, PersonChanged
from tests.conftest import until
from tests.support.stack import Stack, auth, start_stack

PASSWORD = "correct horse battery"
T0 = 1_800_000_000_000_000


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    fast = {"notifications_stream_s": 3.0, "notifications_heartbeat_s": 0.3,
            "notifications_poll_s": 0.1}  # fmt: skip
    built, resources = await start_stack(tmp_path, fast)
    async with resources:
        yield built


async def join(stack: Stack, owner: dict[str, str], email: str, role: str) -> dict[str, Any]:
    """`email` joins the owner's tenant with `role`; answers its session token and user,
    and tells the log who they are (as the gateway's directory does)."""
    made = await stack.client.post(
        "/v1/invites", json={"email": email, "role": role}, headers=auth(owner["token"])
    )
    assert made.status_code == 201, made.text
    joined = await stack.client.post(
        f"/v1/invitations/{made.json()['token']}/accept", json={"password": PASSWORD}
    )
    assert joined.status_code == 201, joined.text
    session: dict[str, Any] = joined.json()
    user = session["user"]
    await stack.platform.event_log.append([
        PersonChanged(
            id=f"test-person-{user['id']}", key=f"{user['tenant']}/{user['id']}", ts=T0,
            source="test", tenant=user["tenant"], user=user["id"], email=email, role=role,
        )
    ])  # fmt: skip
    return session


async def notice(stack: Stack, tenant: str, number: int, **fields: Any) -> None:
    await stack.platform.event_log.append([
        NoticeIssued(
            id=f"test-notice-{tenant}-{number}", key=tenant, ts=T0 + number, source="test",
            tenant=tenant, notice=f"n{number}", kind=fields.pop("kind", "commented"),
            title=fields.pop("title", f"Notice {number}"), **fields,
        )
    ])  # fmt: skip


async def listed(stack: Stack, token: str, **params: Any) -> dict[str, Any]:
    answer = await stack.client.get("/v1/notifications", params=params, headers=auth(token))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def test_a_person_reads_and_marks_their_own_notifications(stack: Stack) -> None:
    acme, globex = await stack.tenant("acme"), await stack.tenant("globex")
    ann = await join(stack, acme, "ann@acme.example", "viewer")
    bob = await join(stack, acme, "bob@acme.example", "editor")
    eve = await join(stack, globex, "eve@globex.example", "editor")
    for n in (1, 2, 3):
        await notice(stack, acme["id"], n, users=[ann["user"]["id"]], link=f"/p/{n}",
                     body="<b>bold?</b>", post=f"p{n}", actor=bob["user"]["id"])  # fmt: skip
    await notice(stack, acme["id"], 4, handles=["bob"])
    await notice(stack, globex["id"], 5, roles=["editor"])

    async def delivered() -> bool:
        return (await listed(stack, ann["token"]))["unread"] == 3

    await until(delivered)
    mine = await listed(stack, ann["token"], limit=2)
    assert [n["title"] for n in mine["notifications"]] == ["Notice 3", "Notice 2"]
    first = mine["notifications"][0]
    assert set(first) == {"id", "kind", "title", "body", "link", "post", "actor", "notice",
                          "created_at", "read", "read_at"}  # fmt: skip
    assert (first["kind"], first["body"], first["link"], first["post"], first["read"]) == (
        "commented", "<b>bold?</b>", "/p/3", "p3", False,
    )  # fmt: skip
    assert first["actor"] == bob["user"]["id"]
    assert first["read_at"] is None
    older = await listed(stack, ann["token"], before=mine["next"])
    assert [n["title"] for n in older["notifications"]] == ["Notice 1"]
    assert older["next"] is None

    theirs = (await listed(stack, bob["token"]))["notifications"]
    assert [n["title"] for n in theirs] == ["Notice 4"]
    assert [n["title"] for n in (await listed(stack, eve["token"]))["notifications"]] == [
        "Notice 5"
    ]

    others = [theirs[0]["id"]]
    marked = await stack.client.post(
        "/v1/notifications/read", json={"ids": [first["id"], *others]}, headers=auth(ann["token"])
    )  # a viewer marks theirs read; another's id changes nothing
    assert marked.json() == {"marked": 1, "unread": 2}
    unread = await listed(stack, ann["token"], unread="true")
    assert [n["title"] for n in unread["notifications"]] == ["Notice 2", "Notice 1"]
    assert (await listed(stack, bob["token"]))["unread"] == 1
    everything = await stack.client.post(
        "/v1/notifications/read", json={"all": True}, headers=auth(ann["token"])
    )
    assert everything.json() == {"marked": 2, "unread": 0}
    read = (await listed(stack, ann["token"]))["notifications"][0]
    assert read["read"] is True
    assert read["read_at"] is not None


async def test_an_api_key_has_no_notifications_and_bad_requests_say_why(stack: Stack) -> None:
    acme = await stack.tenant("acme")
    refused = await stack.client.get("/v1/notifications", headers=auth(acme["token"]))
    assert refused.status_code == 403
    assert "notifications are for people" in refused.json()["detail"]
    ann = await join(stack, acme, "ann@acme.example", "viewer")
    for body in ({}, {"ids": ["1"], "all": True}, {"ids": ["one"]}):
        wrong = await stack.client.post(
            "/v1/notifications/read", json=body, headers=auth(ann["token"])
        )
        assert wrong.status_code == 422, body
    anonymous = await stack.client.get("/v1/notifications")
    assert anonymous.status_code == 401


async def events_of(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
    """The next `count` events of an SSE stream (comments counted as `comment`)."""
    found: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    async for line in lines:
        if line.startswith(":"):
            found.append({"event": "comment"})
        elif line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(": ")
            event[name] = json.loads(value) if name == "data" else value
        elif line == "" and event:
            found.append(event)
            event = {}
        if len(found) >= count:
            return found
    return found


async def test_notifications_arrive_live_through_the_gateway_and_resume(stack: Stack) -> None:
    acme, globex = await stack.tenant("acme"), await stack.tenant("globex")
    ann = await join(stack, acme, "ann@acme.example", "viewer")
    bob = await join(stack, acme, "bob@acme.example", "viewer")
    await join(stack, globex, "ann@globex.example", "viewer")
    await notice(stack, acme["id"], 1, users=[ann["user"]["id"]], title="Before")

    async def delivered() -> bool:
        return (await listed(stack, ann["token"]))["unread"] == 1

    await until(delivered)
    async with (
        httpx.AsyncClient(base_url=stack.url, timeout=10) as client,
        client.stream("GET", "/v1/notifications/stream", headers=auth(ann["token"])) as live,
    ):
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/event-stream")
        lines = live.aiter_lines()
        (opening,) = await events_of(lines, 1)
        assert (opening["event"], opening["data"]) == ("unread", {"unread": 1})
        await notice(stack, globex["id"], 2, roles=["viewer"], title="Another tenant's")
        await notice(stack, acme["id"], 3, users=[bob["user"]["id"]], title="Bob's")
        await notice(stack, acme["id"], 4, users=[ann["user"]["id"]], title="<script>x</script>")
        arrived = [e for e in await events_of(lines, 3) if e["event"] != "comment"]
        assert [e["event"] for e in arrived[:2]] == ["notification", "unread"]
        assert arrived[0]["data"]["title"] == "<script>x</script>"
        assert arrived[0]["id"] == arrived[0]["data"]["id"]
        assert arrived[1]["data"] == {"unread": 2}
        assert arrived[1]["id"] == arrived[0]["id"]  # where a reconnection resumes
        last_seen = arrived[0]["id"]
        quiet = await events_of(lines, 1)
        assert quiet == [{"event": "comment"}]  # a heartbeat while nothing happens

    await notice(stack, acme["id"], 5, users=[ann["user"]["id"]], title="While away")
    await asyncio.sleep(0.3)
    async with (
        httpx.AsyncClient(base_url=stack.url, timeout=10) as client,
        client.stream(
            "GET", "/v1/notifications/stream",
            headers={**auth(ann["token"]), "Last-Event-ID": last_seen},
        ) as resumed,
    ):  # fmt: skip
        events = [e for e in await events_of(resumed.aiter_lines(), 3) if e["event"] != "comment"]
        assert (events[0]["event"], events[0]["data"]) == ("unread", {"unread": 3})
        assert events[1]["data"]["title"] == "While away"


async def test_a_stream_ends_after_a_while_so_the_client_reconnects(stack: Stack) -> None:
    acme = await stack.tenant("acme")
    ann = await join(stack, acme, "ann@acme.example", "viewer")
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        started = asyncio.get_running_loop().time()
        answer = await client.get("/v1/notifications/stream", headers=auth(ann["token"]))
        took = asyncio.get_running_loop().time() - started
    assert answer.status_code == 200
    assert answer.text.startswith("retry: 2000\n\nid: 0\nevent: unread\n")
    assert 2.5 < took < 6


async def test_the_web_app_passes_the_stream_on_and_says_204_when_there_is_none(
    stack: Stack,
) -> None:
    acme = await stack.tenant("acme")
    ann = await join(stack, acme, "ann@acme.example", "viewer")
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        assert (await client.get("/notifications/stream")).status_code == 401
        client.cookies.set("hubbub_session", ann["token"])
        async with client.stream("GET", "/notifications/stream") as live:
            assert live.status_code == 200
            assert live.headers["content-type"].startswith("text/event-stream")
            await notice(stack, acme["id"], 1, users=[ann["user"]["id"]], title="Hello")
            events = [e for e in await events_of(live.aiter_lines(), 4) if e["event"] != "comment"]
            assert [e["event"] for e in events[:2]] == ["unread", "notification"]
            assert events[1]["data"]["title"] == "Hello"
        await stack.servers["notifications"].__aexit__(None, None, None)  # the role stops
        assert (await client.get("/notifications/stream")).status_code == 204


async def test_people_the_gateway_tells_the_log_of_are_notified(stack: Stack) -> None:
    """No test-made `PersonChanged` here: the gateway's own directory names the people."""
    acme = await stack.tenant("acme")
    made = await stack.client.post(
        "/v1/invites", json={"email": "Ann@acme.example", "role": "viewer"},
        headers=auth(acme["token"]),
    )  # fmt: skip
    joined = await stack.client.post(
        f"/v1/invitations/{made.json()['token']}/accept", json={"password": PASSWORD}
    )
    token = joined.json()["token"]
    await notice(stack, acme["id"], 1, handles=["ann"], title="@ann, have a look")

    async def delivered() -> bool:
        return (await listed(stack, token))["unread"] == 1

    await until(delivered)


def test_the_role_is_ready_and_stops_at_once_with_a_stream_open(tmp_path: Path) -> None:
    """`hubbub serve --role notifications`: ready once its store answers; a stream lasts
    minutes, and stopping the role does not wait for it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from hubbub.bootstrap import open_request_signer
    from hubbub.kernel.signing import SignedAs
    from hubbub.settings import Settings
    from tests.support.net import free_port

    port = free_port()
    env = {**os.environ, "HUBBUB_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "hubbub", "--data-dir", str(tmp_path), "serve",
               "--role", "notifications", "--port", str(port)]  # fmt: skip
    role = subprocess.Popen(command, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
        signer = open_request_signer(Settings(data_dir=tmp_path))
        with (
            httpx.Client(base_url=url, auth=SignedAs(signer, "acme", "user:u-ann")) as client,
            client.stream("GET", "/v1/notifications/stream") as live,
        ):
            assert live.status_code == 200
            assert next(live.iter_lines()).startswith("retry:")
            started = time.monotonic()
            role.send_signal(signal.SIGTERM)
            assert role.wait(15) == 0
        assert time.monotonic() - started < 5
    finally:
        if role.poll() is None:
            role.kill()
