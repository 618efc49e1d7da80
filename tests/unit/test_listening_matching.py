"""Which posts a saved search matches: the rules on held-out multilingual cases, and the
indexed `Matcher` against the brute-force `matches` on random queries and posts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.kernel.events import PostPublished
from hubbub.listening.matching import Matcher, Prepared, matches
from hubbub.listening.query import (
    And,
    Author,
    Fragment,
    Has,
    Lang,
    Near,
    Node,
    Not,
    Page,
    Phrase,
    Tag,
    Word,
    folded,
    parse,
    terms_of,
)

CASES = json.loads((Path(__file__).parents[1] / "fixtures" / "listening_cases.json").read_text())
PAGES = {"alice.bsky.social": ["did:plc:alice"], "bob": ["did:plc:bob", "https://m.social/@bob"]}


def post(text: str, **fields: Any) -> PostPublished:
    fields.setdefault("author", "did:plc:someone")
    return PostPublished(id="e", key="k", ts=0, source="test", post="at://p", text=text, **fields)


def case_post(case: dict[str, Any]) -> PostPublished:
    fields = {k: v for k, v in case.items() if k not in ("query", "text", "expected", "note")}
    return post(case["text"], **fields)


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda case: case["note"])
def test_a_held_out_case_matches_as_written(case: dict[str, Any]) -> None:
    query = parse(case["query"])
    assert matches(query, case_post(case), CASES["pages"]) is case["expected"]
    matcher = Matcher()
    matcher.put("search", query, CASES["pages"])
    assert matcher.match(case_post(case)) == (["search"] if case["expected"] else [])


def test_the_held_out_cases_cover_every_language_and_construct() -> None:
    queries = " ".join(case["query"] for case in CASES["cases"])
    assert len(CASES["cases"]) >= 40
    for construct in ("NEAR/", " OR ", "NOT ", "#", "@", "from:", "lang:", "has:", "is:", '"'):
        assert construct in queries


def test_a_handle_matches_the_pages_it_resolves_to() -> None:
    query = parse("@bob")
    assert matches(query, post("hi", mentions=["https://m.social/@bob"]), PAGES)
    assert not matches(query, post("hi", mentions=["https://m.social/@bob"]))
    assert matches(query, post("hi @Bob!"))
    assert not matches(query, post("hi @bobby"))
    assert matches(parse("from:bob"), post("hi", author="did:plc:bob"), PAGES)
    assert not matches(parse("from:bob"), post("hi", author="did:plc:alice"), PAGES)


def test_near_counts_the_words_between_and_never_pairs_a_word_with_itself() -> None:
    assert matches(parse("a NEAR/0 b"), post("b a"))
    assert not matches(parse("a NEAR/0 b"), post("a x b"))
    assert matches(parse("a NEAR/1 b"), post("a x b"))
    assert not matches(parse("a NEAR/5 a"), post("just a word"))
    assert matches(parse("a NEAR/5 a"), post("a and a"))
    assert matches(parse('"new york" NEAR/1 pizza'), post("pizza in New York"))


def test_a_phrase_may_begin_and_end_inside_runs_of_an_unspaced_script() -> None:
    assert matches(parse('"iphone 発売"'), post("iPhone発売日"))
    assert matches(parse('"東京 tower"'), post("新東京 Tower"))
    assert not matches(parse('"東京 tower"'), post("東京都 Tower"))


def test_the_matcher_adds_replaces_and_removes_searches() -> None:
    matcher = Matcher()
    matcher.put("t\x00coffee", parse("coffee"))
    matcher.put("t\x00nothing", parse("NOT spam"))
    matcher.put("u\x00coffee", parse("#coffee OR tea"))
    assert len(matcher) == 3
    assert matcher.costly() == ["t\x00nothing"]
    assert matcher.match(post("coffee #coffee")) == ["t\x00coffee", "t\x00nothing", "u\x00coffee"]
    matcher.put("t\x00coffee", parse("decaf"))
    matcher.put("t\x00nothing", parse("coffee"))
    assert matcher.costly() == []
    assert matcher.match(post("coffee")) == ["t\x00nothing"]
    matcher.remove("t\x00nothing")
    matcher.remove("unknown")
    assert len(matcher) == 2
    assert matcher.match_many([post("coffee"), post("tea")]) == [[], ["u\x00coffee"]]


# Random queries and posts over a small vocabulary, so that they often match.

WORDS = [
    "cat", "category", "Café", "cafe", "CAFÉ", "Straße", "strasse", "naïve", "sci-fi",
    "東京", "東京タワー", "タワー", "猫", "ガス", "カス", "ｶﾞｽ", "☕", "☕☕", "한국", "서울", "كرة",
    "القهوة", "iPhone発売", "x", "2026",
]  # fmt: skip
TAGS = ["coffee", "café", "日本", "Fußball"]
# Full-width # and @ fold to # and @.
TEXT_EXTRAS = ["#coffee", "#Café", "\uff03日本", "@bob", "\uff20alice.bsky.social", "@bobby"]
# Half the words of a post are drawn from these few, so that phrases and NEAR match.
CORE = ["cat", "cafe", "x", "東京", "タワー"]
LEAVES = [
    *WORDS, '"cat category"', '"東京 タワー"', '"cafe cat"', '"x cat"', '"タワー x"',
    "#coffee", "#cafe", "#日本", "#fussball", "@bob", "@alice.bsky.social", "from:bob",
    "from:did:plc:carol", "lang:en", "lang:en-us", "lang:ja", "has:link", "has:media",
    "is:reply", "cat NEAR/1 cafe", "x NEAR/0 cat", '"cafe cat" NEAR/0 東京',
    "タワー NEAR/2 x", '"x cat" NEAR/1 cafe',
]  # fmt: skip

queries = st.recursive(
    st.sampled_from(LEAVES),
    lambda inner: st.one_of(
        st.builds("({} OR {})".format, inner, inner),
        st.builds("{} AND {}".format, inner, inner),
        st.builds("{} {}".format, inner, inner),
        st.builds("NOT {}".format, inner),
        st.builds("({} AND NOT {})".format, inner, inner),
    ),
    max_leaves=6,
)
texts = st.lists(
    st.tuples(
        st.sampled_from(CORE) | st.sampled_from(WORDS + TEXT_EXTRAS),
        st.sampled_from([" ", "", ", ", "-", "_"]),
    ),
    max_size=8,
).map(lambda parts: "".join(word + glue for word, glue in parts))
posts = st.builds(
    post,
    texts,
    author=st.sampled_from(["did:plc:bob", "did:plc:carol", "did:plc:alice"]),
    tags=st.lists(st.sampled_from(TAGS), max_size=2),
    mentions=st.lists(st.sampled_from(["did:plc:alice", "https://m.social/@bob"]), max_size=2),
    langs=st.sampled_from([[], ["en"], ["en-US"], ["ja"], ["eng"]]),
    links=st.sampled_from([[], ["https://example.com"]]),
    media=st.integers(0, 2),
    reply_parent=st.sampled_from([None, "at://did:plc:bob/app.bsky.feed.post/1"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(queries, min_size=1, max_size=12), st.lists(posts, min_size=1, max_size=6))
def test_the_matcher_finds_what_brute_force_finds(texts: list[str], batch: list[Any]) -> None:
    searches = {f"search{number}": parse(text) for number, text in enumerate(texts)}
    # The second learns which keys are rare from every post and anchors again at once.
    matchers = [Matcher(), Matcher(sample_every=1, learn_after=(1, 3))]
    for matcher in matchers:
        for key, query in searches.items():
            matcher.put(key, query, PAGES)
    expected = [
        sorted(key for key, query in searches.items() if matches(query, each, PAGES))
        for each in batch
    ]
    for matcher in matchers:
        assert matcher.match_many(batch) == expected
        assert matcher.match_many(batch[::-1]) == expected[::-1]
        assert sorted(matcher.costly()) == sorted(k for k, q in searches.items() if q.costly)


def naive(node: Node, each: PostPublished) -> bool:
    """The rules of `hubbub.listening.matching`, written as plainly as possible: the
    whole text folded at once, every span tried, nothing compiled or remembered."""
    text = folded(each.text)
    terms = terms_of(text)
    if isinstance(node, Word | Fragment | Phrase):
        return bool(naive_spans(node, terms))
    if isinstance(node, Near):
        return any(
            max(a[0], b[0]) - min(a[1], b[1]) - 1 <= node.distance
            for a in naive_spans(node.left, terms)
            for b in naive_spans(node.right, terms)
            if a[1] < b[0] or b[1] < a[0]
        )
    if isinstance(node, Tag):
        return node.name in [folded(t) for t in each.tags] + re.findall(r"(?<![\w&])#(\w+)", text)
    if isinstance(node, Page):
        handles = [h.rstrip(".-") for h in re.findall(r"(?<![\w@])@([\w.\-@]+)", text)]
        return node.handle in handles or bool(set(PAGES.get(node.handle, [])) & set(each.mentions))
    if isinstance(node, Author):
        named = PAGES.get(node.handle, []) if node.handle else []
        return each.author in [node.literal, *named]
    if isinstance(node, Lang):
        return any(
            lang.lower() == node.code or lang.lower().startswith(node.code + "-")
            for lang in each.langs
        )
    if isinstance(node, Has):
        flags = {"has:link": bool(each.links), "has:media": each.media > 0}
        return flags.get(node.flag, bool(each.reply_parent))
    if isinstance(node, Not):
        return not naive(node.child, each)
    outcomes = [naive(child, each) for child in node.children]
    return all(outcomes) if isinstance(node, And) else any(outcomes)


def naive_spans(term: Word | Fragment | Phrase, terms: list[str]) -> list[tuple[int, int]]:
    parts = term.parts if isinstance(term, Phrase) else (term,)
    found = []
    for start in range(len(terms) - len(parts) + 1):
        window = terms[start : start + len(parts)]
        if all(
            naive_part(part, index, len(parts), window[index]) for index, part in enumerate(parts)
        ):
            found.append((start, start + len(parts) - 1))
    return found


def naive_part(part: Word | Fragment, index: int, size: int, term: str) -> bool:
    if isinstance(part, Word):
        return part.text == term
    if size == 1:
        return part.text in term
    if index == 0:
        return term.endswith(part.text)
    return term.startswith(part.text) if index == size - 1 else part.text == term


@settings(max_examples=400, deadline=None)
@given(queries, posts)
def test_brute_force_follows_the_rules_as_plainly_written(text: str, each: PostPublished) -> None:
    query = parse(text)
    assert matches(query, each, PAGES) is naive(query.expression, each)


core_terms = st.lists(st.sampled_from(CORE), min_size=1, max_size=2).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        core_terms.map('"{}"'.format),
        st.builds(
            "{} NEAR/{} {}".format, core_terms.map('"{}"'.format), st.integers(0, 3), core_terms
        ),
    ),
    st.lists(st.tuples(st.sampled_from(CORE), st.sampled_from([" ", "", ", "])), max_size=8).map(
        lambda parts: "".join(word + glue for word, glue in parts)
    ),
)
def test_phrases_and_near_follow_the_rules_as_plainly_written(text: str, body: str) -> None:
    query = parse(text)
    assert matches(query, post(body)) is naive(query.expression, post(body))


@settings(max_examples=300, deadline=None)
@given(texts | st.text())
def test_a_post_is_cut_into_the_terms_of_its_folded_text(text: str) -> None:
    assert Prepared(post(text)).sequence == terms_of(folded(text))


def test_the_benchmark_matches_generated_posts_against_generated_searches() -> None:
    from hubbub.benchmarks.listening import run_matching

    figures = run_matching(searches=300, posts=2_000)
    assert figures["posts"] == 2_000
    assert figures["costly_searches"] == 5
    assert figures["posts_per_s"] > 0
    assert figures["matches_per_post"] > 0
