"""The postgres backend's table of the most followed pages of every short prefix.

A prefix of one to three characters covers a large share of all pages ("a" may cover a
tenth of them), so finding its best pages through the key range means gathering and
sorting that share on every keystroke. Instead `mention_top` keeps, for every prefix
of up to `SHORT` characters of a suggestible page's keys, the `KEPT` most followed
pages (twice the most a query may ask, `MAX_LIMIT`, so that pages may leave a prefix
before it must be gathered again), maintained in the transaction that changes a page.

Invariant, per prefix: every matching page that is not in the table ranks at or below
the prefix's cutoff in `mention_top_cutoff` (followers, then id), and a prefix with no
cutoff row has all its matching pages in the table. So:

- a changed page leaves the table of each of its old prefixes, and is put in the table
  of each new one if it ranks above the cutoff (a page that falls to or below it stays
  out: a page outside may now rank above it);
- a prefix holding more than `KEPT` keeps its best, and the best one dropped becomes
  its cutoff;
- a prefix left with fewer than `MAX_LIMIT` pages and a cutoff is gathered again from
  the key range, the one time the slow path is taken.

Ranks compare followers, then ids in byte order (`COLLATE "C"`), as Python compares
strings. The ids themselves keep the pages' collation, so a join on them uses the
pages' primary key (measured: 108 ms for "a" over a million pages when it could not).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import psycopg

from hubbub.mentions.matching import MAX_LIMIT
from hubbub.mentions.pages import Page

SHORT: Final = 3
KEPT: Final = 2 * MAX_LIMIT
Connection = psycopg.AsyncConnection[tuple[Any, ...]]
Rank = tuple[int, str]  # (followers, page id): higher followers, then lower id, rank first

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS mention_top (
        prefix text COLLATE "C" NOT NULL,
        page_id text NOT NULL,
        followers bigint NOT NULL,
        PRIMARY KEY (prefix, page_id))""",
    "CREATE INDEX IF NOT EXISTS mention_top_by_page ON mention_top (page_id)",
    """CREATE TABLE IF NOT EXISTS mention_top_cutoff (
        prefix text COLLATE "C" PRIMARY KEY,
        followers bigint NOT NULL,
        page_id text NOT NULL)""",
    """ALTER TABLE mention_position
        ADD COLUMN IF NOT EXISTS top_built boolean NOT NULL DEFAULT false""",
)

BY_SHORT_PREFIX: Final = """
    SELECT p.id, p.handle, p.display_name, p.followers, p.source
    FROM mention_top t JOIN mention_pages p ON p.id = t.page_id
    WHERE t.prefix = %s
    ORDER BY t.followers DESC, t.page_id COLLATE "C"
    LIMIT %s"""

# Every (prefix, page) of the suggestible pages' keys, ranked within the prefix; those
# ranked up to KEPT + 1 (the first one out is the cutoff).
_RANKED: Final = f"""
    SELECT prefix, page_id, followers, rank FROM (
        SELECT prefix, page_id, followers, row_number() OVER (
            PARTITION BY prefix ORDER BY followers DESC, page_id COLLATE "C") AS rank
        FROM (
            SELECT DISTINCT left(k.key, n) COLLATE "C" AS prefix, k.page_id, p.followers
            FROM mention_keys k
            JOIN mention_pages p ON p.id = k.page_id
            CROSS JOIN generate_series(1, {SHORT}) AS n
        ) AS matches
    ) AS ranked
    WHERE rank <= {KEPT + 1}"""

_GATHER: Final = """
    SELECT p.id, p.followers
    FROM mention_pages p
    WHERE p.id IN (SELECT k.page_id FROM mention_keys k WHERE k.key >= %s AND k.key < %s)
    ORDER BY p.followers DESC, p.id COLLATE "C"
    LIMIT %s"""

_TRIM: Final = f"""
    DELETE FROM mention_top t
    USING (
        SELECT prefix, page_id, row_number() OVER (
            PARTITION BY prefix ORDER BY followers DESC, page_id COLLATE "C") AS rank
        FROM mention_top WHERE prefix = ANY(%s)
    ) AS ranked
    WHERE t.prefix = ranked.prefix AND t.page_id = ranked.page_id AND ranked.rank > {KEPT}
    RETURNING t.prefix, t.followers, t.page_id"""

_ABOVE: Final = "\U0010ffff"
# One writer of the table (or of the schema, on connecting) at a time, until its
# transaction ends: replicas connecting at once would otherwise deadlock on the DDL.
LOCK: Final = "SELECT pg_advisory_xact_lock(hashtext('mention_top'))"


def prefixes(page: Page) -> set[str]:
    """The short prefixes a suggestible page is found by (none when it is not)."""
    if not page.suggestible:
        return set()
    return {key[:length] for key in page.keys() for length in range(1, SHORT + 1)}


def ranks_above(rank: Rank, cutoff: Rank | None) -> bool:
    """Whether a page of `rank` ranks above `cutoff` (everything does when there is none)."""
    if cutoff is None:
        return True
    return rank[0] > cutoff[0] or (rank[0] == cutoff[0] and rank[1] < cutoff[1])


