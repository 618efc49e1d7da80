"""The mentions service's own view of pages, projected from the event log.

Pure functions over plain data: `project` folds `PageSeen`, `FollowersChanged`,
`PageDeactivated` and `PageReactivated` events into `Page` records and says which pages
changed, so an index (any backend) updates only those. Other events are ignored.

- `PageSeen` sets what it says (a None field leaves the old value): handle, display
  name, and, from Mastodon, the absolute follower count.
- `FollowersChanged` adds its delta (Bluesky gives only deltas); a count never goes
  below zero.
- `PageDeactivated` takes the page out of suggestions until `PageReactivated`.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field

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


def project(pages: MutableMapping[str, Page], events: Iterable[Event]) -> Changes:
    """Fold page events into `pages`; returns what changed."""
    changes = Changes()
    for event in events:
        if isinstance(event, PageSeen):
            _seen(pages, event, changes)
        elif isinstance(event, FollowersChanged):
            page = pages.get(event.page) or _new(pages, event.page, event.source)
            page.followers = max(page.followers + event.delta, 0)
            changes.rescored.add(page.id)
        elif isinstance(event, PageDeactivated | PageReactivated):
            page = pages.get(event.page) or _new(pages, event.page, event.source)
            page.active = isinstance(event, PageReactivated)
            changes.renamed.add(page.id)
    changes.rescored -= changes.renamed
    return changes


def _new(pages: MutableMapping[str, Page], page_id: str, source: str) -> Page:
    page = pages[page_id] = Page(page_id, source)
    return page


def _seen(pages: MutableMapping[str, Page], event: PageSeen, changes: Changes) -> None:
    page = pages.get(event.page) or _new(pages, event.page, event.source)
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
