"""Replies to someone else's post, and channels told to the log: a post with `reply_to`
is published in reply to that post (on Bluesky's own PDS with the parent's and its
conversation root's strong references; on Mastodon `in_reply_to_id` the status its URL
resolves to on the channel's instance), and connecting or removing a channel appends a
`ChannelChanged` naming the account's page as ingest names it."""

from __future__ import annotations

import ipaddress
from asyncio import to_thread
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from mastodon import Mastodon

from hubbub.bootstrap import build_platform
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import FixedClock, SystemClock
from hubbub.kernel.events import CONTROL, ChannelChanged
from hubbub.kernel.sealing import SecretBox
from hubbub.publishing.bluesky import BlueskyNetwork
from hubbub.publishing.directory import ChannelDirectory
from hubbub.publishing.journal import Journal
from hubbub.publishing.mastodon import MastodonNetwork
from hubbub.publishing.ports import Actor, Invalid, Limits, NetworkName, Step
from hubbub.publishing.service import BLUESKY_LIMITS, Publishing
from hubbub.publishing.sql import SqlJobStore
from hubbub.publishing.worker import Publisher
from hubbub.sandbox.mastodon import MastodonServer, mastodon_server
from hubbub.settings import Settings
from tests.conftest import api_client
from tests.support.pds import Account, LocalPds, bearer, local_pds, xrpc_result

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
POST = "app.bsky.feed.post"


async def channel_events(log: SqliteEventLog) -> list[ChannelChanged]:
    records = await log.read(CONTROL, 1, 1000)
    return [r.event for r in records if isinstance(r.event, ChannelChanged)]


@dataclass
class MastodonRig:
    log: SqliteEventLog
    server: MastodonServer
    store: SqlJobStore
    publishing: Publishing
    publisher: Publisher
    network: MastodonNetwork

    async def connect(self, username: str) -> str:
        login = self.server.state.add_account(username)
        made = await self.publishing.add_channel(
            "acme", "mastodon", f"{username}@127.0.0.1", self.server.url,
            {"access_token": login.access_token},
        )  # fmt: skip
        return made.id


@pytest.fixture
async def mastodon(tmp_path: Path) -> AsyncIterator[MastodonRig]:
    log = SqliteEventLog(tmp_path / "eventlog.db")
    clock = FixedClock(now_us=1_800_000_000_000_000)
    store = SqlJobStore.sqlite(tmp_path / "relational.db")
    box = SecretBox(Fernet.generate_key())
    network = MastodonNetwork(box, clock, LOOPBACK, media_data=store.media_data)

    async def limits_of(_: str, service: str) -> Limits:
        return await network.limits(service)

    journal = Journal(log, clock)
    publishing = Publishing(
        store, box, clock, limits_of, LOOPBACK, journal, page_of=network.page
    )  # fmt: skip
    publisher = Publisher(store, {"mastodon": network}, clock, name="p1", journal=journal)
    async with mastodon_server() as server:
        server.state.clock = clock
        yield MastodonRig(log, server, store, publishing, publisher, network)
    await network.close()
    store.close()
    await log.close()


async def test_a_mastodon_reply_answers_the_status_its_url_names(mastodon: MastodonRig) -> None:
    channel = await mastodon.connect("newsroom")
    reader = mastodon.server.state.add_account("reader")
    api = Mastodon(access_token=reader.access_token, api_base_url=mastodon.server.url)
    asked = await to_thread(api.status_post, "Does it ship to Lyon?")

    post, (job,) = await mastodon.publishing.schedule(
        "acme", "ed", "It does, from Monday!", [channel], reply_to=asked.url
    )
    assert await mastodon.publisher.once() == 1

    assert mastodon.publishing.job("acme", job.id).state == "published"
    statuses = mastodon.server.state.statuses.values()
    (answer,) = [status for status in statuses if status.text == "It does, from Monday!"]
    assert answer.in_reply_to is not None
    assert answer.in_reply_to.id == str(asked.id)
    assert mastodon.publishing.post("acme", post.id).reply_to == asked.url


