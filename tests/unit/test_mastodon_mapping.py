"""Mastodon stream lines to events, on the Status example of the Mastodon documentation."""

from __future__ import annotations

import json
from typing import Any

from hubbub.ingest.mapping.base import MappedBatch
from hubbub.ingest.mapping.mastodon import MastodonMapping
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import (
    EngagementRecorded,
    PageSeen,
    PostDeleted,
    PostEdited,
    PostPublished,
)
from tests.conftest import FIXTURES

GARGRON = "https://mastodon.social/@Gargron"
URI = "https://mastodon.social/users/Gargron/statuses/103270115826048975"


def run(lines: list[bytes], refs: dict[str, str] | None = None) -> MappedBatch:
    m = MastodonMapping(FixedClock(), 1 << 20, instance="mastodon.social")
    decoded = m.decode(lines, "t")
    batch = m.map(decoded, dict(refs or {}), "t")
    batch.rejected[:0] = decoded.rejected
    return batch


def envelope(event: str, payload: Any) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return json.dumps({"event": event, "payload": text}).encode()


def test_an_update_becomes_a_post_in_plain_text_and_a_page(mastodon_status: bytes) -> None:
    status = json.loads(mastodon_status)
    batch = run([envelope("update", status)])
    post, page = batch.events
    assert isinstance(post, PostPublished)
    assert post.post == URI
    assert post.author == GARGRON
    assert post.text.startswith('"I lost my inheritance with one wrong digit on my sort code"')
    assert "<" not in post.text
    assert "&quot;" not in post.text
    assert post.links == [
        "https://www.theguardian.com/money/2019/dec/07/"
        "i-lost-my-193000-inheritance-with-one-wrong-digit-on-my-sort-code"
    ]
    assert post.langs == ["en"]
    assert isinstance(page, PageSeen)
    assert (page.page, page.handle, page.display_name, page.followers_count) == (
        GARGRON,
        "Gargron@mastodon.social",
        "Eugen",
        322930,
    )


def test_a_bare_status_line_is_read_as_an_update(mastodon_status: bytes) -> None:
    compact = json.dumps(json.loads(mastodon_status)).encode()
    assert [type(e) for e in run([compact]).events] == [PostPublished, PageSeen]


def test_status_update_and_delete(mastodon_status: bytes) -> None:
    status = json.loads(mastodon_status)
    created = run([envelope("update", status)])
    edited_status = {**status, "content": "<p>edited</p>", "edited_at": "2019-12-08T04:00:00.000Z"}
    batch = run(
        [envelope("status.update", edited_status), envelope("delete", status["id"])],
        refs=created.refs_put,
    )
    edited, _page, deleted = batch.events
    assert isinstance(edited, PostEdited)
    assert edited.text == "edited"
    assert isinstance(deleted, PostDeleted)
    assert (deleted.post, deleted.author) == (URI, GARGRON)


def test_mentions_tags_replies_and_reblogs(mastodon_status: bytes) -> None:
    status = json.loads(mastodon_status)
    first = run([envelope("update", status)])
    reply = {
        **status,
        "id": "103270115826049999",
        "uri": URI + "9",
        "in_reply_to_id": status["id"],
        "content": '<p><span class="h-card"><a href="https://mastodon.social/@Gargron" '
        'class="u-url mention">@<span>Gargron</span></a></span> ça va? '
        '<a href="https://mastodon.social/tags/Caf%C3%A9" class="mention hashtag"'
        ' rel="tag">#<span>Café</span></a> 🎉</p>',
        "mentions": [{"id": "1", "username": "Gargron", "url": GARGRON, "acct": "Gargron"}],
        "tags": [{"name": "Café", "url": "https://mastodon.social/tags/Caf%C3%A9"}],
    }
    reblog = {
        **status,
        "id": "103270115826050000",
        "uri": URI + "/activity",
        "account": {
            **status["account"],
            "url": "https://other.example/@fan",
            "acct": "fan@other.example",
        },
        "reblog": status,
    }
    batch = run([envelope("update", reply), envelope("update", reblog)], refs=first.refs_put)
    post = batch.events[0]
    assert isinstance(post, PostPublished)
    assert post.text == "@Gargron ça va? #Café 🎉"
    assert post.mentions == [GARGRON]
    assert post.tags == ["café"]
    assert post.links == []
    assert post.reply_parent == URI
    engagements = [e for e in batch.events if isinstance(e, EngagementRecorded)]
    assert [(e.kind, e.post, e.actor) for e in engagements] == [
        ("reply", URI, GARGRON),
        ("repost", URI, "https://other.example/@fan"),
    ]


def test_other_stream_events_are_skipped_and_bad_ones_rejected() -> None:
    batch = run(
        [
            envelope("notification", {"id": "1"}),
            envelope("delete", "999"),  # never seen: nothing to undo
            envelope("update", {"id": "1"}),
            b'{"event": "update", "payload": "{not json"}',
        ]
    )
    assert batch.events == []
    assert sum(batch.skipped.values()) == 2
    reasons = [r.reason.split(":")[0] for r in batch.rejected]
    assert reasons == ["missing field", "malformed JSON"]


def test_a_post_counts_its_media_attachments(mastodon_status: bytes) -> None:
    status = json.loads(mastodon_status)
    attachments = json.loads((FIXTURES / "mastodon-media-attachments.json").read_bytes())
    with_media = {**status, "id": "103270115826049999", "media_attachments": attachments}
    batch = run([envelope("update", status), envelope("update", with_media)])
    assert [e.media for e in batch.events if isinstance(e, PostPublished)] == [0, 2]
