"""Publishing to Bluesky's own PDS (hubbub.sandbox.bluesky) exactly once: the post's record
under the job's record key, its mentions resolved to dids by the mentions role, and a
record made before an answer was lost found rather than made twice."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from hubbub.bootstrap import build_platform, open_request_signer
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import PageSeen
from hubbub.kernel.sealing import SecretBox
from hubbub.publishing.bluesky import BlueskyNetwork, part_key
from hubbub.publishing.mentions import MentionsDids
from hubbub.publishing.ports import Job, Limits, NetworkName
from hubbub.publishing.service import BLUESKY_LIMITS, Publishing
from hubbub.publishing.sql import SqlJobStore
from hubbub.publishing.worker import Publisher
from hubbub.sandbox.bluesky import jwt_hs256
from hubbub.settings import Settings
from hubbub.web.app import create_app
from tests.conftest import serving
from tests.support.images import png
from tests.support.pds import Account, LocalPds, bearer, local_pds, xrpc_result

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
POST = "app.bsky.feed.post"


@dataclass
class Rig:
    network: BlueskyNetwork
    pds: LocalPds
    author: Account
    friend: Account
    publishing: Publishing
    publisher: Publisher
    channel: str

    async def records(self) -> list[dict[str, Any]]:
        listed = await self.pds.client.get(
            "/xrpc/com.atproto.repo.listRecords",
            params={"repo": self.author.did, "collection": POST, "limit": 100},
        )
        return list(xrpc_result(listed)["records"])

    async def record(self, job: Job) -> dict[str, Any]:
        return await self.part(job, 0)

    async def part(self, job: Job, index: int) -> dict[str, Any]:
        """A thread's part `index` (0: the post itself), under its own record key."""
        key = part_key(job.idempotency_key, index)
        found = await self.pds.client.get(
            "/xrpc/com.atproto.repo.getRecord",
            params={"repo": self.author.did, "collection": POST, "rkey": key},
        )
        return dict(xrpc_result(found))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with local_pds() as pds:
        author, friend = await pds.create_account(), await pds.create_account()
        app_password = await pds.create_app_password(author)
        settings = Settings(data_dir=tmp_path / "data")
        platform = await build_platform(settings)
        await platform.event_log.append(
            [PageSeen(id="seen-friend", key=friend.did, ts=time.time_ns() // 1000,
                      source="jetstream", page=friend.did, handle=friend.handle,
                      followers_count=10)]
        )  # fmt: skip
        store = SqlJobStore.sqlite(tmp_path / "relational.db")
        box = SecretBox(Fernet.generate_key())
        try:
            async with serving(create_app(platform, "mentions")) as mentions_url:
                dids = MentionsDids(mentions_url, open_request_signer(settings))
                network = BlueskyNetwork(box, dids.did_of, LOOPBACK, media_data=store.media_data)

                async def limits_of(_: NetworkName, __: str) -> Limits:
                    return BLUESKY_LIMITS

                clock = SystemClock()
                publishing = Publishing(store, box, clock, limits_of, LOOPBACK)
                channel = await publishing.add_channel(
                    "acme", "bluesky", author.handle, pds.url,
                    {"identifier": author.handle, "password": app_password},
                )  # fmt: skip
                publisher = Publisher(store, {"bluesky": network}, clock, name="p1")
                yield Rig(network, pds, author, friend, publishing, publisher, channel.id)
                await network.close()
                await dids.close()
        finally:
            store.close()
            await platform.close()


