"""Mention suggestions: the use cases, over an index and the service's page view.

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

from collections.abc import Mapping
from typing import Protocol

import msgspec

from hubbub.mentions.normalize import query_terms, words
from hubbub.mentions.pages import Changes, Page

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
    """What the service needs of an index: pages by prefix, best score first."""

    def upsert(self, page_id: str, keys: list[str], score: int) -> None: ...

    def set_score(self, page_id: str, score: int) -> None: ...

    def remove(self, page_id: str) -> None: ...

    def top_k(self, prefix: str, k: int = 10) -> list[tuple[str, int]]: ...


def apply_changes(index: PrefixIndex, pages: Mapping[str, Page], changes: Changes) -> None:
    """Bring the index in line with pages that were renamed, rescored or (de)activated."""
    for page_id in changes.renamed:
        page = pages[page_id]
        if page.suggestible:
            index.upsert(page_id, page.keys(), page.followers)
        else:
            index.remove(page_id)
    for page_id in changes.rescored:
        page = pages[page_id]
        if page.suggestible:
            index.set_score(page_id, page.followers)


def suggest(
    index: PrefixIndex, pages: Mapping[str, Page], query: str, limit: int = 10
) -> list[Suggestion]:
    """The `limit` most followed pages matching `query` (InvalidQuery if it cannot be)."""
    terms = query_terms(query)
    limit = max(1, min(limit, MAX_LIMIT))
    typed = "".join(terms)  # as one key: "swift.o", or "taylor sw" run together
    found = dict(index.top_k(typed, limit))
    parts = [part for term in terms for part in words(term)]
    if parts and parts != [typed]:
        found.update(_matching_all_terms(index, pages, parts, limit))
    best = sorted(found.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [_suggestion(pages[page_id]) for page_id, _ in best]


def _matching_all_terms(
    index: PrefixIndex, pages: Mapping[str, Page], terms: list[str], limit: int
) -> dict[str, int]:
    lead = max(terms, key=len)
    others = list(terms)
    others.remove(lead)
    fetch = limit * _FIRST_FETCH
    while True:
        candidates = index.top_k(lead, fetch)
        found = {
            page_id: score
            for page_id, score in candidates
            if _has_prefixes(pages[page_id].keys(), others)
        }
        if len(found) >= limit or len(candidates) < fetch or fetch >= _MAX_FETCH:
            return found
        fetch *= 4


def _has_prefixes(keys: list[str], terms: list[str]) -> bool:
    return all(any(key.startswith(term) for key in keys) for term in terms)


def _suggestion(page: Page) -> Suggestion:
    return Suggestion(page.id, page.handle, page.display_name, page.followers, page.source)
