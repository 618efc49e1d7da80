"""Saved searches, their stored matches and the log positions they were folded to, in a
relational store (`ListeningStore`): SQLite embedded (a file in the data dir),
PostgreSQL at scale, through SQLAlchemy Core, with migrations of its own (Alembic, its
own version table, so the database may be shared).

The fold's positions move by compare-and-set in the transaction that writes what they
produced (as in `hubbub.notifications.sql`), so two workers folding the same records
keep each match once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from hubbub.kernel import relational
from hubbub.kernel.events import MATCHES
from hubbub.kernel.text import fold
from hubbub.listening.ports import (
    Match,
    MatchFilter,
    MatchPage,
    Refused,
    Search,
    StalePositions,
    Withdrawn,
)

MIGRATIONS: Final = Path(__file__).parent / "migrations"
VERSION_TABLE: Final = "listening_alembic_version"
metadata = sa.MetaData()
searches_table = sa.Table(
    "listening_searches", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("terms", sa.Integer, nullable=False),
    sa.Column("costly", sa.Boolean, nullable=False),
    sa.Column("pages", sa.JSON, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.Column("from_position", sa.BigInteger, nullable=False),
    sa.Column("backfilled_to", sa.BigInteger, nullable=False),
)  # fmt: skip
matches_table = sa.Table(
    "listening_matches", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("search", sa.String(128), primary_key=True),
    sa.Column("post", sa.String(512), primary_key=True),
    sa.Column("author", sa.String(512), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("folded", sa.Text, nullable=False),
    sa.Column("langs", sa.JSON, nullable=False),
    sa.Column("links", sa.JSON, nullable=False),
    sa.Column("media", sa.Integer, nullable=False),
    sa.Column("reply_parent", sa.String(512)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Index("listening_matches_newest", "tenant", "search", "position"),
    sa.Index("listening_matches_post", "post"),
    sa.Index("listening_matches_created", "created_at"),
)  # fmt: skip
positions_table = sa.Table(
    "listening_positions", metadata,
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)  # fmt: skip
_MATCH_COLUMNS: Final = (
    "tenant", "search", "post", "author", "text", "folded", "langs", "links", "media",
    "reply_parent", "created_at", "position", "kind",
)  # fmt: skip
_JSON_COLUMNS: Final = frozenset({"langs", "links"})
_json = msgspec.json.Encoder()
MATCHER_TOPICS: Final = ("posts", "deletes")
"""The matcher's positions; the fold's are the others (`matches`)."""
_IN_CHUNK: Final = 500
PRUNE_CHUNK: Final = 5000
"""Matches dropped a transaction by retention (`SqlListeningStore.prune`)."""
PRUNE_PAUSE_S: Final = 0.2
"""Between two chunks of a prune. SQLite hands its lock to no one in particular: a writer
waiting for it polls (every 100 ms at most), and a prune that began its next chunk at
once kept the matcher and the fold waiting through many chunks, 5 to 7 s in the soak
benchmark. A pause longer than the poll lets each waiting writer in between chunks."""
_ORPHANED_INBOX_STATE: Final = sa.text(
    "DELETE FROM listening_inbox WHERE NOT EXISTS (SELECT 1 FROM listening_matches m"
    " WHERE m.tenant = listening_inbox.tenant AND m.search = 'inbox:' || listening_inbox.channel"
    " AND m.post = listening_inbox.post)"
)


class SqlListeningStore:
    """See `hubbub.listening.ports` for the contract."""

    def __init__(self, url: str) -> None:
        self._engine = relational.open_engine(url, MIGRATIONS)
        dialect = self._engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    @classmethod
    def sqlite(cls, path: Path) -> SqlListeningStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}")

    @property
    def engine(self) -> sa.Engine:
        """For the inbox's tables, kept in the same database."""
        return self._engine

    # Searches

    def searches(self, tenant: str | None = None) -> list[Search]:
        chosen = sa.select(searches_table).order_by(searches_table.c.name, searches_table.c.id)
        if tenant is not None:
            chosen = chosen.where(searches_table.c.tenant == tenant)
        with self._engine.connect() as db:
            return [_search(row) for row in db.execute(chosen)]

    def search(self, tenant: str, search: str) -> Search | None:
        with self._engine.connect() as db:
            row = db.execute(sa.select(searches_table).where(_one(tenant, search))).first()
        return _search(row) if row else None

    def put_search(self, search: Search, max_searches: int) -> None:
        values = {
            "name": search.name, "query": search.query, "terms": search.terms,
            "costly": search.costly, "pages": {k: list(v) for k, v in search.pages.items()},
            "created_by": search.created_by, "created_us": search.created_us,
            "updated_us": search.updated_us, "from_position": search.from_position,
            "backfilled_to": search.backfilled_to,
        }  # fmt: skip
        with self._engine.begin() as db:
            replaced = db.execute(
                searches_table.update().where(_one(search.tenant, search.id)).values(values)
            )
            if replaced.rowcount:
                return
            count = sa.select(sa.func.count()).where(searches_table.c.tenant == search.tenant)
            if int(db.execute(count).scalar_one()) >= max_searches:
                raise Refused(
                    f"a workspace keeps at most {max_searches} searches"
                    " (HUBBUB_LISTENING_MAX_SEARCHES): remove one first"
                )
            db.execute(searches_table.insert().values(tenant=search.tenant, id=search.id, **values))

    def remove_search(self, tenant: str, search: str) -> bool:
        with self._engine.begin() as db:
            gone = db.execute(searches_table.delete().where(_one(tenant, search))).rowcount
            theirs = (matches_table.c.tenant == tenant) & (matches_table.c.search == search)
            db.execute(matches_table.delete().where(theirs))
        return bool(gone)

    def mark_backfilled(self, tenant: str, search: str, position: int) -> None:
        with self._engine.begin() as db:
            db.execute(
                searches_table.update()
                .where(_one(tenant, search) & (searches_table.c.backfilled_to < position))
                .values(backfilled_to=position)
            )

    # Positions

    def positions(self) -> dict[str, int]:
        with self._engine.connect() as db:
            rows = db.execute(sa.select(positions_table)).all()
        return {row.topic: row.position for row in rows}

    def advance(self, reached: Mapping[str, int]) -> None:
        with self._engine.begin() as db:
            for topic, position in sorted(reached.items()):
                db.execute(
                    self._insert(positions_table)
                    .values(topic=topic, position=position)
                    .on_conflict_do_update(
                        index_elements=["topic"],
                        set_={"position": sa.func.max(positions_table.c.position, position)}
                        if self._engine.dialect.name == "sqlite"
                        else {"position": sa.func.greatest(positions_table.c.position, position)},
                    )
                )

    # The fold

    def apply(
        self,
        matched: Sequence[Match],
        withdrawn: Sequence[Withdrawn],
        reached: Mapping[str, int],
        read_from: Mapping[str, int],
    ) -> int:
        kept = 0
        try:
            with self._engine.begin() as db:
                relational.move_positions(db, positions_table, reached, read_from, StalePositions)
                if matched:
                    kept = self._keep(db, matched)
                for gone in withdrawn:
                    db.execute(
                        matches_table.delete().where(
                            (matches_table.c.tenant == gone.tenant)
                            & (matches_table.c.search == gone.search)
                            & (matches_table.c.post == gone.post)
                        )
                    )
        except IntegrityError as error:  # a position row made meanwhile by another worker
            raise StalePositions(f"the positions moved while folding: {error}") from error
        return kept

    def _keep(self, db: sa.Connection, matched: Sequence[Match]) -> int:
        """Insert the matches not kept yet, in one statement run for every row by the
        driver: built by SQLAlchemy row by row, a fold of 10,000 matches took 230 ms of
        the processor the matcher and the live streams need; this takes a fraction."""
        encode = _json.encode
        rows = [
            (m.tenant, m.search, m.post, m.author, m.text, fold(m.text),
             encode(list(m.langs)).decode(), encode(list(m.links)).decode(), m.media,
             m.reply_parent, m.created_at, m.position, m.kind)
            for m in matched
        ]  # fmt: skip
        if self._engine.dialect.name == "postgresql":
            marks = ", ".join("%s::json" if c in _JSON_COLUMNS else "%s" for c in _MATCH_COLUMNS)
            statement = (
                f"INSERT INTO listening_matches ({', '.join(_MATCH_COLUMNS)}) VALUES ({marks})"
                " ON CONFLICT DO NOTHING"
            )
        else:
            marks = ", ".join("?" for _ in _MATCH_COLUMNS)
            statement = (
                f"INSERT OR IGNORE INTO listening_matches ({', '.join(_MATCH_COLUMNS)})"
                f" VALUES ({marks})"
            )
        return int(db.exec_driver_sql(statement, rows).rowcount)

    def matched(self, posts: Sequence[str]) -> list[Withdrawn]:
        found: list[Withdrawn] = []
        unique = sorted(set(posts))
        with self._engine.connect() as db:
            for start in range(0, len(unique), _IN_CHUNK):
                chosen = sa.select(
                    matches_table.c.tenant, matches_table.c.search, matches_table.c.post
                ).where(matches_table.c.post.in_(unique[start : start + _IN_CHUNK]))
                found += [Withdrawn(r.tenant, r.search, r.post) for r in db.execute(chosen)]
        return found

    def matches(self, tenant: str, search: str, chosen: MatchFilter) -> MatchPage:
        c = matches_table.c
        query = sa.select(matches_table).where((c.tenant == tenant) & (c.search == search))
        if chosen.text:  # folded as matching folds (case, accents, width), in Python
            query = query.where(c.folded.contains(fold(chosen.text), autoescape=True))
        if chosen.lang:
            # Languages are kept as a JSON list of tags: '"en"' or '"en-' within it.
            tag = chosen.lang.lower()
            query = query.where(
                sa.func.lower(sa.cast(c.langs, sa.Text)).contains(f'"{tag}"', autoescape=True)
                | sa.func.lower(sa.cast(c.langs, sa.Text)).contains(f'"{tag}-', autoescape=True)
            )
        if chosen.since_us is not None:
            query = query.where(c.created_at >= chosen.since_us)
        if chosen.until_us is not None:
            query = query.where(c.created_at < chosen.until_us)
        if chosen.before is not None:
            query = query.where(c.position < chosen.before)
        query = query.order_by(c.position.desc()).limit(chosen.limit + 1)
        folded = sa.select(positions_table.c.position).where(positions_table.c.topic == MATCHES)
        with self._engine.connect() as db:  # the position first: never past the rows read
            reached = db.execute(folded).scalar_one_or_none() or 0
            rows = db.execute(query).all()
        shown = [_match(row) for row in rows[: chosen.limit]]
        return MatchPage(shown, len(rows) > chosen.limit, reached)

    def prune(
        self,
        keep_per_search: int,
        before_us: int,
        chunk: int = PRUNE_CHUNK,
        pause_s: float = PRUNE_PAUSE_S,
    ) -> int:
        """Drop matches older than `before_us`, and each search's beyond its newest
        `keep_per_search`, in transactions of about `chunk` rows: the matcher and the fold
        write the same database, and wait for one chunk rather than for the whole prune
        (`pause_s` between chunks lets them in).
        (In one transaction, the first prune of searches past 100,000 matches held
        SQLite's lock for longer than their 10 s wait, an hour into the soak benchmark,
        and both failed "database is locked".)"""
        c = matches_table.c
        dropped = self._drop_in_chunks(c.created_at < before_us, c.created_at, chunk, pause_s)
        with self._engine.connect() as db:  # a read: writers go on meanwhile
            crowded = db.execute(
                sa.select(c.tenant, c.search)
                .group_by(c.tenant, c.search)
                .having(sa.func.count() > keep_per_search)
            ).all()
        for tenant, search in crowded:
            theirs = (c.tenant == tenant) & (c.search == search)
            with self._engine.connect() as db:
                oldest_kept = db.execute(
                    sa.select(c.position).where(theirs).order_by(c.position.desc())
                    .offset(keep_per_search - 1).limit(1)
                ).scalar_one()  # fmt: skip
            older = theirs & (c.position < oldest_kept)
            dropped += self._drop_in_chunks(older, c.position, chunk, pause_s)
        # What the team did with an inbox item goes with the item (its match): pruned,
        # withdrawn (the post deleted), or dropped with its search.
        with self._engine.begin() as db:
            db.execute(_ORPHANED_INBOX_STATE)
        return dropped

    def _drop_in_chunks(
        self, where: sa.ColumnElement[bool], order: sa.Column[Any], chunk: int, pause_s: float
    ) -> int:
        """Delete the matches `where` says, about `chunk` at a time (those up to the
        chunk's last value of the indexed column `order`), each in its own transaction,
        `pause_s` apart."""
        dropped = 0
        while True:
            with self._engine.begin() as db:
                last = db.execute(
                    sa.select(order).where(where).order_by(order).offset(chunk - 1).limit(1)
                ).scalar()
                upto = where if last is None else where & (order <= last)
                dropped += int(db.execute(matches_table.delete().where(upto)).rowcount)
            if last is None:
                return dropped
            time.sleep(pause_s)

    def close(self) -> None:
        self._engine.dispose()


def _one(tenant: str, search: str) -> sa.ColumnElement[bool]:
    return (searches_table.c.tenant == tenant) & (searches_table.c.id == search)


def _search(row: Any) -> Search:
    return Search(
        tenant=row.tenant, id=row.id, name=row.name, query=row.query, terms=row.terms,
        costly=row.costly, created_by=row.created_by, created_us=row.created_us,
        updated_us=row.updated_us, pages=dict(row.pages or {}),
        from_position=row.from_position, backfilled_to=row.backfilled_to,
    )  # fmt: skip


def _match(row: Any) -> Match:
    return Match(
        tenant=row.tenant, search=row.search, post=row.post, author=row.author, text=row.text,
        langs=tuple(row.langs or ()), links=tuple(row.links or ()), media=row.media,
        reply_parent=row.reply_parent, created_at=row.created_at, position=row.position,
        kind=row.kind,
    )  # fmt: skip