async def test_a_reply_waits_for_approval_like_any_post(mastodon: MastodonRig) -> None:
    channel = await mastodon.connect("newsroom")
    reader = mastodon.server.state.add_account("reader")
    api = Mastodon(access_token=reader.access_token, api_base_url=mastodon.server.url)
    asked = await to_thread(api.status_post, "Is the store open on Sunday?")
    admin = Actor("user:boss", "admin")
    await mastodon.publishing.put_workflow(
        "acme", admin, "Replies", [Step("Lead", roles=("admin",))], channels=[channel]
    )

    post, jobs = await mastodon.publishing.schedule(
        "acme", "user:ed", "Yes, 10 to 4.", [channel], reply_to=asked.url
    )
    assert jobs == []
    assert await mastodon.publisher.once() == 0
    await mastodon.publishing.decide("acme", admin, post.id, "approved")
    assert await mastodon.publisher.once() == 1

    statuses = mastodon.server.state.statuses.values()
    (answer,) = [status for status in statuses if status.text == "Yes, 10 to 4."]
    assert answer.in_reply_to is not None
    assert answer.in_reply_to.id == str(asked.id)


async def test_a_reply_names_a_post_of_its_channels_network(mastodon: MastodonRig) -> None:
    channel = await mastodon.connect("newsroom")
    with pytest.raises(Invalid, match="by its URL"):
        await mastodon.publishing.schedule(
            "acme", "ed", "Thanks!", [channel], reply_to="at://did:plc:x/app.bsky.feed.post/1"
        )


async def test_a_reply_to_a_status_the_instance_cannot_find_fails_saying_so(
    mastodon: MastodonRig,
) -> None:
    channel = await mastodon.connect("newsroom")
    gone = "https://elsewhere.example/@carol/1"
    _, (job,) = await mastodon.publishing.schedule("acme", "ed", "Hi", [channel], reply_to=gone)
    await mastodon.publisher.once()
    failed = mastodon.publishing.job("acme", job.id)
    assert failed.state == "failed"
    assert failed.error is not None
    assert "cannot find the status replied to" in failed.error


async def test_connecting_and_removing_a_channel_tells_the_log_its_page(
    mastodon: MastodonRig,
) -> None:
    channel = await mastodon.connect("newsroom")
    await mastodon.publishing.disconnect("acme", channel)

    connected, removed = await channel_events(mastodon.log)
    page = f"{mastodon.server.url}/@newsroom"
    assert (connected.tenant, connected.channel, connected.page) == ("acme", channel, page)
    assert (connected.network, connected.account) == ("mastodon", "newsroom@127.0.0.1")
    assert connected.active
    assert not removed.active
    assert (removed.channel, removed.page) == (channel, page)


async def test_channels_the_log_lacks_are_announced_once_by_every_publisher(
    mastodon: MastodonRig,
) -> None:
    quiet = Publishing(
        mastodon.store, mastodon.publishing.box, mastodon.publishing.clock,
        mastodon.publishing.limits_of, LOOPBACK,
    )  # fmt: skip
    login = mastodon.server.state.add_account("archive")
    unannounced = await quiet.add_channel(
        "acme", "mastodon", "archive@127.0.0.1", mastodon.server.url,
        {"access_token": login.access_token},
    )  # fmt: skip
    told = await mastodon.connect("newsroom")
    await to_thread(mastodon.store.remove_channel, "acme", told)  # the log is not told

    def directory() -> ChannelDirectory:
        return ChannelDirectory(
            mastodon.log, mastodon.store, mastodon.publishing.clock, mastodon.network.page
        )

    first, second = directory(), directory()
    assert await first.announce_everyone() == 2
    assert await second.announce_everyone() == 0
    assert await directory().announce_everyone() == 0

    events = await channel_events(mastodon.log)
    latest = {event.channel: event for event in events}
    assert latest[unannounced.id].active
    assert latest[unannounced.id].page == f"{mastodon.server.url}/@archive"
    assert not latest[told].active
    assert mastodon.store.channel("acme", unannounced.id).page.endswith("/@archive")


@dataclass
class BlueskyRig:
    pds: LocalPds
    author: Account
    friend: Account
    log: SqliteEventLog
    publishing: Publishing
    publisher: Publisher
    channel: str

    async def post_as(self, who: Account, text: str, reply: dict[str, Any] | None = None) -> Any:
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": "2026-12-06T10:00:00Z"}
        if reply is not None:
            record["reply"] = reply
        made = await self.pds.client.post(
            "/xrpc/com.atproto.repo.createRecord",
            json={"repo": who.did, "collection": POST, "record": record},
            headers=bearer(who.access_jwt),
        )
        return xrpc_result(made)

    async def record(self, uri: str) -> dict[str, Any]:
        repo, _, rkey = uri.removeprefix("at://").split("/")
        found = await self.pds.client.get(
            "/xrpc/com.atproto.repo.getRecord",
            params={"repo": repo, "collection": POST, "rkey": rkey},
        )
        return dict(xrpc_result(found)["value"])


