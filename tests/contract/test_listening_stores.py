"""One contract for where listening keeps its searches and matches: SQLite (embedded) and
PostgreSQL (scale-out, a database made for each test on the real server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hubbub.listening.ports import (
    Match,
    MatchFilter,
    Refused,
    Search,
    StalePositions,
    Withdrawn,
)
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
    with postgres_database("hubbub_listening") as dsn:
        built = SqlListeningStore(sqlalchemy_url(dsn))
        yield built
        built.close()


def search(tenant: str, id: str, name: str = "Brand", query: str = "hubbub") -> Search:
    return Search(
        tenant=tenant, id=id, name=name, query=query, terms=1, costly=False, created_by="u-ann",
        created_us=T0, updated_us=T0, pages={"ann.example": ["did:plc:ann"]}, from_position=7,
    )  # fmt: skip


def match(tenant: str, search: str, post: str, position: int, **more: object) -> Match:
    fields: dict[str, object] = {
        "author": "did:plc:bob", "text": f"hubbub post {post}", "langs": ("en",),
        "created_at": T0 + position * S, "position": position,
    }  # fmt: skip
    fields.update(more)
    return Match(tenant=tenant, search=search, post=post, **fields)  # type: ignore[arg-type]


def fold(store: SqlListeningStore, *matched: Match, withdrawn: tuple[Withdrawn, ...] = ()) -> int:
    """Apply as the next fold of `matches`, reaching the highest position given."""
    positions = store.positions()
    read_from = {"matches": positions["matches"]} if "matches" in positions else {}
    reached = max([m.position for m in matched] + [positions.get("matches", 0) + 1])
    return store.apply(matched, withdrawn, {"matches": reached}, read_from)


def test_searches_are_kept_per_tenant_and_limited(store: SqlListeningStore) -> None:
    store.put_search(search("acme", "a1", "Zeta"), max_searches=2)
    store.put_search(search("acme", "a2", "Alpha"), max_searches=2)
    store.put_search(search("globex", "g1"), max_searches=2)
    assert [s.id for s in store.searches("acme")] == ["a2", "a1"]  # by name
    kept = store.search("acme", "a1")
    assert kept is not None
    assert kept.pages == {"ann.example": ["did:plc:ann"]}
    assert kept.from_position == 7
    assert store.search("globex", "a1") is None  # another tenant's is not found
    with pytest.raises(Refused, match="at most 2 searches"):
        store.put_search(search("acme", "a3"), max_searches=2)
    store.put_search(
        search("acme", "a1", query="changed"), max_searches=2
    )  # a change is no new one
    assert store.search("acme", "a1").query == "changed"  # type: ignore[union-attr]
    assert not store.remove_search("globex", "a1")
    assert store.remove_search("acme", "a1")
    assert [s.id for s in store.searches("acme")] == ["a2"]


def test_matches_are_kept_once_read_newest_first_and_filtered(store: SqlListeningStore) -> None:
    assert store.matches("acme", "a1", MatchFilter()).folded == 0  # nothing folded: from 0
    assert fold(store, match("acme", "a1", "p1", 1), match("acme", "a1", "p2", 2,
                langs=("fr-CA",), text="Le 100% Hubbub_ café")) == 2  # fmt: skip
    assert fold(store, match("acme", "a1", "p1", 3)) == 0  # the same post again
    fold(store, match("globex", "a1", "p3", 4))
    page = store.matches("acme", "a1", MatchFilter())
    assert [m.post for m in page.matches] == ["p2", "p1"]
    assert page.matches[0].langs == ("fr-CA",)
    assert [m.post for m in store.matches("acme", "a1", MatchFilter(lang="fr")).matches] == ["p2"]
    assert [m.post for m in store.matches("acme", "a1", MatchFilter(text="CAFÉ")).matches] == ["p2"]
    # folded as matching folds: case and accents, beyond ASCII too
    assert [m.post for m in store.matches("acme", "a1", MatchFilter(text="Cafe")).matches] == ["p2"]
    assert [m.post for m in store.matches("acme", "a1", MatchFilter(text="LE 100")).matches] == [
        "p2"
    ]
    # LIKE's wildcards are the text's own characters, never patterns
    assert [m.post for m in store.matches("acme", "a1", MatchFilter(text="100%")).matches] == ["p2"]
    assert store.matches("acme", "a1", MatchFilter(text="0%h")).matches == []
    assert store.matches("acme", "a1", MatchFilter(text="hubbub_ c")).matches[0].post == "p2"
    assert store.matches("acme", "a1", MatchFilter(text="hubbubx c")).matches == []
    first = store.matches("acme", "a1", MatchFilter(limit=1))
    assert first.more
    assert [m.post for m in first.matches] == ["p2"]
    rest = store.matches("acme", "a1", MatchFilter(limit=1, before=first.matches[0].position))
    assert not rest.more
    assert [m.post for m in rest.matches] == ["p1"]
    since = store.matches("acme", "a1", MatchFilter(since_us=T0 + 2 * S))
    assert [m.post for m in since.matches] == ["p2"]
    assert [m.post for m in store.matches("globex", "a1", MatchFilter()).matches] == ["p3"]
    # Where the fold is: a live view of the matches resumes there, whoever's they are.
    assert store.matches("acme", "a1", MatchFilter()).folded == 4


def test_a_withdrawn_match_goes_and_deleted_posts_find_their_matches(
    store: SqlListeningStore,
) -> None:
    fold(store, match("acme", "a1", "p1", 1), match("acme", "a2", "p1", 2),
         match("globex", "g1", "p1", 3), match("acme", "a1", "p2", 4))  # fmt: skip
    assert sorted(store.matched(["p1", "p9"])) == sorted([
        Withdrawn("acme", "a1", "p1"), Withdrawn("acme", "a2", "p1"),
        Withdrawn("globex", "g1", "p1"),
    ])  # fmt: skip
    fold(store, withdrawn=(Withdrawn("acme", "a1", "p1"),))
    assert [m.post for m in store.matches("acme", "a1", MatchFilter()).matches] == ["p2"]
    assert [m.post for m in store.matches("acme", "a2", MatchFilter()).matches] == ["p1"]


def test_a_fold_from_positions_that_moved_is_refused(store: SqlListeningStore) -> None:
    fold(store, match("acme", "a1", "p1", 1))
    with pytest.raises(StalePositions):
        store.apply([match("acme", "a1", "p2", 2)], [], {"matches": 2}, {"matches": 0})
    with pytest.raises(StalePositions):  # a first fold made meanwhile by another worker
        store.apply([match("acme", "a1", "p2", 2)], [], {"matches": 2}, {})
    assert store.positions() == {"matches": 1}


def test_the_matchers_positions_only_move_forward(store: SqlListeningStore) -> None:
    store.advance({"posts": 10, "deletes": 3})
    store.advance({"posts": 8})
    assert store.positions() == {"posts": 10, "deletes": 3}


def test_prune_keeps_the_newest_per_search_and_nothing_too_old(store: SqlListeningStore) -> None:
    fold(store, *(match("acme", "a1", f"p{n}", n) for n in range(1, 11)))
    fold(store, match("globex", "g1", "old", 11, created_at=T0 - 100 * S))
    assert store.prune(keep_per_search=4, before_us=T0) == 7
    assert [m.post for m in store.matches("acme", "a1", MatchFilter()).matches] == [
        "p10", "p9", "p8", "p7"
    ]  # fmt: skip
    assert store.matches("globex", "g1", MatchFilter()).matches == []


def test_prune_drops_the_same_in_chunks_of_any_size(store: SqlListeningStore) -> None:
    fold(store, *(match("acme", "a1", f"p{n}", n) for n in range(1, 12)))
    fold(store, *(match("globex", "g1", f"old{n}", 20 + n, created_at=T0 - S) for n in range(5)))
    assert store.prune(keep_per_search=4, before_us=T0, chunk=2, pause_s=0) == 12
    assert [m.post for m in store.matches("acme", "a1", MatchFilter()).matches] == [
        "p11", "p10", "p9", "p8"
    ]  # fmt: skip
    assert store.matches("globex", "g1", MatchFilter()).matches == []
    assert store.prune(keep_per_search=4, before_us=T0, chunk=2, pause_s=0) == 0


def test_removing_a_search_drops_its_matches(store: SqlListeningStore) -> None:
    store.put_search(search("acme", "a1"), max_searches=5)
    fold(store, match("acme", "a1", "p1", 1))
    store.remove_search("acme", "a1")
    store.put_search(search("acme", "a1"), max_searches=5)
    assert store.matches("acme", "a1", MatchFilter()).matches == []
