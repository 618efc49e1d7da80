"""The `memory` mentions backend: the compact in-process index (`PageStore`).

Each replica builds it from the log and snapshots it with the log position to a
directory of memory-mapped arrays, so a restart loads the snapshot and reads only
what the log gained since.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import msgspec
import structlog

from hubbub.eventlog.ports import Record
from hubbub.mentions.matching import MAX_LIMIT, Suggestion, suggest
from hubbub.mentions.normalize import query_terms, words
from hubbub.mentions.pages import project
from hubbub.mentions.store import PageStore

log = structlog.get_logger("hubbub.mentions")

FOLD_CHUNK = 2_000
"""Events folded between two yields to the event loop, so queries wait at most a few ms."""


class MemoryMentions:
    """The in-process index and the log position it reflects."""

    name = "memory"

    def __init__(self, store: PageStore | None = None, position: int = 0) -> None:
        self.store = store if store is not None else PageStore()
        self._position = position

    @classmethod
    def load(cls, directory: Path) -> MemoryMentions:
        """The backend a snapshot holds, or an empty one if there is none (or it is unusable,
        which is logged: the log has everything to rebuild it)."""
        if not directory.exists():
            return cls()
        try:
            store, meta = PageStore.load(directory)
        except ValueError as error:
            log.warning("mentions snapshot ignored", path=str(directory), error=str(error))
            return cls()
        position = meta.get("position", 0)
        return cls(store, position if isinstance(position, int) else 0)

    def save(self, directory: Path) -> None:
        """Snapshot the index with its position, atomically."""
        self.store.save(directory, {"position": self._position})

    async def position(self) -> int:
        return self._position

    async def page_count(self) -> int:
        return len(self.store)

    async def apply(self, records: Sequence[Record]) -> None:
        for start in range(0, len(records), FOLD_CHUNK):
            if start:
                await asyncio.sleep(0)
            project(self.store, (r.event for r in records[start : start + FOLD_CHUNK]))
        if records:
            self._position = records[-1].position

    async def suggest(self, query: str, limit: int = 10) -> list[Suggestion]:
        return suggest(self.store, query, limit)

    async def suggest_json(self, query: str, limit: int = 10) -> bytes:
        return self.suggest_json_now(query, limit)

    def suggest_json_now(self, query: str, limit: int = 10) -> bytes:
        """`suggest` as JSON. A query of one word, the common case while typing, is
        written straight from the store's columns, with no object per page."""
        terms = query_terms(query)
        if len(terms) == 1 and words(terms[0]) == terms:
            found = self.store.top_json(terms[0], max(1, min(limit, MAX_LIMIT)))
            if found is not None:
                return found
        return msgspec.json.encode(suggest(self.store, query, limit))

    def suggest_now(self, query: str, limit: int = 10) -> list[Suggestion]:
        """`suggest` without a coroutine, for callers in a hurry (benchmarks, the CLI)."""
        return suggest(self.store, query, limit)

    async def close(self) -> None:
        return None