async def test_a_post_is_a_record_under_its_jobs_key_with_its_facets(rig: Rig) -> None:
    text = f"Launch day with @{rig.friend.handle} 🚀 https://example.com/launch #Hubbub"
    _, (job,) = await rig.publishing.schedule("acme", "ed", text, [rig.channel], language="en")
    assert await rig.publisher.once() == 1
    done = rig.publishing.job("acme", job.id)
    assert done.state == "published", done.error
    assert done.remote_id == f"at://{rig.author.did}/{POST}/{job.idempotency_key}"
    record = (await rig.record(job))["value"]
    assert (record["text"], record["langs"]) == (text, ["en"])
    raw = text.encode()
    features = [
        (raw[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode(), f["features"][0])
        for f in record["facets"]
    ]
    assert features == [
        (f"@{rig.friend.handle}",
         {"$type": "app.bsky.richtext.facet#mention", "did": rig.friend.did}),
        ("https://example.com/launch",
         {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/launch"}),
        ("#Hubbub", {"$type": "app.bsky.richtext.facet#tag", "tag": "Hubbub"}),
    ]  # fmt: skip


async def test_a_record_made_before_its_answer_was_lost_is_found_not_made_twice(
    rig: Rig,
) -> None:
    _, (job,) = await rig.publishing.schedule("acme", "ed", "Exactly once", [rig.channel])
    # The PDS made the record, and the publisher never heard: as after a timeout.
    made = await rig.pds.client.post(
        "/xrpc/com.atproto.repo.createRecord",
        json={"repo": rig.author.did, "collection": POST, "rkey": job.idempotency_key,
              "record": {"$type": POST, "text": "Exactly once",
                         "createdAt": "2026-12-06T12:00:00Z"}},
        headers=bearer(rig.author.access_jwt),
    )  # fmt: skip
    xrpc_result(made)
    assert await rig.publisher.once() == 1  # a fresh claim: it sends, the key is taken
    done = rig.publishing.job("acme", job.id)
    assert (done.state, done.attempts) == ("published", 1)
    assert [r["value"]["text"] for r in await rig.records()] == ["Exactly once"]


async def test_a_post_longer_than_300_graphemes_is_refused_with_the_overflow(rig: Rig) -> None:
    with pytest.raises(ValueError, match=r"\(bluesky\): 301 graphemes, 1 over its limit of 300"):
        await rig.publishing.schedule("acme", "ed", "👋🏽" * 301, [rig.channel])
    _, (job,) = await rig.publishing.schedule("acme", "ed", "👋🏽" * 300, [rig.channel])
    await rig.publisher.once()
    assert rig.publishing.job("acme", job.id).state == "published"


async def test_an_expired_session_is_refreshed_and_a_revoked_one_signed_in_again(
    rig: Rig,
) -> None:
    _, (first,) = await rig.publishing.schedule("acme", "ed", "signed in", [rig.channel])
    await rig.publisher.once()
    assert rig.publishing.job("acme", first.id).state == "published"
    described = xrpc_result(await rig.pds.client.get("/xrpc/com.atproto.server.describeServer"))
    past = int(time.time()) - 300
    expired = jwt_hs256(
        {"scope": "com.atproto.access", "sub": rig.author.did, "aud": described["did"],
         "iat": past - 60, "exp": past},
        rig.pds.jwt_secret, "at+jwt",
    )  # fmt: skip
    session = rig.network._sessions[rig.channel]  # as two hours later: the access expired
    session.access = expired
    _, (second,) = await rig.publishing.schedule("acme", "ed", "refreshed", [rig.channel])
    await rig.publisher.once()
    assert rig.publishing.job("acme", second.id).state == "published"
    assert rig.network._sessions[rig.channel].access != expired  # refreshed, not signed in

    # The refresh token revoked as well (signed out elsewhere): it signs in again.
    refreshed = rig.network._sessions[rig.channel]
    revoked = await rig.pds.client.post(
        "/xrpc/com.atproto.server.deleteSession", headers=bearer(refreshed.refresh)
    )
    xrpc_result(revoked)
    refreshed.access = expired
    _, (third,) = await rig.publishing.schedule("acme", "ed", "signed in again", [rig.channel])
    await rig.publisher.once()
    assert rig.publishing.job("acme", third.id).state == "published"
    texts = sorted(r["value"]["text"] for r in await rig.records())
    assert texts == ["refreshed", "signed in", "signed in again"]


async def test_images_go_as_blobs_with_alt_text_and_a_thread_replies_part_by_part(
    rig: Rig,
) -> None:
    chart = png(4, 3, seed=1)
    first = await rig.publishing.add_media("acme", chart, alt="Revenue by quarter")
    second = await rig.publishing.add_media("acme", png(seed=2))
    _, (job,) = await rig.publishing.schedule(
        "acme", "ed", "Our quarter, in a thread", [rig.channel], media=[first.id],
        thread=[("The team behind it", [second.id]), ("Thanks for reading", [])],
    )  # fmt: skip
    await rig.publisher.once()
    done = rig.publishing.job("acme", job.id)
    assert done.state == "published", done.error
    one, two, three = [await rig.part(job, index) for index in range(3)]
    assert [p["value"]["text"] for p in (one, two, three)] == [
        "Our quarter, in a thread", "The team behind it", "Thanks for reading",
    ]  # fmt: skip
    assert done.remote_id == one["uri"]
    (image,) = one["value"]["embed"]["images"]
    assert one["value"]["embed"]["$type"] == "app.bsky.embed.images"
    assert (image["alt"], image["image"]["mimeType"]) == ("Revenue by quarter", "image/png")
    blob = await rig.pds.client.get(
        "/xrpc/com.atproto.sync.getBlob",
        params={"did": rig.author.did, "cid": image["image"]["ref"]["$link"]},
    )
    assert blob.content == chart
    assert [i["alt"] for i in two["value"]["embed"]["images"]] == [""]  # none given
    root = {"uri": one["uri"], "cid": one["cid"]}
    assert "reply" not in one["value"]
    assert two["value"]["reply"] == {"root": root, "parent": root}
    assert three["value"]["reply"] == {
        "root": root, "parent": {"uri": two["uri"], "cid": two["cid"]},
    }  # fmt: skip


async def test_a_thread_cut_off_mid_way_resumes_at_its_first_missing_part(rig: Rig) -> None:
    parts = ["1/3 the news", "2/3 the details", "3/3 the thanks"]
    _, (job,) = await rig.publishing.schedule(
        "acme", "ed", parts[0], [rig.channel], thread=[(parts[1], []), (parts[2], [])]
    )
    # A publisher made the first two parts, then died before it could record anything.
    store = rig.publishing.store
    (claimed,) = store.claim("crashed", job.due_us, lease_s=60, limit=1)
    store.sending(job.id, "crashed", job.due_us)
    made: list[dict[str, str]] = []
    for index in range(2):
        record: dict[str, Any] = {"$type": POST, "text": parts[index],
                                  "createdAt": "2026-12-06T12:00:00Z"}  # fmt: skip
        if made:
            record["reply"] = {"root": made[0], "parent": made[-1]}
        answer = await rig.pds.client.post(
            "/xrpc/com.atproto.repo.createRecord",
            json={"repo": rig.author.did, "collection": POST, "record": record,
                  "rkey": part_key(claimed.idempotency_key, index)},
            headers=bearer(rig.author.access_jwt),
        )  # fmt: skip
        made.append({key: xrpc_result(answer)[key] for key in ("uri", "cid")})
    store.unknown(job.id, "crashed", "killed", job.due_us, job.due_us)

    await rig.publisher.once()
    done = rig.publishing.job("acme", job.id)
    assert (done.state, done.remote_id) == ("published", made[0]["uri"])
    assert sorted(r["value"]["text"] for r in await rig.records()) == parts  # each once
    third = await rig.part(job, 2)
    assert third["value"]["reply"] == {"root": made[0], "parent": made[1]}
