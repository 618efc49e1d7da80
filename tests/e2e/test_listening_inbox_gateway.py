"""The inbox through the gateway, on the listening role: a Mastodon channel connected with
`POST /v1/channels` is told to the log with its account's URL, a status that mentions it
reaches the tenant's inbox (and no other tenant's), and the reply goes out through
publishing to the instance, in reply to that status."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse
from mastodon import Mastodon

from hubbub.kernel.events import PostPublished
from hubbub.sandbox.mastodon import mastodon_server
from tests.conftest import until
from tests.support.stack import Stack, auth, start_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    fast = {"listening_interval_s": 0.02, "listening_stream_s": 3.0,
            "publish_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}  # fmt: skip
    built, resources = await start_stack(tmp_path, fast)
    async with resources:
        yield built


async def test_a_mention_on_mastodon_is_answered_from_the_inbox(stack: Stack) -> None:
    acme, globex = await stack.tenant("acme"), await stack.tenant("globex")
    async with mastodon_server() as server:
        newsroom, reader = server.state.add_account("newsroom"), server.state.add_account("reader")
        connected = await stack.client.post(
            "/v1/channels", headers=auth(acme["token"]),
            json={"network": "mastodon", "account": "newsroom@127.0.0.1",
                  "service": server.url, "access_token": newsroom.access_token},
        )  # fmt: skip
        assert connected.status_code == 201, connected.text
        api = Mastodon(access_token=reader.access_token, api_base_url=server.url)
        asked = await asyncio.to_thread(api.status_post, "@newsroom open on Sunday?")
        now = int(time.time() * 1e6)
        await stack.platform.event_log.append([
            PostPublished(
                id="test-asked", key=f"{server.url}/@reader", ts=now, source="test",
                post=asked.url, author=f"{server.url}/@reader", text="@newsroom open on Sunday?",
                mentions=[f"{server.url}/@newsroom"], created_at=now,
            )
        ])  # fmt: skip

        async def listed(token: str) -> dict[str, object]:
            answer = await stack.client.get("/v1/inbox", headers=auth(token))
            assert answer.status_code == 200, answer.text
            found: dict[str, object] = answer.json()
            return found

        async def arrived() -> bool:
            return bool((await listed(acme["token"]))["items"])

        await until(arrived)
        (item,) = (await listed(acme["token"]))["items"]  # type: ignore[misc]
        assert (item["post"], item["channel"]) == (asked.url, connected.json()["id"])
        assert (await listed(globex["token"]))["items"] == []

        replied = await stack.client.post(
            f"/v1/inbox/{item['id']}/reply", json={"text": "Yes, 10 to 4."},
            headers=auth(acme["token"]),
        )  # fmt: skip
        assert replied.status_code == 201, replied.text

        async def sent() -> bool:
            return any(s.text == "Yes, 10 to 4." for s in server.state.statuses.values())

        await until(sent)
        (answer,) = [s for s in server.state.statuses.values() if s.text == "Yes, 10 to 4."]
        assert answer.in_reply_to is not None
        assert answer.in_reply_to.id == str(asked.id)
        async with (
            httpx.AsyncClient(base_url=stack.url, timeout=10) as client,
            aconnect_sse(client, "GET", "/v1/inbox/live", headers=auth(acme["token"])) as live,
        ):
            first = await anext(e async for e in live.aiter_sse() if e.data)
        assert (first.event, first.json()) == ("unread", {"unread": 0})  # answered: read
