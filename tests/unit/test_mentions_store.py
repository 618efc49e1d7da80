"""PageStore against a brute-force model: a dict of pages, scanned on every query."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.mentions.index import MAX_SCORE
from hubbub.mentions.matching import Suggestion
from hubbub.mentions.pages import Page
from hubbub.mentions.store import PageStore, warm_up

HANDLES = [None, "", "ab", "abc", "b.c", "ba", "é", "@"]
NAMES = [None, "", "Ab Cd", "ab", "Bé a", "c", "!!"]


def expected(pages: dict[str, Page], prefix: str, k: int) -> list[int]:
    """Scores (capped followers) of the k best suggestible pages matching `prefix`."""
    found = [
        min(p.followers, MAX_SCORE)
        for p in pages.values()
        if p.suggestible and any(key.startswith(prefix) for key in p.keys())
    ]
    return sorted(found, reverse=True)[:k]


def check_top_k(store: PageStore, pages: dict[str, Page], prefix: str, k: int) -> None:
    found = store.top_k(prefix, k)
    ids = [page_id for page_id, _ in found]
    assert len(set(ids)) == len(ids), found
    scores = [min(followers, MAX_SCORE) for _, followers in found]
    assert scores == expected(pages, prefix, k), (prefix, found)
    for page_id, followers in found:
        page = pages[page_id]
        assert page.suggestible
        assert page.followers == followers
        assert any(key.startswith(prefix) for key in page.keys())


def check_pages(store: PageStore, pages: dict[str, Page], ids: list[str]) -> None:
    assert len(store) == len(pages)
    for page_id in ids:
        assert store.get(page_id) == pages.get(page_id)
        assert (page_id in store) == (page_id in pages)


def random_page(rng: random.Random, page_id: str) -> Page:
    followers = rng.choice([0, 1, 2, 3, 5, MAX_SCORE, MAX_SCORE + 7])
    return Page(
        page_id,
        rng.choice(["bluesky", "mastodon"]),
        rng.choice(HANDLES),
        rng.choice(NAMES),
        followers,
        rng.random() < 0.85,
    )


PREFIXES = ["", "a", "ab", "abc", "b", "b.", "e", "é", "c", "cd", "z", "!"]


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("delta_limit", [0, 5, 100_000])
def test_store_matches_model(seed: int, delta_limit: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    ids = [f"p{i}" for i in range(30)]
    pages = {i: random_page(rng, i) for i in rng.sample(ids, 15)}
    store = PageStore.build(pages.values(), delta_limit=delta_limit)
    for step in range(80):
        page_id = rng.choice(ids)
        action = rng.random()
        if action < 0.35:
            page = random_page(rng, page_id)
        elif action < 0.7 and page_id in pages:
            page = store[page_id]
            page.followers = rng.choice([0, 1, 4, 9, MAX_SCORE + 1])
        elif action < 0.8 and page_id in pages:
            page = store[page_id]
            page.active = not page.active
        elif action < 0.87:
            store.compact()
            assert store.delta_size == 0
            continue
        elif action < 0.93:
            before = [store.top_k(prefix, 3) for prefix in PREFIXES]
            store.save(tmp_path / "snapshot", {"position": step})
            store, meta = PageStore.load(tmp_path / "snapshot")
            assert meta == {"position": step}
            assert [store.top_k(prefix, 3) for prefix in PREFIXES] == before
            continue
        else:
            continue
        store.put(page)
        pages[page_id] = page
        for prefix in rng.sample(PREFIXES, 4):
            check_top_k(store, pages, prefix, rng.choice([1, 2, 5, 50]))
        check_pages(store, pages, rng.sample(ids, 5))
    check_pages(store, pages, ids)


@settings(max_examples=60, deadline=None)
@given(
    initial=st.lists(
        st.tuples(st.integers(0, 9), st.integers(0, 6), st.integers(0, 5)), max_size=12
    ),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["put", "followers", "compact", "reload"]),
            st.integers(0, 9),
            st.integers(0, 6),
            st.integers(0, 5),
        ),
        max_size=25,
    ),
    prefix=st.sampled_from(PREFIXES),
    k=st.integers(0, 12),
)
def test_store_hypothesis(
    initial: list[tuple[int, int, int]],
    ops: list[tuple[str, int, int, int]],
    prefix: str,
    k: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    def make(number: int, shape: int, followers: int) -> Page:
        handle = HANDLES[shape % len(HANDLES)]
        return Page(f"id{number}", "bluesky", handle, NAMES[shape], followers, shape != 3)

    pages: dict[str, Page] = {}
    for number, shape, followers in initial:
        pages[f"id{number}"] = make(number, shape, followers)
    store = PageStore.build([make(*row) for row in initial], delta_limit=3)
    directory = tmp_path_factory.mktemp("store") / "snapshot"
    for op, number, shape, followers in ops:
        page_id = f"id{number}"
        if op == "put":
            page = make(number, shape, followers)
        elif op == "followers":
            page = store.get(page_id) or Page(page_id, "bluesky")
            page.followers = followers
        elif op == "compact":
            store.compact()
            continue
        else:
            store.save(directory, {})
            store, _ = PageStore.load(directory)
            continue
        store.put(page)
        pages[page_id] = page
        check_top_k(store, pages, prefix, k)
    check_top_k(store, pages, prefix, k)
    check_pages(store, pages, [f"id{i}" for i in range(10)])


def test_follower_change_is_in_place_and_rename_moves_keys() -> None:
    store = PageStore.build(
        [
            Page("a", "bluesky", "anna.bsky.social", "Anna Smith", 10),
            Page("b", "bluesky", "bob.bsky.social", "Bob", 5),
            Page("a", "bluesky", "anna.bsky.social", "Anna Smith", 12),  # replaces the first
        ]
    )
    assert len(store) == 2
    assert store.top_k("s") == [("a", 12)]
    page = store["a"]
    page.followers = 1
    assert store["a"].followers == 12  # a copy: no effect until put
    store.put(page)
    assert store.delta_size == 0
    assert store.top_k("") == [("b", 5), ("a", 1)]
    page.display_name = "Alice"
    store.put(page)
    assert store.delta_size == 2  # "anna.bsky.social", "alice"
    assert store.top_k("s") == []
    assert store.top_k("al") == [("a", 1)]
    store.compact()
    assert store.delta_size == 0
    assert store.top_k("al") == [("a", 1)]
    assert store["a"] == Page("a", "bluesky", "anna.bsky.social", "Alice", 1)


def test_pages_without_keys_take_no_delta_keys_but_keep_followers() -> None:
    store = PageStore()
    store.put(Page("x", "bluesky", followers=7))
    assert store.delta_size == 0
    assert "x" in store
    assert store.top_k("") == []
    page = store["x"]
    page.handle = "xavier"
    store.put(page)
    assert store.top_k("xa") == [("x", 7)]


def test_deactivated_and_huge_counts() -> None:
    big = MAX_SCORE + 1000
    store = PageStore.build(
        [Page("a", "bluesky", "ab", None, big), Page("b", "bluesky", "ab2", None, MAX_SCORE)]
    )
    assert sorted(store.top_k("ab")) == [("a", big), ("b", MAX_SCORE)]  # both rank as MAX_SCORE
    page = store["a"]
    page.active = False
    store.put(page)
    assert store.top_k("ab") == [("b", MAX_SCORE)]
    assert store["a"].followers == big
    page.active = True
    store.put(page)
    assert len(store.top_k("ab")) == 2


def test_unknown_pages() -> None:
    store = PageStore.build([Page("a", "bluesky", "ab")])
    assert store.get("nope") is None
    assert "nope" not in store
    assert 3 not in store
    with pytest.raises(KeyError):
        store["nope"]
    assert store.top_k("a", 0) == []
    assert store.nbytes > 0


def test_load_rejects_missing_and_corrupt_snapshots(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"manifest\.json"):
        PageStore.load(tmp_path / "absent")
    store = PageStore.build([Page("a", "bluesky", "ab", None, 3)])
    store.save(tmp_path / "s", {"position": 1})
    (tmp_path / "s" / "tree.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"tree\.npy"):
        PageStore.load(tmp_path / "s")
    store.save(tmp_path / "s", {"position": 2})
    (tmp_path / "s" / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match=r"manifest\.json"):
        PageStore.load(tmp_path / "s")


def test_save_replaces_the_snapshot(tmp_path: Path) -> None:
    store = PageStore.build([Page("a", "bluesky", "ab", None, 3)])
    store.save(tmp_path / "s", {"position": 1})
    store.put(Page("b", "bluesky", "abc", None, 9))
    store.save(tmp_path / "s", {"position": 2})
    loaded, meta = PageStore.load(tmp_path / "s")
    assert meta == {"position": 2}
    assert loaded.top_k("ab") == [("b", 9), ("a", 3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_warm_up_runs() -> None:
    warm_up()


@settings(max_examples=200, deadline=None)
@given(
    pages=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),
            st.one_of(st.none(), st.text(max_size=12)),
            st.one_of(st.none(), st.text(max_size=12)),
            st.integers(0, 10**12),
            st.sampled_from(["jetstream", "mastodon", 'we"ird\\source']),
        ),
        max_size=12,
    )
)
def test_json_answers_are_what_msgspec_writes(
    pages: list[tuple[str, str | None, str | None, int, str]],
) -> None:
    """Any text (quotes, backslashes, control characters, emoji) is escaped alike."""
    store = PageStore.build(
        Page(page_id, source, handle, name, followers)
        for page_id, handle, name, followers, source in pages
    )
    for prefix in ["", *sorted({key for page in pages for key in _keys(page)})[:5]]:
        found = store.top_pages(prefix, 50)
        expected = msgspec.json.encode(
            [Suggestion(p.id, p.handle, p.display_name, p.followers, p.source) for p in found]
        )
        assert store.top_json(prefix, 50) == expected


def _keys(page: tuple[str, str | None, str | None, int, str]) -> list[str]:
    return [key[:2] for key in Page(page[0], page[4], page[1], page[2]).keys()]
