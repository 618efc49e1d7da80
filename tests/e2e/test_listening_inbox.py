"""The inbox end to end, over real HTTP: a channel connected in publishing is told to the
log with its account's DID, a post of the firehose that mentions that account reaches the
tenant's inbox (and its live stream, with the unread count), the team assigns, tags and
closes it, and a reply goes out through publishing's API, signed as the person replying,
to Bluesky's own PDS as a reply to that post. Another tenant sees none of it."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx_sse import ServerSentEvent, aconnect_sse

from hubbub.bootstrap import Platform, build_platform, open_request_signer
from hubbub.kernel.events import PostDeleted, PostPublished
from hubbub.kernel.signing import KEY, ROLE_HEADER, TENANT_HEADER
from hubbub.listening.api import LivePolicy
from hubbub.listening.inbox import Inbox, PublishingReplies
from hubbub.listening.inbox_api import build_inbox_router
from hubbub.listening.inbox_sql import SqlInbox
from hubbub.listening.sql import SqlListeningStore
from hubbub.publishing.bluesky import BlueskyNetwork
from hubbub.publishing.directory import ChannelDirectory
from hubbub.publishing.ports import Actor, Step
from hubbub.publishing.service import Publishing
from hubbub.settings import Settings
from hubbub.web.app import create_app
from tests.conftest import serving, until
from tests.support.pds import Account, LocalPds, bearer, local_pds, xrpc_result

POST = "app.bsky.feed.post"


@dataclass
class Rig:
    platform: Platform
    publishing: Publishing
    pds: LocalPds
    author: Account
    friend: Account
    channel: str
    inbox_url: str

    def client(self, tenant: str = "acme", role: str = "editor") -> httpx.AsyncClient:
        """Requests as the gateway passes them on, for a person of `tenant`."""
        headers = {TENANT_HEADER: tenant, KEY.decode(): "user:u-ann", ROLE_HEADER: role}
        return httpx.AsyncClient(base_url=self.inbox_url, headers=headers, timeout=10)

    async def friend_posts(self, text: str, *, mentioning: bool = True) -> str:
        """A post of the friend's on the PDS, and as the firehose shows it."""
        record = {"$type": POST, "text": text, "createdAt": "2026-12-06T10:00:00Z"}
        made = xrpc_result(
            await self.pds.client.post(
                "/xrpc/com.atproto.repo.createRecord",
                json={"repo": self.friend.did, "collection": POST, "record": record},
                headers=bearer(self.friend.access_jwt),
            )
        )
        now = int(time.time() * 1e6)
        seen = PostPublished(
            id=f"test-{made['uri']}", key=self.friend.did, ts=now, source="test",
            post=made["uri"], author=self.friend.did, text=text, langs=["en"],
            mentions=[self.author.did] if mentioning else [], created_at=now,
        )  # fmt: skip
        await self.platform.event_log.append([seen])
        return str(made["uri"])


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    settings = Settings(
        data_dir=tmp_path / "data", listening_interval_s=0.02,
        publish_allowed_networks=[ipaddress.ip_network("127.0.0.0/8")],
    )  # fmt: skip
    async with local_pds() as pds:
        author, friend = await pds.create_account(), await pds.create_account()
        app_password = await pds.create_app_password(author)
        platform = await build_platform(settings)
        try:
            publishing = await platform.publishing()
            channel = await publishing.add_channel(
                "acme", "bluesky", author.handle, pds.url,
                {"identifier": author.handle, "password": app_password},
            )  # fmt: skip
            await announce_channels(platform, publishing)
            listening = await platform.listening()
            store = listening.store
            assert isinstance(store, SqlListeningStore)
            live = LivePolicy(last_s=5.0, heartbeat_s=0.5, poll_s=0.05)
            async with serving(create_app(platform, "publishing")) as publishing_url:
                replies = PublishingReplies(publishing_url, open_request_signer(settings))
                inbox = Inbox(SqlInbox(store.engine), platform.event_log, platform.clock, replies)

                async def inbox_of() -> Inbox:
                    return inbox

                app = FastAPI()
                app.include_router(build_inbox_router(inbox_of, live))
                async with serving(app) as inbox_url:
                    yield Rig(platform, publishing, pds, author, friend, channel.id, inbox_url)
                await replies.close()
        finally:
            await platform.close()


