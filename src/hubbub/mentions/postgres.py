"""The `postgres` mentions backend: pages and their keys in plain SQL tables.

It is the baseline the in-memory index is measured against, and the "before" of a
live migration. A page's keys (its normalized handle and name words, as `Page.keys`)
are rows of `mention_keys`; a query finds the pages with a key in the prefix's range
through a B-tree in byte order (`COLLATE "C"`), then sorts them by followers. That
slows down as a short prefix covers more pages, so a prefix of up to three characters
is answered from a table of its most followed pages instead, kept up to date in the
same transaction as the pages (`hubbub.mentions.postgres_top`), as a competent
engineer would precompute it.

Events are folded with the same `project` as every backend: the touched pages are read,
changed in Python, and written back with the log position in one transaction, so a
crash never counts an event twice. Queries never build SQL from strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec
import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from hubbub.eventlog.ports import Record
from hubbub.kernel.events import FollowersChanged, PageDeactivated, PageReactivated, PageSeen
from hubbub.mentions import postgres_top
from hubbub.mentions.matching import MAX_LIMIT, Suggestion
from hubbub.mentions.normalize import query_terms, words
from hubbub.mentions.pages import Page, PageDict, project

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS mention_pages (
        id text PRIMARY KEY,
        source text NOT NULL,
        handle text,
        display_name text,
        followers bigint NOT NULL DEFAULT 0,
        active boolean NOT NULL DEFAULT true)""",
    """CREATE TABLE IF NOT EXISTS mention_keys (
        key text COLLATE "C" NOT NULL,
        page_id text NOT NULL,
        PRIMARY KEY (page_id, key))""",
    "CREATE INDEX IF NOT EXISTS mention_keys_by_key ON mention_keys (key)",
    """CREATE TABLE IF NOT EXISTS mention_position (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        position bigint NOT NULL)""",
    "INSERT INTO mention_position (position) VALUES (0) ON CONFLICT DO NOTHING",
)

_PAGE_EVENTS = (PageSeen, FollowersChanged, PageDeactivated, PageReactivated)
_ABOVE = "\U0010ffff"  # sorts after any character that can follow a prefix, in byte order

_BY_PREFIX = """
    SELECT p.id, p.handle, p.display_name, p.followers, p.source
    FROM mention_pages p
    WHERE p.id IN (SELECT k.page_id FROM mention_keys k WHERE k.key >= %s AND k.key < %s)
    ORDER BY p.followers DESC, p.id
    LIMIT %s"""

_BY_ALL_WORDS = """
    SELECT p.id, p.handle, p.display_name, p.followers, p.source
    FROM mention_pages p
    WHERE p.id IN (SELECT k.page_id FROM mention_keys k WHERE k.key >= %s AND k.key < %s)
      AND NOT EXISTS (
        SELECT 1 FROM unnest(%s::text[]) AS t (word)
        WHERE NOT EXISTS (
            SELECT 1 FROM mention_keys k
            WHERE k.page_id = p.id AND k.key >= t.word AND k.key < t.word || %s))
    ORDER BY p.followers DESC, p.id
    LIMIT %s"""

_UPSERT_PAGE = """
    INSERT INTO mention_pages (id, source, handle, display_name, followers, active)
    VALUES (%s, %s, %s, %s, %s, %s)
    ON CONFLICT (id) DO UPDATE SET
        source = excluded.source, handle = excluded.handle,
        display_name = excluded.display_name, followers = excluded.followers,
        active = excluded.active"""


def _key_rows(pages: Iterable[Page]) -> list[tuple[str, str]]:
    return [(key, page.id) for page in pages if page.suggestible for key in page.keys()]


def _chunks(pages: Iterable[Page], size: int) -> Iterator[list[Page]]:
    part: list[Page] = []
    for page in pages:
        part.append(page)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


