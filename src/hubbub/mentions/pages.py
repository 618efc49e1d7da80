"""The mentions service's own view of pages, projected from the event log.

`project` folds `PageSeen`, `FollowersChanged`, `PageDeactivated` and `PageReactivated`
events into `Page` records held by any `PageRecords` (a dict, the in-memory store, rows
loaded from a database) and says which pages changed, so a backend writes only those.
Other events are ignored.

- `PageSeen` sets what it says (a None field leaves the old value): handle, display
  name, and, from Mastodon, the absolute follower count.
- `FollowersChanged` adds its delta (Bluesky gives only deltas); a count never goes
  below zero.
- `PageDeactivated` takes the page out of suggestions until `PageReactivated`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from hubbub.kernel.events import (
    Event,
    FollowersChanged,
    PageDeactivated,
    PageReactivated,
    PageSeen,
)
from hubbub.mentions.normalize import normalize, words


@dataclass(slots=True)
class Page:
    id: str
    source: str
    handle: str | None = None
    display_name: str | None = None
    followers: int = 0
    active: bool = True

    def keys(self) -> list[str]:
        """What a query prefix is matched against: the handle, each word of the name."""
        found = [normalize(self.handle)] if self.handle else []
        found += words(self.display_name) if self.display_name else []
        return list(dict.fromkeys(key for key in found if key))

    @property
    def suggestible(self) -> bool:
        return self.active and bool(self.handle or self.display_name)


@dataclass(slots=True)
class Changes:
    """The pages whose keys or activity changed, and those whose score alone did."""

    renamed: set[str] = field(default_factory=set)
    rescored: set[str] = field(default_factory=set)


class PageRecords(Protocol):
    """Where `project` reads and writes pages: `get` gives a copy, `put` stores it."""

    def get(self, page_id: str) -> Page | None: ...

    def put(self, page: Page) -> None: ...


class PageDict(dict[str, Page]):
    """Pages in a plain dict, as `PageRecords`."""

    def put(self, page: Page) -> None:
        self[page.id] = page


def project(pages: PageRecords, events: Iterable[Event]) -> Changes:
    """Fold page events into `pages`; returns what changed."""
    changes = Changes()
    for event in events:
        if isinstance(event, PageSeen):
            page = pages.get(event.page) or Page(event.page, event.source)
            _seen(page, event, changes)
            pages.put(page)
        elif isinstance(event, FollowersChanged):
            page = pages.get(event.page) or Page(event.page, event.source)
            page.followers = max(page.followers + event.delta, 0)
            pages.put(page)
            changes.rescored.add(page.id)
        elif isinstance(event, PageDeactivated | PageReactivated):
            page = pages.get(event.page) or Page(event.page, event.source)
            page.active = isinstance(event, PageReactivated)
            pages.put(page)
            changes.renamed.add(page.id)
    changes.rescored -= changes.renamed
    return changes


def _seen(page: Page, event: PageSeen, changes: Changes) -> None:
    before = (page.handle, page.display_name)
    if event.handle is not None:
        page.handle = event.handle
    if event.display_name is not None:
        page.display_name = event.display_name
    if (page.handle, page.display_name) != before:
        changes.renamed.add(page.id)
    if event.followers_count is not None and event.followers_count != page.followers:
        page.followers = event.followers_count
        changes.rescored.add(page.id)
