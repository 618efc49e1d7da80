"""PrefixTopK against a brute-force oracle."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.mentions.index import MAX_SCORE, PrefixTopK

ALPHABET = "abc"


def oracle(keys: list[str], pages: list[int], scores: list[int], prefix: str, k: int) -> list[int]:
    """Pages with a key starting with `prefix`, by (-score, page), removed (-1) left out."""
    matching = {p for key, p in zip(keys, pages, strict=True) if key.startswith(prefix)}
    live = [p for p in matching if scores[p] >= 0]
    return sorted(live, key=lambda p: (-scores[p], p))[:k]


def random_key(rng: random.Random, alphabet: str = ALPHABET, low: int = 1, high: int = 4) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def random_prefixes(rng: random.Random, keys: list[str]) -> list[str]:
    out = ["", "zzz", "abcabcabcabc", random_key(rng)]
    for _ in range(6):
        if keys:
            key = rng.choice(keys)
            out.append(key[: rng.randint(1, len(key))])
    return out


@pytest.mark.parametrize("seed", range(40))
def test_prefix_top_k_matches_oracle_under_updates(seed: int) -> None:
    rng = random.Random(seed)
    n_pages = rng.randint(1, 60)
    scores = [rng.randint(0, 5) for _ in range(n_pages)]  # few values: many ties
    keys: list[str] = []
    pages: list[int] = []
    for page in range(n_pages):
        for _ in range(rng.randint(0, 4)):  # several keys, often in the same range
            keys.append(random_key(rng))
            pages.append(page)
    index = PrefixTopK.build(keys, pages, scores)
    assert len(index) == len(keys)
    for _ in range(30):
        action = rng.random()
        page = rng.randrange(n_pages)
        if action < 0.5:
            score = rng.randint(0, 5)
            index.set_score(page, score)
            if scores[page] >= 0:
                scores[page] = score
        elif action < 0.6:
            index.remove(page)
            scores[page] = -1
        for prefix in random_prefixes(rng, keys):
            k = rng.choice([1, 3, 10, 1000])
            assert index.top_k(prefix, k) == oracle(keys, pages, scores, prefix, k), prefix
            assert index.score(page) == scores[page]


@settings(max_examples=150, deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.text(alphabet="abé", min_size=0, max_size=4), st.integers(0, 7)),
        max_size=40,
    ),
    scores=st.lists(st.integers(0, 3), min_size=8, max_size=8),
    prefix=st.text(alphabet="abé", max_size=3),
    k=st.integers(0, 12),
)
def test_prefix_top_k_hypothesis(
    entries: list[tuple[str, int]], scores: list[int], prefix: str, k: int
) -> None:
    keys = [key for key, _ in entries]
    pages = [page for _, page in entries]
    index = PrefixTopK.build(keys, pages, scores)
    assert index.top_k(prefix, k) == oracle(keys, pages, scores, prefix, k)


def test_prefix_top_k_edge_cases() -> None:
    index = PrefixTopK.build(["ab", "abc", "b"], [0, 1, 1], [5, 7])
    assert index.top_k("abcd") == []  # longer than any key
    assert index.top_k("c") == []  # empty range
    assert index.top_k("a", 0) == []
    assert index.top_k("a", 100) == [1, 0]  # k larger than the matches
    assert index.top_k("") == [1, 0]  # each page once
    assert index.keys_of(1) == ["abc", "b"]
    assert index.nbytes > 0
    assert index.n_pages == 2
    index.remove(1)
    index.set_score(1, 100)  # ignored once removed
    assert index.top_k("") == [0]
    assert PrefixTopK.build([], [], []).top_k("a") == []
    assert PrefixTopK.build(["a"], [0], [3]).top_k("a") == [0]


def test_prefix_top_k_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="pages"):
        PrefixTopK.build(["a"], [], [1])
    with pytest.raises(ValueError, match="ordinals"):
        PrefixTopK.build(["a"], [1], [1])
    with pytest.raises(ValueError, match="scores"):
        PrefixTopK.build(["a"], [0], [MAX_SCORE + 1])
    index = PrefixTopK.build(["a"], [0], [1])
    with pytest.raises(ValueError, match="score"):
        index.set_score(0, -5)


def test_large_range_one_letter_prefix() -> None:
    rng = np.random.default_rng(7)
    n_pages = 100_000
    scores = rng.zipf(1.3, n_pages).clip(0, MAX_SCORE).astype(np.int64)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    keys = ["".join(row) for row in rng.choice(letters, size=(2 * n_pages, 5))]
    pages = [i // 2 for i in range(2 * n_pages)]
    index = PrefixTopK.build(keys, pages, scores)
    score_list = scores.tolist()
    for prefix in ["a", "q", "zz", ""]:
        assert index.top_k(prefix) == oracle(keys, pages, score_list, prefix, 10)
    best = index.top_k("a")
    for page in best[:3]:
        index.set_score(page, 0)
        score_list[page] = 0
    index.remove(best[3])
    score_list[best[3]] = -1
    assert index.top_k("a") == oracle(keys, pages, score_list, "a", 10)