@pytest.fixture
async def bluesky(tmp_path: Path) -> AsyncIterator[BlueskyRig]:
    async with local_pds() as pds:
        author, friend = await pds.create_account(), await pds.create_account()
        app_password = await pds.create_app_password(author)
        log = SqliteEventLog(tmp_path / "eventlog.db")
        store = SqlJobStore.sqlite(tmp_path / "relational.db")
        box = SecretBox(Fernet.generate_key())

        async def no_did(_: str, __: str) -> str | None:
            return None

        network = BlueskyNetwork(box, no_did, LOOPBACK, media_data=store.media_data)

        async def limits_of(_: NetworkName, __: str) -> Limits:
            return BLUESKY_LIMITS

        clock = SystemClock()
        journal = Journal(log, clock)
        publishing = Publishing(
            store, box, clock, limits_of, LOOPBACK, journal, page_of=network.page
        )  # fmt: skip
        channel = await publishing.add_channel(
            "acme", "bluesky", author.handle, pds.url,
            {"identifier": author.handle, "password": app_password},
        )  # fmt: skip
        publisher = Publisher(store, {"bluesky": network}, clock, name="p1", journal=journal)
        try:
            yield BlueskyRig(pds, author, friend, log, publishing, publisher, channel.id)
        finally:
            await network.close()
            store.close()
            await log.close()


async def test_a_bluesky_reply_names_its_parent_and_the_conversations_root(
    bluesky: BlueskyRig,
) -> None:
    started = await bluesky.post_as(bluesky.friend, "Who makes the best coffee?")
    root = {"uri": started["uri"], "cid": started["cid"]}
    follow_up = await bluesky.post_as(
        bluesky.friend, "In Lyon, I mean", {"root": root, "parent": root}
    )
    parent = {"uri": follow_up["uri"], "cid": follow_up["cid"]}

    _, (job,) = await bluesky.publishing.schedule(
        "acme", "ed", "We do, obviously", [bluesky.channel], reply_to=follow_up["uri"],
        thread=[("Come and taste", [])],
    )  # fmt: skip
    assert await bluesky.publisher.once() == 1

    done = bluesky.publishing.job("acme", job.id)
    assert done.state == "published", done.error
    assert done.remote_id is not None
    first = await bluesky.record(done.remote_id)
    assert first["reply"] == {"root": root, "parent": parent}
    rkey = done.remote_id.rsplit("/", 1)[1]
    records = await bluesky.pds.records(bluesky.author.did)
    assert sorted(records) == ["Come and taste", "We do, obviously"]
    listed = await bluesky.pds.client.get(
        "/xrpc/com.atproto.repo.listRecords",
        params={"repo": bluesky.author.did, "collection": POST},
    )
    (second,) = [r["value"] for r in xrpc_result(listed)["records"] if not r["uri"].endswith(rkey)]
    assert second["reply"]["root"] == root
    assert second["reply"]["parent"]["uri"] == done.remote_id


async def test_a_bluesky_channel_is_told_to_the_log_with_its_did(bluesky: BlueskyRig) -> None:
    (connected,) = await channel_events(bluesky.log)
    assert (connected.channel, connected.network, connected.page) == (
        bluesky.channel, "bluesky", bluesky.author.did,
    )  # fmt: skip


async def test_a_reply_is_asked_and_shown_by_publishings_api(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", publish_allowed_networks=[ipaddress.ip_network("127.0.0.0/8")]
    )
    platform = await build_platform(settings)
    try:
        async with mastodon_server() as server, api_client(platform, "publishing", "acme") as api:
            login = server.state.add_account("newsroom")
            made = await api.post("/v1/channels", json={
                "network": "mastodon", "account": "newsroom@127.0.0.1", "service": server.url,
                "access_token": login.access_token,
            })  # fmt: skip
            assert made.status_code == 201, made.text
            asked = "https://elsewhere.example/@carol/109"
            body = {"text": "Thanks!", "channels": [made.json()["id"]], "reply_to": asked}
            scheduled = await api.post("/v1/posts", json={**body, "at": "2030-01-01T09:00Z"})
            assert scheduled.status_code == 201, scheduled.text
            shown = await api.get(f"/v1/posts/{scheduled.json()['post']}")
            assert shown.json()["reply_to"] == asked
            wrong = await api.post("/v1/posts", json={**body, "reply_to": "at://did:plc:x/p/1"})
            assert wrong.status_code == 422
            assert "answer a status by its URL" in wrong.json()["detail"]
    finally:
        await platform.close()
