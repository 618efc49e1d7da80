"""A post's text as each network counts and reads it: graphemes and facets for Bluesky,
characters with URLs and mentions shortened for Mastodon."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hubbub.publishing.text import facets, graphemes, mastodon_length

DIDS = {"alice.bsky.social": "did:plc:alice", "bob.test": "did:plc:bob"}


def spans(text: str) -> list[tuple[str, str, str]]:
    """Each facet as (kind, the bytes it covers, its value)."""
    raw = text.encode()
    return [(f.kind, raw[f.start : f.end].decode(), f.value) for f in facets(text, DIDS.get)]


def test_graphemes_count_what_a_person_sees_as_one_character() -> None:
    assert graphemes("hello") == 5
    assert graphemes("👋🏽") == 1  # a hand and its skin tone
    assert graphemes("👨‍👩‍👧") == 1  # a family, joined
    assert graphemes("e\u0301") == 1  # e and a combining acute
    assert graphemes("🇫🇷") == 1  # a flag: two regional indicators


def test_facets_cover_utf8_bytes_of_mentions_links_and_hashtags() -> None:
    text = "Café with @alice.bsky.social 👋🏽 see https://example.com/a(b). #Python!"
    assert spans(text) == [
        ("mention", "@alice.bsky.social", "did:plc:alice"),
        ("link", "https://example.com/a(b)", "https://example.com/a(b)"),
        ("tag", "#Python", "Python"),
    ]
    (mention, *_) = facets(text, DIDS.get)
    assert (mention.start, mention.end) == (11, 29)  # "Café " is 6 bytes: é is two
    assert mention.record() == {
        "index": {"byteStart": 11, "byteEnd": 29},
        "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:alice"}],
    }


def test_what_is_not_a_mention_link_or_tag_gets_no_facet() -> None:
    assert spans("mail me at ed@bob.test, #123, or @unknown.example") == []
    assert spans("(@bob.test) and end.") == [("mention", "@bob.test", "did:plc:bob")]
    assert spans("#" + "x" * 65) == []  # longer than a tag may be


@given(st.text(max_size=200))
def test_facets_always_fall_on_character_boundaries_inside_the_text(text: str) -> None:
    raw = text.encode()
    for facet in facets(text, lambda handle: f"did:plc:{len(handle)}"):
        assert 0 <= facet.start < facet.end <= len(raw)
        raw[facet.start : facet.end].decode()  # whole characters, never half of one


def test_mastodon_counts_a_url_as_23_and_a_remote_mention_by_its_username() -> None:
    assert mastodon_length("hi") == 2
    url = "https://example.com/" + "x" * 100
    assert mastodon_length(f"see {url}") == 4 + 23
    assert mastodon_length(f"see {url}.") == 4 + 23 + 1  # the full stop is the sentence's
    assert mastodon_length("hi @bob@mastodon.social!") == len("hi @bob!")