async def announce_channels(platform: Platform, publishing: Publishing) -> None:
    """A pass of the publisher's channel directory: the channel's page (its DID, read by
    signing in) told to the log, where the listening worker learns whose inbox it is."""

    async def no_did(_: str, __: str) -> str | None:
        return None

    network = BlueskyNetwork(
        publishing.box, no_did, publishing.allowed, media_data=publishing.store.media_data
    )
    directory = ChannelDirectory(platform.event_log, publishing.store, platform.clock, network.page)
    await directory.announce_everyone()
    await network.close()


async def sse_events(
    client: httpx.AsyncClient, path: str, count: int, headers: dict[str, str] | None = None
) -> list[ServerSentEvent]:
    """The first `count` events (heartbeats aside) of a live stream, with a real client."""
    found: list[ServerSentEvent] = []
    async with aconnect_sse(client, "GET", path, headers=headers or {}) as source:
        assert source.response.status_code == 200
        async for event in source.aiter_sse():
            if not event.data:
                continue
            found.append(event)
            if len(found) == count:
                break
    return found


async def inbox(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.get("/v1/inbox", params=params)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def test_a_mention_reaches_the_inbox_live_and_is_answered_on_bluesky(rig: Rig) -> None:
    async with rig.client() as acme, rig.client("globex") as globex:
        watching = asyncio.create_task(sse_events(acme, "/v1/inbox/live", 3))
        theirs = asyncio.create_task(sse_events(globex, "/v1/inbox/live", 2))
        await asyncio.sleep(0.5)  # both connected, at the head
        asked = await rig.friend_posts(f"@{rig.author.handle} do you ship to Lyon?")
        await rig.friend_posts("Nothing to do with anyone", mentioning=False)

        unread, item, counted = await asyncio.wait_for(watching, 10)
        assert (unread.event, unread.json()) == ("unread", {"unread": 0})
        assert item.event == "item"
        shown = item.json()
        assert (shown["post"], shown["channel"], shown["kind"]) == (asked, rig.channel, "mention")
        assert (shown["assignee"], shown["tags"], shown["done"], shown["read"]) == (
            None, [], False, False,
        )  # fmt: skip
        assert shown["url"].startswith("https://bsky.app/profile/")
        assert item.id == shown["id"]
        assert (counted.event, counted.json()) == ("unread", {"unread": 1})

        listed = await inbox(acme)
        assert [i["post"] for i in listed["items"]] == [asked]
        assert listed["unread"] == 1
        item_id = listed["items"][0]["id"]

        changed = await acme.patch(
            f"/v1/inbox/{item_id}", json={"assignee": "u-bob", "tags": ["Shipping", " urgent "]}
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["assignee"], changed.json()["tags"]) == (
            "u-bob", ["Shipping", "urgent"],
        )  # fmt: skip
        assert [i["id"] for i in (await inbox(acme, tag="urgent"))["items"]] == [item_id]
        assert (await inbox(acme, assignee="u-ann"))["items"] == []

        answered = await acme.post(
            f"/v1/inbox/{item_id}/reply", json={"text": "We do, from Monday!"}
        )
        assert answered.status_code == 201, answered.text
        made = answered.json()
        assert made["in_review"] is False
        kept = rig.publishing.post("acme", made["post"])
        assert (kept.reply_to, kept.author) == (asked, "user:u-ann")

        async def published() -> bool:
            jobs = rig.publishing.store.post_jobs("acme", made["post"])
            return bool(jobs) and jobs[0].state == "published"

        await until(published)
        (job,) = rig.publishing.store.post_jobs("acme", made["post"])
        assert job.remote_id is not None
        repo, _, rkey = job.remote_id.removeprefix("at://").split("/")
        record = xrpc_result(
            await rig.pds.client.get(
                "/xrpc/com.atproto.repo.getRecord",
                params={"repo": repo, "collection": POST, "rkey": rkey},
            )
        )["value"]
        assert record["text"] == "We do, from Monday!"
        assert record["reply"]["parent"]["uri"] == asked
        assert record["reply"]["root"]["uri"] == asked

        closed = await acme.patch(f"/v1/inbox/{item_id}", json={"done": True, "assignee": None})
        assert (closed.json()["done"], closed.json()["assignee"]) == (True, None)
        assert (closed.json()["read"], closed.json()["tags"]) == (True, ["Shipping", "urgent"])
        assert (await inbox(acme))["items"] == []
        assert [i["id"] for i in (await inbox(acme, state="done"))["items"]] == [item_id]
        assert (await inbox(acme))["unread"] == 0

        # Another tenant: nothing listed, nothing to change or answer, nothing live.
        assert await inbox(globex, state="all") == {"items": [], "unread": 0, "next": None}
        for refused in (
            await globex.patch(f"/v1/inbox/{item_id}", json={"done": False}),
            await globex.post(f"/v1/inbox/{item_id}/reply", json={"text": "Hi"}),
        ):
            assert refused.status_code == 404
        got = await asyncio.wait_for(theirs, 10)  # the stream ends after `last_s`
        assert [(e.event, e.json()) for e in got] == [("unread", {"unread": 0})]


async def test_a_viewer_does_not_answer_and_a_missing_item_is_not_found(rig: Rig) -> None:
    asked = await rig.friend_posts(f"@{rig.author.handle} hello?")
    async with rig.client(role="viewer") as viewer, rig.client() as editor:

        async def arrived() -> bool:
            return bool((await inbox(editor))["items"])

        await until(arrived)
        (item,) = (await inbox(viewer))["items"]
        assert item["post"] == asked
        refused = await viewer.post(f"/v1/inbox/{item['id']}/reply", json={"text": "Hi"})
        assert refused.status_code == 403
        assert "editor role" in refused.json()["detail"]
        assert (await editor.patch("/v1/inbox/999999", json={"read": True})).status_code == 404
        too_many = await editor.patch(
            f"/v1/inbox/{item['id']}", json={"tags": [f"t{n}" for n in range(21)]}
        )
        assert too_many.status_code == 422


async def test_a_deleted_post_leaves_the_inbox_and_its_live_view(rig: Rig) -> None:
    asked = await rig.friend_posts(f"@{rig.author.handle} anyone there?")
    async with rig.client() as acme:

        async def arrived() -> bool:
            return (await inbox(acme))["unread"] == 1

        await until(arrived)
        (item,) = (await inbox(acme))["items"]
        watching = asyncio.create_task(
            sse_events(acme, "/v1/inbox/live", 3, {"Last-Event-ID": item["id"]})
        )
        await asyncio.sleep(0.5)  # connected, after the item
        await rig.platform.event_log.append([
            PostDeleted(id=f"test-delete-{asked}", key=rig.friend.did, ts=int(time.time() * 1e6),
                        source="test", post=asked, author=rig.friend.did),
        ])  # fmt: skip
        first, *then = await asyncio.wait_for(watching, 10)
        assert (first.event, first.json()) == ("unread", {"unread": 1})
        shown = sorted((e.event, str(e.json())) for e in then)
        withdrawn = str({"post": asked, "channel": rig.channel})
        assert shown == [("unread", str({"unread": 0})), ("withdrawn", withdrawn)]
        assert await inbox(acme, state="all") == {"items": [], "unread": 0, "next": None}


async def test_a_reply_waits_for_approval_or_is_refused_as_publishing_says(rig: Rig) -> None:
    await rig.friend_posts(f"@{rig.author.handle} is it vegan?")
    admin = Actor("user:u-boss", "admin")
    await rig.publishing.put_workflow(
        "acme", admin, "Answers", [Step("Lead", roles=("admin",))], channels=[rig.channel]
    )
    async with rig.client() as editor:

        async def arrived() -> bool:
            return bool((await inbox(editor))["items"])

        await until(arrived)
        (item,) = (await inbox(editor))["items"]
        path = f"/v1/inbox/{item['id']}/reply"
        too_long = await editor.post(path, json={"text": "Yes! " * 100})
        assert too_long.status_code == 422
        assert "over its limit of 300" in too_long.json()["detail"]

        waiting = await editor.post(path, json={"text": "Yes, all of it."})
        assert waiting.status_code == 201, waiting.text
        assert waiting.json()["in_review"] is True
        post = waiting.json()["post"]
        assert rig.publishing.store.post_jobs("acme", post) == []
        review = rig.publishing.review("acme", post)
        assert review is not None
        assert review.state == "in_review"
        assert rig.publishing.post("acme", post).reply_to == item["post"]


async def test_a_live_inbox_resumes_after_the_last_event_seen(rig: Rig) -> None:
    async with rig.client() as acme:
        watching = asyncio.create_task(sse_events(acme, "/v1/inbox/live", 2))
        await asyncio.sleep(0.5)  # connected, at the head
        first = await rig.friend_posts(f"@{rig.author.handle} first")
        unread, item = await asyncio.wait_for(watching, 10)
        assert (unread.event, item.event, item.json()["post"]) == ("unread", "item", first)

        second = await rig.friend_posts(f"@{rig.author.handle} second, while away")
        resumed = await sse_events(acme, "/v1/inbox/live", 2, {"Last-Event-ID": item.id})
    assert [e.event for e in resumed] == ["unread", "item"]
    assert resumed[1].json()["post"] == second
    assert int(resumed[1].id) > int(item.id)
