"""One contract for the inbox's store over listening's relational store: SQLite
(embedded) and PostgreSQL (a database made for each test on the real server). Items are
the folded matches of `inbox:CHANNEL` searches, joined to what the team did with them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hubbub.listening.inbox import InboxFilter, Item
from hubbub.listening.inbox_sql import SqlInbox
from hubbub.listening.ports import Match, Withdrawn
from hubbub.listening.sql import SqlListeningStore
from tests.conftest import postgres_database
from tests.contract.test_tenant_stores import sqlalchemy_url

S = 1_000_000
T0 = 1_800_000_000 * S


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlListeningStore]:
    if request.param == "sqlite":
        built = SqlListeningStore(f"sqlite:///{tmp_path / 'listening.db'}")
        yield built
        built.close()
        return
    with postgres_database("hubbub_inbox") as dsn:
        built = SqlListeningStore(sqlalchemy_url(dsn))
        yield built
        built.close()


@pytest.fixture
def inbox(store: SqlListeningStore) -> SqlInbox:
    return SqlInbox(store.engine)


def arrival(tenant: str, channel: str, post: str, position: int, kind: str = "mention") -> Match:
    return Match(
        tenant=tenant, search=f"inbox:{channel}", post=post, author="did:plc:bob",
        text=f"@acme.example about {post}", langs=("en",), created_at=T0 + position * S,
        position=position, kind=kind,
    )  # fmt: skip


def fold(store: SqlListeningStore, *matched: Match) -> None:
    """Apply as the listening fold does, reaching the highest position given."""
    positions = store.positions()
    read_from = {"matches": positions["matches"]} if "matches" in positions else {}
    store.apply(matched, (), {"matches": max(m.position for m in matched)}, read_from)


def ids(items: list[Item]) -> list[str]:
    return [item.id for item in items]


def test_items_are_the_inbox_matches_newest_first_untouched(
    store: SqlListeningStore, inbox: SqlInbox
) -> None:
    brand = replace(arrival("acme", "c1", "at://x/p/0", 1), search="0123456789abcdef")
    fold(
        store, brand, arrival("acme", "c1", "at://x/p/1", 2),
        arrival("acme", "c2", "https://m.example/@bob/2", 3, "reply"),
    )  # fmt: skip
    found, more = inbox.items("acme", InboxFilter())
    assert ids(found) == ["3", "2"]  # a saved search's match is no inbox item
    assert not more
    newest = found[0]
    assert (newest.channel, newest.match.kind, newest.match.post) == (
        "c2", "reply", "https://m.example/@bob/2",
    )  # fmt: skip
    assert (newest.assignee, newest.tags, newest.done, newest.read) == (None, (), False, False)
    assert inbox.unread("acme") == 2
    assert ids(inbox.items("acme", InboxFilter(channel="c1"))[0]) == ["2"]


def test_what_the_team_does_is_kept_and_filtered_on(
    store: SqlListeningStore, inbox: SqlInbox
) -> None:
    fold(store, *(arrival("acme", "c1", f"at://x/p/{n}", n) for n in range(1, 6)))
    first, second, third = (inbox.item("acme", n) for n in (1, 2, 3))
    assert first is not None
    assert second is not None
    assert third is not None
    inbox.change(replace(first, assignee="u-ann", tags=("Billing", "urgent")), T0, "user:u-ann")
    inbox.change(replace(second, done=True, read=True), T0, "user:u-bob")
    inbox.change(replace(third, read=True, tags=("urgent",)), T0, "user:u-bob")
    inbox.change(replace(third, read=True, tags=("later",)), T0 + S, "user:u-bob")  # replaced

    def listed(**chosen: object) -> list[str]:
        return ids(inbox.items("acme", InboxFilter(**chosen))[0])  # type: ignore[arg-type]

    assert listed() == ["5", "4", "3", "1"]
    assert listed(state="done") == ["2"]
    assert listed(state="all") == ["5", "4", "3", "2", "1"]
    assert listed(assignee="u-ann") == ["1"]
    assert listed(tag="urgent") == ["1"]
    assert listed(tag="later") == ["3"]
    assert listed(tag="Billing") == ["1"]
    assert listed(tag="bill") == []  # a whole tag, not part of one
    assert inbox.unread("acme") == 3  # 2 is done, 3 is read
    kept = inbox.item("acme", 1)
    assert kept is not None
    assert (kept.assignee, kept.tags, kept.updated_us) == ("u-ann", ("Billing", "urgent"), T0)


def test_items_come_a_page_at_a_time(store: SqlListeningStore, inbox: SqlInbox) -> None:
    fold(store, *(arrival("acme", "c1", f"at://x/p/{n}", n) for n in range(1, 8)))
    page, more = inbox.items("acme", InboxFilter(limit=3))
    assert (ids(page), more) == (["7", "6", "5"], True)
    page, more = inbox.items("acme", InboxFilter(limit=3, before=5))
    assert (ids(page), more) == (["4", "3", "2"], True)
    page, more = inbox.items("acme", InboxFilter(limit=3, before=2))
    assert (ids(page), more) == (["1"], False)


def test_no_item_of_one_tenant_reaches_another(store: SqlListeningStore, inbox: SqlInbox) -> None:
    shared = "at://did:plc:bob/app.bsky.feed.post/1"
    fold(store, arrival("acme", "c1", shared, 1), arrival("globex", "g1", shared, 2))
    acme = inbox.item("acme", 1)
    assert acme is not None
    inbox.change(replace(acme, done=True, assignee="u-ann", tags=("vip",)), T0, "user:u-ann")

    assert inbox.item("globex", 1) is None
    assert inbox.item("acme", 2) is None
    (theirs,), _ = inbox.items("globex", InboxFilter(state="all"))
    assert (theirs.id, theirs.done, theirs.assignee, theirs.tags) == ("2", False, None, ())
    assert inbox.items("globex", InboxFilter(assignee="u-ann"))[0] == []
    assert inbox.items("globex", InboxFilter(state="all", tag="vip"))[0] == []
    assert inbox.unread("globex") == 1
    assert inbox.unread("acme") == 0


def test_what_the_team_did_goes_with_its_item(store: SqlListeningStore, inbox: SqlInbox) -> None:
    fold(store, *(arrival("acme", "c1", f"at://x/p/{n}", n) for n in range(1, 4)))
    for n in (1, 2, 3):
        item = inbox.item("acme", n)
        assert item is not None
        inbox.change(replace(item, tags=("kept",)), T0, "user:u-ann")
    positions = store.positions()
    store.apply([], [Withdrawn("acme", "inbox:c1", "at://x/p/2")], {"matches": 4},
                {"matches": positions["matches"]})  # fmt: skip
    store.prune(keep_per_search=1, before_us=0)  # item 1 goes by count, 2 was withdrawn
    assert ids(inbox.items("acme", InboxFilter(state="all"))[0]) == ["3"]
    fold(store, arrival("acme", "c1", "at://x/p/1", 5))  # the same post again, later
    again = inbox.item("acme", 5)
    assert again is not None
    assert again.tags == ()  # nothing of the state it had before
