"""Mention suggestions: matching a query against an index and the service's page view.

A query is split into terms (`query_terms`). A page matches when the terms typed
together are a prefix of one of its keys ("swift.o" finds `swift.org`, "taylor sw"
finds `taylorswift.bsky.social`), or when every word of the terms is a prefix of one
of its keys (its handle, a word of its name), in any order. Pages are ranked by
followers.

The index answers one prefix at a time, best first, so a query of several terms asks
it about its longest term (the most selective) and keeps the pages that match the
others, asking for more when too few do.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from hubbub.mentions.normalize import query_terms, words
from hubbub.mentions.pages import Page

MAX_LIMIT = 50
_FIRST_FETCH = 8  # candidates asked per wanted result, for queries of several terms
_MAX_FETCH = 4096


class Suggestion(msgspec.Struct, frozen=True):
    id: str
    handle: str | None
    display_name: str | None
    followers: int
    source: str


class PrefixIndex(Protocol):
    """What matching needs of an index: pages by key prefix, most followed first."""

    def top_pages(self, prefix: str, k: int = 10) -> list[Page]: ...


def suggest(index: PrefixIndex, query: str, limit: int = 10) -> list[Suggestion]:
    """The `limit` most followed pages matching `query` (InvalidQuery if it cannot be)."""
    terms = query_terms(query)
    limit = max(1, min(limit, MAX_LIMIT))
    typed = "".join(terms)  # as one key: "swift.o", or "taylor sw" run together
    found = {page.id: page for page in index.top_pages(typed, limit)}
    parts = [part for term in terms for part in words(term)]
    if parts and parts != [typed]:
        found.update(_matching_all_terms(index, parts, limit))
    best = sorted(found.values(), key=lambda page: (-page.followers, page.id))[:limit]
    return [
        Suggestion(page.id, page.handle, page.display_name, page.followers, page.source)
        for page in best
    ]


def _matching_all_terms(index: PrefixIndex, terms: list[str], limit: int) -> dict[str, Page]:
    lead = max(terms, key=len)
    others = list(terms)
    others.remove(lead)
    fetch = limit * _FIRST_FETCH
    while True:
        candidates = index.top_pages(lead, fetch)
        found = {page.id: page for page in candidates if _has_prefixes(page.keys(), others)}
        if len(found) >= limit or len(candidates) < fetch or fetch >= _MAX_FETCH:
            return found
        fetch *= 4


def _has_prefixes(keys: list[str], terms: list[str]) -> bool:
    return all(any(key.startswith(term) for key in keys) for term in terms)
