"""One contract for where publishing keeps each person's feed generation and the people
it folds from the log: SQLite (embedded) and PostgreSQL (a database made for each test on
the real server). A new address ends the one before, even when asked for at once; a person
who leaves ends theirs for good; a fold moves its position only from where it read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubbub.publishing.ports import Member, StalePositions
from hubbub.publishing.sql import SqlJobStore
from tests.conftest import postgres_database
from tests.contract.test_tenant_stores import sqlalchemy_url


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'relational.db'}"
        return
    with postgres_database("hubbub_feeds") as dsn:
        yield sqlalchemy_url(dsn)


@pytest.fixture
def store(url: str) -> Iterator[SqlJobStore]:
    built = SqlJobStore(url)
    yield built
    built.close()


def test_each_new_feed_is_the_next_generation_of_that_person_only(store: SqlJobStore) -> None:
    assert store.feed_generation("acme", "user:ann") == 0
    assert [store.new_feed("acme", "user:ann") for _ in range(3)] == [1, 2, 3]
    assert store.feed_generation("acme", "user:ann") == 3
    assert store.new_feed("acme", "user:bob") == 1
    assert store.new_feed("globex", "user:ann") == 1  # the same id in another tenant
    assert store.feed_generation("acme", "user:ann") == 3


def test_feeds_asked_for_at_once_each_get_a_generation_of_their_own(
    url: str, store: SqlJobStore
) -> None:
    stores = [SqlJobStore(url) for _ in range(4)]
    made: list[int] = []
    errors: list[BaseException] = []

    def ask(own: SqlJobStore) -> None:
        try:
            for _ in range(5):
                made.append(own.new_feed("acme", "user:ann"))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=ask, args=(own,)) for own in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for own in stores:
            own.close()
    assert errors == []
    assert sorted(made) == list(range(1, 21))
    assert store.feed_generation("acme", "user:ann") == 20


def test_people_are_folded_the_latest_winning_and_one_who_leaves_ends_their_feed(
    store: SqlJobStore,
) -> None:
    assert store.member("acme", "ann") is None
    assert store.people_positions() == {}
    store.new_feed("acme", "user:ann")
    store.fold_people(
        [Member("acme", "ann", "admin"), Member("acme", "bob", "editor"),
         Member("acme", "ann", "editor")],
        {"control": 3}, {},
    )  # fmt: skip
    assert store.member("acme", "ann") == Member("acme", "ann", "editor")
    assert store.member("globex", "ann") is None
    assert store.people_positions() == {"control": 3}
    assert store.feed_generation("acme", "user:ann") == 1  # a new role ends no feed

    store.fold_people([Member("acme", "ann", "editor", active=False)], {"control": 4},
                      {"control": 3})  # fmt: skip
    assert store.member("acme", "ann") == Member("acme", "ann", "editor", active=False)
    assert store.feed_generation("acme", "user:ann") == 2  # the address made before is over
    store.fold_people([Member("acme", "ann", "viewer")], {"control": 5}, {"control": 4})
    assert store.member("acme", "ann") == Member("acme", "ann", "viewer")
    assert store.feed_generation("acme", "user:ann") == 2  # back, but not that address
    assert store.member("acme", "bob") == Member("acme", "bob", "editor")
    assert store.people_positions() == {"control": 5}


def test_a_fold_from_positions_that_moved_changes_nothing(store: SqlJobStore) -> None:
    store.fold_people([Member("acme", "ann", "admin")], {"control": 2}, {})
    with pytest.raises(StalePositions):  # another worker folded from nothing meanwhile
        store.fold_people([Member("acme", "ann", "viewer", active=False)], {"control": 2}, {})
    with pytest.raises(StalePositions):  # another worker moved it on meanwhile
        store.fold_people([Member("acme", "ann", "viewer", active=False)], {"control": 3},
                          {"control": 1})  # fmt: skip
    assert store.member("acme", "ann") == Member("acme", "ann", "admin")
    assert store.feed_generation("acme", "user:ann") == 0
    assert store.people_positions() == {"control": 2}
