"""Ports of the ingest service's own state (it shares no tables with other services)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Protocol

SOURCES: Final = ("jetstream", "mastodon")
"""The sources ingest maps: what `hubbub ingest` and `POST /v1/ingest/{source}` take."""


class TooManyIngestors(RuntimeError):
    """`HUBBUB_MAX_INGESTORS` are live already; the message says so."""


class IngestState(Protocol):
    """Refs (what a remembered record pointed to) and source cursors.

    `get_refs` returns only the keys it knows. `apply_refs` is idempotent: putting a
    key again overwrites it, deleting an unknown key does nothing. It writes all its puts
    and deletes or none (a key both put and deleted in one call ends deleted), and they
    are durable when it returns. `save_cursor` is durable when it returns, so a
    restarted connector resumes from it; `load_cursor` of a name never saved is `None`.
    A store that fails raises its own error; nothing is retried here.

    Refs expire: a ref not put again is forgotten between half the adapter's ref
    lifetime and that lifetime after it was last put (setting `HUBBUB_INGEST_REF_DAYS`,
    90 days by default), so the refs of likes, reposts and follows do not grow without
    bound. An undo of a record older than that
    finds no ref and is counted as skipped ("delete of a record never seen"), not
    applied: a follower count may then stay one too high, which is the price of a
    bounded table. Cursors never expire (there is one per source).
    """

    async def get_refs(self, keys: Iterable[str]) -> dict[str, str]: ...

    async def apply_refs(self, put: Mapping[str, str], deleted: Iterable[str]) -> None: ...

    async def load_cursor(self, name: str) -> int | None: ...

    async def save_cursor(self, name: str, value: int) -> None: ...

    async def close(self) -> None: ...
