"""The inbox in listening's relational store (`InboxStore`): its items are the stored
matches of the `inbox:CHANNEL` searches (`listening_matches`), read joined to what the
team did with each (`listening_inbox`, a row only once someone touched it). SQLite or
PostgreSQL, the database of `SqlListeningStore` (migration l0002)."""

from __future__ import annotations

import json
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from hubbub.listening.inbox import INBOX, InboxFilter, Item
from hubbub.listening.sql import _match, matches_table

metadata = sa.MetaData()
inbox_table = sa.Table(
    "listening_inbox", metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("post", sa.String(512), primary_key=True),
    sa.Column("assignee", sa.String(255)),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("read", sa.Boolean, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(255), nullable=False),
)  # fmt: skip
_M: Final = matches_table.c
_S: Final = inbox_table.c
_JOINED: Final = matches_table.outerjoin(
    inbox_table,
    (_S.tenant == _M.tenant) & (_S.post == _M.post) & (_M.search == sa.literal(INBOX) + _S.channel),
)
_ITEMS: Final = sa.select(
    matches_table, _S.assignee, _S.tags, _S.done, _S.read, _S.updated_us
).select_from(_JOINED)
_NOT_DONE: Final = sa.or_(_S.done.is_(None), _S.done == sa.false())
_NOT_READ: Final = sa.or_(_S.read.is_(None), _S.read == sa.false())


def _inbox_of(tenant: str) -> sa.ColumnElement[bool]:
    return (_M.tenant == tenant) & _M.search.startswith(INBOX, autoescape=True)


class SqlInbox:
    """See `hubbub.listening.inbox.InboxStore`; over the listening store's `engine`."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def items(self, tenant: str, chosen: InboxFilter) -> tuple[list[Item], bool]:
        query = _ITEMS.where(_inbox_of(tenant))
        if chosen.state == "open":
            query = query.where(_NOT_DONE)
        elif chosen.state == "done":
            query = query.where(_S.done == sa.true())
        if chosen.assignee:
            query = query.where(_S.assignee == chosen.assignee)
        if chosen.tag:
            # Tags are kept as a JSON list of strings: '"tag"' within its text.
            quoted = json.dumps(chosen.tag)
            query = query.where(sa.cast(_S.tags, sa.Text).contains(quoted, autoescape=True))
        if chosen.channel:
            query = query.where(_M.search == INBOX + chosen.channel)
        if chosen.before is not None:
            query = query.where(_M.position < chosen.before)
        query = query.order_by(_M.position.desc()).limit(chosen.limit + 1)
        with self._engine.connect() as db:
            rows = db.execute(query).all()
        return [_item(row) for row in rows[: chosen.limit]], len(rows) > chosen.limit

    def item(self, tenant: str, item: int) -> Item | None:
        with self._engine.connect() as db:
            row = db.execute(_ITEMS.where(_inbox_of(tenant) & (_M.position == item))).first()
        return _item(row) if row is not None else None

    def unread(self, tenant: str) -> int:
        counted = (
            sa.select(sa.func.count())
            .select_from(_JOINED)
            .where(_inbox_of(tenant) & _NOT_DONE & _NOT_READ)
        )
        with self._engine.connect() as db:
            return int(db.execute(counted).scalar_one())

    def change(self, item: Item, now_us: int, by: str) -> None:
        state = {
            "assignee": item.assignee, "tags": list(item.tags), "done": item.done,
            "read": item.read, "updated_us": now_us, "updated_by": by,
        }  # fmt: skip
        key = {"tenant": item.match.tenant, "channel": item.channel, "post": item.match.post}
        with self._engine.begin() as db:
            db.execute(
                self._insert(inbox_table)
                .values(**key, **state)
                .on_conflict_do_update(index_elements=list(key), set_=state)
            )


def _item(row: Any) -> Item:
    tags = json.loads(row.tags) if isinstance(row.tags, str) else row.tags
    return Item(
        _match(row), assignee=row.assignee, tags=tuple(tags or ()), done=bool(row.done),
        read=bool(row.read), updated_us=row.updated_us or 0,
    )  # fmt: skip
