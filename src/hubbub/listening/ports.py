"""Listening's ports: where saved searches and their matches are kept
(`ListeningStore`) and how the handles a search names become page ids (`Pages`).

A search is a tenant's query (`hubbub.listening.query`); the `listening` worker matches
every post of the firehose against every active search and appends a `SearchMatched`
per (search, post) to `matches`; the fold keeps them here for reading. The store's
contract, which every adapter meets (`tests/contract/test_listening_stores.py`):

- Isolation. Every read and change names the tenant: another tenant's search or match
  is invisible and untouched, as one that does not exist.
- Searches. `put_search` adds or replaces one, refusing (`Refused`) a new one beyond
  the tenant's `max_searches` in the same transaction that counts them.
- Positions. The log positions the matches were folded up to change only in
  `apply`, in the transaction that writes them; `apply` refuses (`StalePositions`) a
  fold read from positions that have moved since. The matcher's own positions (of
  `posts` and `deletes`) are kept with `advance`, after what they produced was appended
  (appends are idempotent by event id, so a crash between the two re-appends nothing new).
- Idempotency. A match is unique by (tenant, search, post): applying it again changes
  nothing; a withdrawn one is deleted.
- Bounds. `prune` keeps at most `keep_per_search` matches per search, and none older
  than a moment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class StalePositions(RuntimeError):
    """The positions a fold was read from are no longer the store's: read them again."""


class Refused(ValueError):
    """A change the tenant may not make (over a limit); the message says why."""


class NotFound(LookupError):
    """No such search for this tenant (another tenant's is not found either)."""


@dataclass(frozen=True)
class Search:
    """A tenant's saved search (a stream)."""

    tenant: str
    id: str
    name: str
    query: str
    terms: int
    costly: bool
    created_by: str
    created_us: int
    updated_us: int
    pages: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """What each handle of the query resolved to when it was saved."""
    from_position: int = 0
    """The head of `posts` when it was saved: the live matcher takes the posts after it,
    a backfill the ones up to it."""
    backfilled_to: int = 0
    """How far a backfill has gone (a position in `posts`); 0: not started."""


@dataclass(frozen=True)
class Match:
    """A post that matched a search (or reached an inbox: `search` is `inbox:CHANNEL`)."""

    tenant: str
    search: str
    post: str
    author: str
    text: str
    langs: Sequence[str] = ()
    links: Sequence[str] = ()
    media: int = 0
    reply_parent: str | None = None
    created_at: int = 0
    position: int = 0
    """Its position in `matches`: the order of the stored matches and the live stream."""
    kind: str = "match"


@dataclass(frozen=True, order=True)
class Withdrawn:
    """A matched post was deleted."""

    tenant: str
    search: str
    post: str


@dataclass(frozen=True)
class MatchPage:
    """Stored matches, newest first; `more` when older ones follow. `folded` is the
    position in `matches` the store held when they were read: every match up to it
    that was not withdrawn is stored, so a live view of them resumes from there (the
    matches made but not stored yet are then sent live, however far the fold is
    behind)."""

    matches: list[Match]
    more: bool
    folded: int = 0


@dataclass(frozen=True)
class MatchFilter:
    """Which stored matches to read: `text` within their text (any case), `lang` one of
    their languages, `since_us` / `until_us` their creation time, `before` a position."""

    text: str = ""
    lang: str = ""
    since_us: int | None = None
    until_us: int | None = None
    before: int | None = None
    limit: int = 50


class ListeningStore(Protocol):
    """Saved searches, their stored matches, and the positions they were folded to."""

    def searches(self, tenant: str | None = None) -> list[Search]:
        """The tenant's searches by name (every tenant's with None)."""
        ...

    def search(self, tenant: str, search: str) -> Search | None: ...

    def put_search(self, search: Search, max_searches: int) -> None:
        """Add or replace; `Refused` when a new one would exceed `max_searches`."""
        ...

    def remove_search(self, tenant: str, search: str) -> bool:
        """Remove it and its stored matches; False when there was none."""
        ...

    def mark_backfilled(self, tenant: str, search: str, position: int) -> None: ...

    def positions(self) -> dict[str, int]: ...

    def advance(self, reached: Mapping[str, int]) -> None:
        """Move the matcher's positions forward (never back)."""
        ...

    def apply(
        self,
        matched: Sequence[Match],
        withdrawn: Sequence[Withdrawn],
        reached: Mapping[str, int],
        read_from: Mapping[str, int],
    ) -> int:
        """Keep `matched`, delete `withdrawn`, move the fold's positions; returns the
        matches kept (new ones)."""
        ...

    def matched(self, posts: Sequence[str]) -> list[Withdrawn]:
        """The stored matches of these posts, as what their deletion withdraws."""
        ...

    def matches(self, tenant: str, search: str, chosen: MatchFilter) -> MatchPage: ...

    def prune(self, keep_per_search: int, before_us: int) -> int:
        """Drop matches beyond `keep_per_search` per search and those created before
        `before_us`; returns how many went."""
        ...

    def close(self) -> None: ...


class Pages(Protocol):
    """The page ids a handle names, as the firehose has shown them (the mentions
    service's directory), asked for a tenant; empty when none is known or the directory
    does not answer (the query still matches the handle written in a post's text)."""

    async def resolve(self, tenant: str, handle: str) -> list[str]: ...

    async def close(self) -> None: ...
