"""The mentions service's log consumer: it builds its own index from the `pages` topic.

Each replica reads the log itself from its own position, so replicas scale out by
being added; the position is kept with the index it produced (in memory for now).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import structlog

from hubbub.eventlog.port import EventLog, LogUnavailable
from hubbub.kernel.events import PAGES
from hubbub.mentions.index import MentionsIndex
from hubbub.mentions.pages import Page, project
from hubbub.mentions.service import Suggestion, apply_changes, suggest

READ_BATCH = 20_000
log = structlog.get_logger("hubbub.mentions")


class _SavedPage(msgspec.Struct, array_like=True):
    id: str
    source: str
    handle: str | None
    display_name: str | None
    followers: int
    active: bool


class _Snapshot(msgspec.Struct):
    version: int
    position: int
    pages: list[_SavedPage]


SNAPSHOT_VERSION = 1


@dataclass
class MentionsView:
    """Pages, their index, and the last log position folded into them."""

    pages: dict[str, Page] = field(default_factory=dict)
    index: MentionsIndex = field(default_factory=MentionsIndex)
    position: int = 0

    def suggest(self, query: str, limit: int = 10) -> list[Suggestion]:
        return suggest(self.index, self.pages, query, limit)

    def save(self, path: Path) -> None:
        """Write the pages with the position they reflect, atomically (a crash leaves the
        previous snapshot), so a restart resumes the log right after that position."""
        saved = [
            _SavedPage(p.id, p.source, p.handle, p.display_name, p.followers, p.active)
            for p in self.pages.values()
        ]
        data = msgspec.msgpack.encode(_Snapshot(SNAPSHOT_VERSION, self.position, saved))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> MentionsView:
        """The view a snapshot holds, its index rebuilt; an empty view if there is none."""
        if not path.exists():
            return cls()
        snapshot = msgspec.msgpack.decode(path.read_bytes(), type=_Snapshot)
        if snapshot.version != SNAPSHOT_VERSION:
            log.warning("mentions snapshot of another version ignored", path=str(path))
            return cls()
        pages = {
            p.id: Page(p.id, p.source, p.handle, p.display_name, p.followers, p.active)
            for p in snapshot.pages
        }
        index = MentionsIndex.build(
            (page.id, page.keys(), page.followers) for page in pages.values() if page.suggestible
        )
        return cls(pages, index, snapshot.position)


async def catch_up(view: MentionsView, event_log: EventLog) -> int:
    """Fold every page event after `view.position` into the view; returns how many."""
    folded = 0
    while records := await event_log.read(PAGES, view.position + 1, READ_BATCH):
        changes = project(view.pages, (record.event for record in records))
        apply_changes(view.index, view.pages, changes)
        view.position = records[-1].position
        folded += len(records)
    return folded


async def follow(view: MentionsView, event_log: EventLog, interval_s: float = 0.2) -> None:
    """Keep the view caught up with the log until cancelled (a live replica's loop).

    Polling every `interval_s` keeps answers within well under the 2 s freshness the
    service promises. A log that is briefly unreachable is retried, not fatal.
    """
    while True:
        try:
            await catch_up(view, event_log)
        except LogUnavailable as error:
            log.warning("mentions cannot read the log", error=str(error))
        await asyncio.sleep(interval_s)