async def build(conn: Connection) -> None:
    """Fill the table from the pages and keys (an empty table, or one never built)."""
    await conn.execute("DELETE FROM mention_top")
    await conn.execute("DELETE FROM mention_top_cutoff")
    await conn.execute(f"CREATE TEMPORARY TABLE ranked_top ON COMMIT DROP AS {_RANKED}")
    await conn.execute(
        "INSERT INTO mention_top (prefix, page_id, followers)"
        f" SELECT prefix, page_id, followers FROM ranked_top WHERE rank <= {KEPT}"
    )
    await conn.execute(
        "INSERT INTO mention_top_cutoff (prefix, followers, page_id)"
        f" SELECT prefix, followers, page_id FROM ranked_top WHERE rank = {KEPT + 1}"
    )
    await conn.execute("DROP TABLE ranked_top")
    await conn.execute("UPDATE mention_position SET top_built = true")


async def ensure_built(conn: Connection) -> None:
    """Build the table if this database has never had it (pages from before it), in a
    transaction holding `LOCK`: the first of several replicas starting at once builds
    it, the others wait for it."""
    row = await (await conn.execute("SELECT top_built FROM mention_position")).fetchone()
    if row is not None and not row[0]:
        await build(conn)


async def update(conn: Connection, before: Mapping[str, set[str]], after: Iterable[Page]) -> None:
    """Bring the table up to date with the pages `after`, whose short prefixes were
    `before` (empty for a page new to the backend), in the caller's transaction, once
    their rows and keys are written."""
    pages = list(after)
    touched = sorted(before.keys() | {page.id for page in pages})
    now = {page.id: prefixes(page) for page in pages}
    affected = sorted(set().union(*before.values(), *now.values()))
    if not affected:
        return
    await conn.execute(LOCK)
    cutoffs = await _cutoffs(conn, affected)
    removed = await conn.execute(
        "DELETE FROM mention_top WHERE page_id = ANY(%s) RETURNING prefix, page_id", (touched,)
    )
    was = {(prefix, page_id) for prefix, page_id in await removed.fetchall()}
    rows = [
        (prefix, page.id, page.followers)
        for page in pages
        for prefix in now[page.id]
        if ranks_above((page.followers, page.id), cutoffs.get(prefix))
    ]
    await _insert(conn, rows)
    # Only a prefix that gained a page can hold too many, and only one that lost a page
    # too few: a page that stays in a prefix's table (most changes) costs neither check.
    kept = {(prefix, page_id) for prefix, page_id, _ in rows}
    await _trim(conn, sorted({prefix for prefix, _ in kept - was}), cutoffs)
    await _refill_short(conn, sorted({prefix for prefix, _ in was - kept}), cutoffs)


async def _insert(conn: Connection, rows: list[tuple[str, str, int]]) -> None:
    """Put rows in the table in one statement (a batch of pages touches thousands)."""
    if rows:
        prefixes, page_ids, followers = (list(column) for column in zip(*rows, strict=True))
        await conn.execute(
            "INSERT INTO mention_top (prefix, page_id, followers)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])",
            (prefixes, page_ids, followers),
        )


async def _cutoffs(conn: Connection, affected: list[str]) -> dict[str, Rank]:
    found = await conn.execute(
        "SELECT prefix, followers, page_id FROM mention_top_cutoff WHERE prefix = ANY(%s)",
        (affected,),
    )
    return {prefix: (followers, page_id) for prefix, followers, page_id in await found.fetchall()}


async def _trim(conn: Connection, grown: list[str], cutoffs: dict[str, Rank]) -> None:
    """Keep each prefix's best KEPT; the best one dropped is the prefix's new cutoff."""
    if not grown:
        return
    dropped = await (await conn.execute(_TRIM, (grown,))).fetchall()
    best: dict[str, Rank] = {}
    for prefix, followers, page_id in dropped:
        if prefix not in best or ranks_above((followers, page_id), best[prefix]):
            best[prefix] = (followers, page_id)
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO mention_top_cutoff (prefix, followers, page_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (prefix) DO UPDATE"
            " SET followers = excluded.followers, page_id = excluded.page_id",
            [(prefix, *rank) for prefix, rank in best.items()],
        )
    cutoffs.update(best)


async def _refill_short(conn: Connection, shrunk: list[str], cutoffs: dict[str, Rank]) -> None:
    """Gather again, from the key range, each prefix with a cutoff left with fewer pages
    than a query may ask."""
    shrunk = [prefix for prefix in shrunk if prefix in cutoffs]
    if not shrunk:
        return
    counted = await conn.execute(
        "SELECT prefix, count(*) FROM mention_top WHERE prefix = ANY(%s) GROUP BY prefix",
        (shrunk,),
    )
    held: dict[str, int] = {prefix: count for prefix, count in await counted.fetchall()}
    for prefix in shrunk:
        if prefix in cutoffs and held.get(prefix, 0) < MAX_LIMIT:
            await _gather(conn, prefix)


async def _gather(conn: Connection, prefix: str) -> None:
    found = await conn.execute(_GATHER, (prefix, prefix + _ABOVE, KEPT + 1))
    best = await found.fetchall()
    await conn.execute("DELETE FROM mention_top WHERE prefix = %s", (prefix,))
    await conn.execute("DELETE FROM mention_top_cutoff WHERE prefix = %s", (prefix,))
    await _insert(conn, [(prefix, page_id, followers) for page_id, followers in best[:KEPT]])
    if len(best) > KEPT:
        page_id, followers = best[KEPT]
        await conn.execute(
            "INSERT INTO mention_top_cutoff (prefix, followers, page_id) VALUES (%s, %s, %s)",
            (prefix, followers, page_id),
        )
