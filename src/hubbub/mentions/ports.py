"""The mentions port: what every backend that answers @mention queries provides.

A backend folds page events from the log into its own index and answers queries
from it. It keeps the log position it has folded with what it built, so a restart
resumes right after it. Two backends exist: `memory` (a compact in-process index,
the one to serve from) and `postgres` (plain SQL, the baseline and the "before" of a
live migration). One contract suite runs against both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hubbub.eventlog.ports import Record
from hubbub.mentions.matching import Suggestion
from hubbub.settings import MENTIONS_BACKENDS as BACKENDS

__all__ = ["BACKENDS", "MentionsBackend"]


class MentionsBackend(Protocol):
    name: str

    async def position(self) -> int:
        """The last log position of the `pages` topic folded into the index (0: none)."""
        ...

    async def apply(self, records: Sequence[Record]) -> None:
        """Fold these page records, the next ones after `position()` in log order, and
        advance the position to the last of them, all or nothing."""
        ...

    async def suggest(self, query: str, limit: int = 10) -> list[Suggestion]:
        """The `limit` most followed pages matching `query` (InvalidQuery if it cannot be)."""
        ...

    async def suggest_json(self, query: str, limit: int = 10) -> bytes:
        """`suggest`, encoded as the JSON array the API answers with."""
        ...

    async def page_count(self) -> int:
        """Pages known, suggestible or not."""
        ...

    async def close(self) -> None: ...
