"""Jetstream lines to events: the real sample and the cases it does not contain."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hubbub.ingest.mapping.base import MappedBatch
from hubbub.ingest.mapping.jetstream import JetstreamMapping
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import (
    EngagementRecorded,
    Facet,
    FollowersChanged,
    PageDeactivated,
    PageReactivated,
    PageSeen,
    PostDeleted,
    PostEdited,
    PostPublished,
)

DID = "did:plc:alice000000000000000000"
BOB = "did:plc:bob00000000000000000000"
POST_URI = f"at://{BOB}/app.bsky.feed.post/3mptbyoeyc22k"


def mapping() -> JetstreamMapping:
    return JetstreamMapping(FixedClock(), max_event_bytes=1 << 20)


def run(lines: list[bytes], refs: dict[str, str] | None = None) -> MappedBatch:
    m = mapping()
    decoded = m.decode(lines, trace="t")
    known = refs if refs is not None else {}
    batch = m.map(decoded, {k: v for k, v in known.items() if k in decoded.ref_keys}, "t")
    batch.rejected[:0] = decoded.rejected
    return batch


def commit(
    collection: str,
    operation: str,
    rkey: str,
    record: dict[str, Any] | None = None,
    did: str = DID,
    rev: str = "3mptbypluud2a",
) -> bytes:
    body: dict[str, Any] = {
        "rev": rev,
        "operation": operation,
        "collection": collection,
        "rkey": rkey,
    }
    if record is not None:
        body["record"] = {"$type": collection, **record}
        body["cid"] = "bafyreiexample"
    line = {"did": did, "time_us": 1783175888085434, "kind": "commit", "commit": body}
    return json.dumps(line, ensure_ascii=False).encode()


def post_record(text: str, **extra: Any) -> dict[str, Any]:
    return {"text": text, "createdAt": "2026-07-04T14:38:08.999Z", "langs": ["en"], **extra}


def facet(kind: str, start: int, end: int, **value: str) -> dict[str, Any]:
    return {
        "index": {"byteStart": start, "byteEnd": end},
        "features": [{"$type": f"app.bsky.richtext.facet#{kind}", **value}],
    }


def test_the_real_sample_maps_every_line(jetstream_lines: list[bytes]) -> None:
    batch = run(jetstream_lines)
    kinds = Counter(type(e).__name__ for e in batch.events)
    assert not batch.rejected
    assert len(batch.primary_ids) + sum(batch.skipped.values()) == len(jetstream_lines)
    assert kinds["PostPublished"] == 17
    assert kinds["PostDeleted"] == 1
    assert kinds["FollowersChanged"] == 6
    likes = [e for e in batch.events if isinstance(e, EngagementRecorded) and e.kind == "like"]
    reposts = [e for e in batch.events if isinstance(e, EngagementRecorded) and e.kind == "repost"]
    assert (len(likes), len(reposts)) == (105, 15)
    assert kinds["PageReactivated"] == 1
    # The three follow deletes point at follows created before the recording began.
    assert batch.skipped["follow delete of a record never seen"] == 3
    assert batch.skipped["collection not used"] == 3  # a block and two status records


def test_a_like_lands_on_the_subject_post_and_its_author(jetstream_lines: list[bytes]) -> None:
    like = run(jetstream_lines[:1]).events[0]
    assert isinstance(like, EngagementRecorded)
    assert like.kind == "like"
    assert like.delta == 1
    assert like.actor == "did:plc:wq4aajammjtxdomz3e23667t"
    assert like.post == "at://did:plc:r2zybk6op3ymzpz6jhqpkoy5/app.bsky.feed.post/3mpsjbtci2c2o"
    assert like.post_author == like.key == "did:plc:r2zybk6op3ymzpz6jhqpkoy5"
    assert like.ts == 1783175888085434


def test_a_post_keeps_text_langs_and_facets_with_emoji_before_them() -> None:
    text = "Café 🎉 with @bob.bsky.social about #Python see example.com"
    raw = text.encode()
    mention = raw.index(b"@bob")
    tag = raw.index(b"#Python")
    link = raw.index(b"example.com")
    record = post_record(
        text,
        facets=[
            facet("mention", mention, mention + len("@bob.bsky.social"), did=BOB),
            facet("tag", tag, tag + len("#Python"), tag="Python"),
            facet("link", link, link + len("example.com"), uri="https://example.com/"),
        ],
    )
    (post,) = run([commit("app.bsky.feed.post", "create", "3mptbyqhi7s2f", record)]).events
    assert isinstance(post, PostPublished)
    assert post.text == text
    assert post.mentions == [BOB]
    assert post.tags == ["python"]
    assert post.links == ["https://example.com/"]
    spans = [raw[f.byte_start : f.byte_end].decode() for f in post.facets]
    assert spans == ["@bob.bsky.social", "#Python", "example.com"]
    assert post.created_at == 1783175888999000


def test_a_facet_outside_the_text_is_dropped_and_the_post_kept() -> None:
    text = "日本語のテキスト #タグ"
    tag_start = len("日本語のテキスト ".encode())
    record = post_record(
        text,
        facets=[
            facet("tag", tag_start, tag_start + len("#タグ".encode()), tag="タグ"),
            facet("mention", 0, 10_000, did=BOB),  # past the end
            facet("link", 1, 2, uri="https://x"),  # cuts a character in two
            facet("tag", -3, 2, tag="neg"),
            {"index": {"byteStart": "0", "byteEnd": 3}, "features": []},
            {"index": None},
        ],
    )
    batch = run([commit("app.bsky.feed.post", "create", "3abc", record)])
    (post,) = batch.events
    assert isinstance(post, PostPublished)
    assert post.facets == [Facet("tag", "タグ", tag_start, tag_start + len("#タグ".encode()))]
    assert post.mentions == []
    assert post.links == []
    assert batch.facets_dropped == 5


def test_a_reply_is_a_post_and_a_reply_engagement_on_its_parent() -> None:
    record = post_record(
        "agreed",
        reply={"root": {"uri": POST_URI, "cid": "c"}, "parent": {"uri": POST_URI, "cid": "c"}},
    )
    batch = run([commit("app.bsky.feed.post", "create", "3reply", record)])
    post, reply = batch.events
    assert isinstance(post, PostPublished)
    assert post.reply_parent == POST_URI
    assert isinstance(reply, EngagementRecorded)
    assert (reply.kind, reply.post, reply.post_author, reply.actor) == ("reply", POST_URI, BOB, DID)
    assert batch.primary_ids == [post.id]


def test_post_update_and_delete() -> None:
    batch = run(
        [
            commit("app.bsky.feed.post", "update", "3p", post_record("fixed typo")),
            commit("app.bsky.feed.post", "delete", "3p", rev="3mptbypzzzz2a"),
        ]
    )
    edited, deleted = batch.events
    assert isinstance(edited, PostEdited)
    assert edited.text == "fixed typo"
    assert isinstance(deleted, PostDeleted)
    assert deleted.post == f"at://{DID}/app.bsky.feed.post/3p"
    assert deleted.author == DID


def test_deleting_a_like_or_follow_undoes_what_its_create_pointed_to() -> None:
    like = {"subject": {"uri": POST_URI, "cid": "c"}, "createdAt": "2026-07-04T14:38:08Z"}
    follow = {"subject": BOB, "createdAt": "2026-07-04T14:38:08Z"}
    created = run(
        [
            commit("app.bsky.feed.like", "create", "3like", like),
            commit("app.bsky.graph.follow", "create", "3follow", follow),
        ]
    )
    assert len(created.refs_put) == 2
    # Later, in another batch, the deletes carry only the record keys.
    undone = run(
        [
            commit("app.bsky.feed.like", "delete", "3like", rev="3z1"),
            commit("app.bsky.graph.follow", "delete", "3follow", rev="3z2"),
        ],
        refs=created.refs_put,
    )
    unlike, unfollow = undone.events
    assert isinstance(unlike, EngagementRecorded)
    assert (unlike.post, unlike.post_author, unlike.delta) == (POST_URI, BOB, -1)
    assert isinstance(unfollow, FollowersChanged)
    assert (unfollow.page, unfollow.follower, unfollow.delta) == (BOB, DID, -1)
    assert sorted(undone.refs_deleted) == sorted(created.refs_put)


def test_create_and_delete_in_one_batch_cancel_out() -> None:
    like = {"subject": {"uri": POST_URI, "cid": "c"}, "createdAt": "2026-07-04T14:38:08Z"}
    batch = run(
        [
            commit("app.bsky.feed.like", "create", "3like", like),
            commit("app.bsky.feed.like", "delete", "3like", rev="3z1"),
        ]
    )
    assert [e.delta for e in batch.events if isinstance(e, EngagementRecorded)] == [1, -1]
    assert batch.refs_put == {}


def test_profile_identity_and_account_events_describe_pages() -> None:
    identity = {
        "did": DID,
        "time_us": 5,
        "kind": "identity",
        "identity": {"did": DID, "handle": "alice.bsky.social", "seq": 9, "time": "x"},
    }
    gone = {
        "did": DID,
        "time_us": 6,
        "kind": "account",
        "account": {"did": DID, "active": False, "status": "takendown", "seq": 10, "time": "x"},
    }
    back = {
        "did": DID,
        "time_us": 7,
        "kind": "account",
        "account": {"did": DID, "active": True, "seq": 11, "time": "x"},
    }
    batch = run(
        [
            commit("app.bsky.actor.profile", "create", "self", {"displayName": "Alice 🌸"}),
            json.dumps(identity).encode(),
            json.dumps(gone).encode(),
            json.dumps(back).encode(),
        ]
    )
    profile, handle, deactivated, reactivated = batch.events
    assert isinstance(profile, PageSeen)
    assert profile.display_name == "Alice 🌸"
    assert isinstance(handle, PageSeen)
    assert handle.handle == "alice.bsky.social"
    assert isinstance(deactivated, PageDeactivated)
    assert deactivated.status == "takendown"
    assert isinstance(reactivated, PageReactivated)
    assert reactivated.page == DID


def test_unknown_collections_and_kinds_are_skipped_not_rejected() -> None:
    batch = run(
        [
            commit("app.bsky.graph.block", "create", "3b", {"subject": BOB, "createdAt": "x"}),
            json.dumps({"did": DID, "time_us": 1, "kind": "sync"}).encode(),
        ]
    )
    assert batch.events == []
    assert batch.rejected == []
    assert sum(batch.skipped.values()) == 2


def test_the_same_source_event_always_gets_the_same_id(jetstream_lines: list[bytes]) -> None:
    first = [e.id for e in run(jetstream_lines).events]
    again = [e.id for e in run(jetstream_lines).events]
    assert first == again
    assert len(set(first)) == len(first)


def test_the_real_sample_counts_the_images_of_a_post_and_not_its_link_cards(
    jetstream_lines: list[bytes],
) -> None:
    posts = [e for e in run(jetstream_lines).events if isinstance(e, PostPublished)]
    media = {post.post.rsplit("/", 1)[1]: post.media for post in posts}
    assert {rkey: n for rkey, n in media.items() if n} == {"3mptbxs3hq22j": 1, "3mptbyo7tas2u": 1}
    assert media["3mptbyoeyc22k"] == media["3mptbyproxc2q"] == 0  # link cards (YouTube, a GIF)


def sample_embed(jetstream_lines: list[bytes], rkey: str) -> dict[str, Any]:
    (line,) = (json.loads(line) for line in jetstream_lines if rkey.encode() in line)
    embed: dict[str, Any] = line["commit"]["record"]["embed"]
    return embed


def test_images_a_video_and_the_media_of_a_quote_are_counted(
    jetstream_lines: list[bytes],
) -> None:
    images = sample_embed(jetstream_lines, "3mptbxs3hq22j")
    image = images["images"][0]
    blob = image["image"]
    quoted = {"uri": POST_URI, "cid": "bafyreiexample"}
    embeds = {
        "three images": {**images, "images": [image, image, image]},
        "a video": {"$type": "app.bsky.embed.video", "video": blob, "alt": "a clip"},
        "a quote with two images": {
            "$type": "app.bsky.embed.recordWithMedia",
            "record": {"$type": "app.bsky.embed.record", "record": quoted},
            "media": {**images, "images": [image, image]},
        },
        "a quote with a video": {
            "$type": "app.bsky.embed.recordWithMedia",
            "record": {"$type": "app.bsky.embed.record", "record": quoted},
            "media": {"$type": "app.bsky.embed.video", "video": blob},
        },
        "a quote": {"$type": "app.bsky.embed.record", "record": quoted},
        "a link card": sample_embed(jetstream_lines, "3mptbyoeyc22k"),
        "a kind not known yet": {"$type": "app.bsky.embed.gallery", "items": [image]},
        "no embed": None,
    }
    lines = [
        commit(
            "app.bsky.feed.post",
            "create",
            f"3mptbyqhi7s{i}f",
            post_record(name, **({"embed": embed} if embed else {})),
        )
        for i, (name, embed) in enumerate(embeds.items())
    ]
    batch = run(lines)
    assert not batch.rejected
    assert {e.text: e.media for e in batch.events if isinstance(e, PostPublished)} == {
        "three images": 3,
        "a video": 1,
        "a quote with two images": 2,
        "a quote with a video": 1,
        "a quote": 0,
        "a link card": 0,
        "a kind not known yet": 0,
        "no embed": 0,
    }


def test_an_edit_counts_the_media_of_the_new_version(jetstream_lines: list[bytes]) -> None:
    images = sample_embed(jetstream_lines, "3mptbyo7tas2u")
    record = post_record("now with two", embed={**images, "images": images["images"] * 2})
    (edited,) = run([commit("app.bsky.feed.post", "update", "3mptbyqhi7s2f", record)]).events
    assert isinstance(edited, PostEdited)
    assert edited.media == 2
