"""A post's text as each network counts and reads it.

- **Bluesky** counts graphemes (user-perceived characters, Unicode's extended grapheme
  clusters: an emoji with its modifiers is one) and at most 300 of them. Mentions, links
  and hashtags are not found by the network in the text: the client sends them as
  *facets*, each a byte range of the text's UTF-8 (start inclusive, end exclusive) with
  what it is (`app.bsky.richtext.facet#mention` with the page's did, `#link` with the
  URI, `#tag` with the tag without `#`). A mention whose handle resolves to no did gets no
  facet: it stays plain text, as the Bluesky app leaves it.
- **Mastodon** counts characters (code points), except that every URL counts as
  `characters_reserved_per_url` (23 by default) and a mention `@user@domain` counts as
  `@user`; the instance says its limit (`/api/v2/instance`).

The patterns follow the Bluesky app's own (`@atproto/api`'s RichText detection): a
mention is `@` and a handle (labels of letters, digits and hyphens, with a dot, the last
label not all digits) after the start or a space or `(`; a link is `http(s)://` up to the
next space, without the punctuation that ends a sentence; a hashtag is `#` and at most 64
characters up to a space, without the punctuation that ends a sentence, not all digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import regex

BLUESKY_GRAPHEMES: Final = 300
MASTODON_URL_LENGTH: Final = 23

_MENTION = re.compile(
    r"(?:^|(?<=[\s(]))@((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)"
)
_LINK = re.compile(r"(?:^|(?<=[\s(]))(https?://[^\s]+)", re.IGNORECASE)
_TAG = re.compile(r"(?:^|(?<=\s))[#\uff03](\S+)")
_TRAILING: Final = ".,;:!?)\"'"
_MASTODON_MENTION = re.compile(r"(?:^|(?<=[^\w/]))@(\w+)@[\w.-]+\w", re.UNICODE)


def _trimmed(uri: str) -> str:
    """A link without the punctuation that ends its sentence; a closing parenthesis
    stays when the link opened it (Wikipedia's `Python_(language)`)."""
    while uri and uri[-1] in _TRAILING:
        if uri[-1] == ")" and uri.count("(") >= uri.count(")"):
            break
        uri = uri[:-1]
    return uri


def graphemes(text: str) -> int:
    """How many user-perceived characters `text` has (extended grapheme clusters)."""
    return len(regex.findall(r"\X", text))


@dataclass(frozen=True)
class Facet:
    """One rich-text feature of a Bluesky post: UTF-8 byte range and what it is."""

    start: int
    end: int
    kind: str  # mention, link or tag
    value: str  # the did, the URI, or the tag without #

    def record(self) -> dict[str, Any]:
        """As `app.bsky.richtext.facet` holds it."""
        feature: dict[str, str] = {"$type": f"app.bsky.richtext.facet#{self.kind}"}
        feature[{"mention": "did", "link": "uri", "tag": "tag"}[self.kind]] = self.value
        return {"index": {"byteStart": self.start, "byteEnd": self.end}, "features": [feature]}


def _bytes_at(text: str, index: int) -> int:
    return len(text[:index].encode())


def _spans(pattern: re.Pattern[str], text: str) -> Iterator[tuple[int, int, str]]:
    for found in pattern.finditer(text):
        yield found.start(), found.end(), found.group(1) or ""


def facets(text: str, did_of: Callable[[str], str | None]) -> list[Facet]:
    """The mentions, links and hashtags of `text` as Bluesky facets, in text order;
    `did_of` names the did of a handle (None: unknown, and the mention gets no facet)."""
    found: list[Facet] = []
    for start, end, handle in _spans(_MENTION, text):
        did = did_of(handle.lower())
        if did is not None:
            found.append(Facet(_bytes_at(text, start), _bytes_at(text, end), "mention", did))
    for start, end, uri in _spans(_LINK, text):
        trimmed = _trimmed(uri)
        end = start + len(trimmed)
        found.append(Facet(_bytes_at(text, start), _bytes_at(text, end), "link", trimmed))
    for start, _, written in _spans(_TAG, text):
        tag = written.rstrip(_TRAILING)
        if not tag or tag.isdigit() or len(tag) > 64:
            continue
        end = start + 1 + len(tag)
        found.append(Facet(_bytes_at(text, start), _bytes_at(text, end), "tag", tag))
    return sorted(found, key=lambda facet: facet.start)


def mastodon_length(text: str, url_length: int = MASTODON_URL_LENGTH) -> int:
    """`text`'s length as a Mastodon instance counts it against its limit."""

    def link(found: re.Match[str]) -> str:
        uri = found.group(1)
        return "x" * url_length + uri[len(_trimmed(uri)) :]  # what ends the sentence

    counted = _LINK.sub(link, text)
    counted = _MASTODON_MENTION.sub(lambda m: "@" + m.group(1), counted)
    return len(counted)