class PostgresMentions:
    """Mentions in PostgreSQL; `connect` creates the tables if they are missing."""

    name = "postgres"

    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]):
        self._pool = pool

    @classmethod
    async def connect(cls, conninfo: str, *, max_connections: int = 4) -> PostgresMentions:
        """A backend on the database `conninfo` names (raises psycopg.OperationalError)."""
        pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_connections,
            open=False,
            kwargs={"autocommit": True, "row_factory": tuple_row},
        )
        await pool.open(wait=True, timeout=10)
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(postgres_top.LOCK)
            for statement in (*SCHEMA, *postgres_top.SCHEMA):
                await conn.execute(statement)
            await postgres_top.ensure_built(conn)
        backend = cls(pool)
        await backend.warm()
        return backend

    async def warm(self) -> None:
        """Ask each one-character prefix once, so the top table's index and the pages
        it names are in memory and the statements planned before the first query."""
        async with self._pool.connection() as conn:
            found = await conn.execute("SELECT DISTINCT left(prefix, 1) FROM mention_top")
            for (prefix,) in await found.fetchall():
                await conn.execute(postgres_top.BY_SHORT_PREFIX, (prefix, MAX_LIMIT))

    async def position(self) -> int:
        async with self._pool.connection() as conn:
            row = await (await conn.execute("SELECT position FROM mention_position")).fetchone()
        return int(row[0]) if row else 0

    async def page_count(self) -> int:
        async with self._pool.connection() as conn:
            row = await (await conn.execute("SELECT count(*) FROM mention_pages")).fetchone()
        return int(row[0]) if row else 0

    async def apply(self, records: Sequence[Record]) -> None:
        if not records:
            return
        events = [r.event for r in records if isinstance(r.event, _PAGE_EVENTS)]
        touched = sorted({e.page for e in events})
        async with self._pool.connection() as conn, conn.transaction():
            pages = PageDict()
            if touched:
                rows = await conn.execute(
                    "SELECT id, source, handle, display_name, followers, active"
                    " FROM mention_pages WHERE id = ANY(%s) FOR UPDATE",
                    (touched,),
                )
                for row in await rows.fetchall():
                    pages.put(Page(*row))
            before = {page.id: postgres_top.prefixes(page) for page in pages.values()}
            changes = project(pages, events)
            async with conn.cursor() as cursor:
                written = [pages[page_id] for page_id in touched if page_id in pages]
                await cursor.executemany(
                    _UPSERT_PAGE,
                    [
                        (p.id, p.source, p.handle, p.display_name, p.followers, p.active)
                        for p in written
                    ],
                )
                renamed = sorted(changes.renamed)
                if renamed:
                    await cursor.execute(
                        "DELETE FROM mention_keys WHERE page_id = ANY(%s)", (renamed,)
                    )
                    await cursor.executemany(
                        "INSERT INTO mention_keys (key, page_id) VALUES (%s, %s)",
                        _key_rows(pages[page_id] for page_id in renamed),
                    )
                await cursor.execute(
                    "UPDATE mention_position SET position = %s", (records[-1].position,)
                )
            await postgres_top.update(conn, before, written)

    async def bulk_load(
        self, pages: Iterable[Page], position: int = 0, chunk: int = 100_000
    ) -> int:
        """Write many pages into an empty backend at once, through COPY (benchmarks,
        seeding); the key index is built after. Returns how many pages were written."""
        count = 0
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("DROP INDEX mention_keys_by_key")
            await conn.execute("ALTER TABLE mention_keys DROP CONSTRAINT mention_keys_pkey")
            for part in _chunks(pages, chunk):
                async with conn.cursor().copy(
                    "COPY mention_pages (id, source, handle, display_name, followers, active)"
                    " FROM STDIN"
                ) as copy:
                    for p in part:
                        await copy.write_row(
                            (p.id, p.source, p.handle, p.display_name, p.followers, p.active)
                        )
                async with conn.cursor().copy(
                    "COPY mention_keys (key, page_id) FROM STDIN"
                ) as copy:
                    for row in _key_rows(part):
                        await copy.write_row(row)
                count += len(part)
            await conn.execute("ALTER TABLE mention_keys ADD PRIMARY KEY (page_id, key)")
            await conn.execute(SCHEMA[2])
            await conn.execute("UPDATE mention_position SET position = %s", (position,))
            await postgres_top.build(conn)
        async with self._pool.connection() as conn:
            for table in ("mention_pages", "mention_keys", "mention_top", "mention_top_cutoff"):
                await conn.execute(f"ANALYZE {table}")
        await self.warm()
        return count

    async def suggest(self, query: str, limit: int = 10) -> list[Suggestion]:
        terms = query_terms(query)
        limit = max(1, min(limit, MAX_LIMIT))
        typed = "".join(terms)
        parts = [part for term in terms for part in words(term)]
        async with self._pool.connection() as conn:
            if len(typed) <= postgres_top.SHORT:
                best_of = await conn.execute(postgres_top.BY_SHORT_PREFIX, (typed, limit))
            else:
                best_of = await conn.execute(_BY_PREFIX, (typed, typed + _ABOVE, limit))
            rows = await best_of.fetchall()
            if parts and parts != [typed]:
                lead = max(parts, key=len)
                more = await conn.execute(
                    _BY_ALL_WORDS, (lead, lead + _ABOVE, parts, _ABOVE, limit)
                )
                rows += await more.fetchall()
        found = {row[0]: Suggestion(*row) for row in rows}
        best = sorted(found.values(), key=lambda s: (-s.followers, s.id))
        return best[:limit]

    async def suggest_json(self, query: str, limit: int = 10) -> bytes:
        return msgspec.json.encode(await self.suggest(query, limit))

    async def close(self) -> None:
        await self._pool.close()
