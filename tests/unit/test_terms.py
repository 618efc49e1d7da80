"""Watched terms: how a term is normalised, which texts contain it, and how it is counted."""

from __future__ import annotations

import pytest

from hubbub.analytics.rollups import MINUTE_US, fold
from hubbub.analytics.terms import InvalidTerm, TermMatcher, term_key
from hubbub.eventlog.ports import Record
from hubbub.kernel.events import DELETES, POSTS, PostDeleted, PostEdited, PostPublished

CLIMATE = "climate change"
MINUTE = 29_580_000  # an epoch minute (2026-03-29)


@pytest.mark.parametrize(
    ("term", "key"),
    [
        ("climate change", "climate change"),
        ("Climate  Change!", "climate change"),
        ("  CLIMATE-CHANGE  ", "climate change"),
        ("«climate», change?", "climate change"),
        ("Café Crème", "cafe creme"),
        ("Ça va", "ca va"),
        ("Straße", "strasse"),
        ("東京", "東京"),
    ],
)
def test_a_term_is_kept_as_its_lower_case_unaccented_words(term: str, key: str) -> None:
    assert term_key(term) == key


@pytest.mark.parametrize("term", ["", "   ", "!!!", "— … —", "✨🔥"])
def test_a_term_without_a_word_is_refused(term: str) -> None:
    with pytest.raises(InvalidTerm, match="no word"):
        term_key(term)


@pytest.mark.parametrize(
    "text",
    [
        "…the climate change debate…",
        "Climate Change is here",
        "CLIMATE-CHANGE!",
        "they said climate, change. Again",
        "climate\nchange",
        "clímáte chänge",
        "we talk about climate change",
    ],
)
def test_a_phrase_is_found_by_its_words_whatever_the_case_accents_or_punctuation(
    text: str,
) -> None:
    assert TermMatcher([CLIMATE]).match(text) == (CLIMATE,)


@pytest.mark.parametrize(
    "text",
    ["climates changed", "climate changes", "the climate will change", "change climate", "", "…"],
)
def test_only_the_whole_words_in_order_match(text: str) -> None:
    assert TermMatcher([CLIMATE]).match(text) == ()


def test_several_terms_are_found_once_each_in_a_stable_order() -> None:
    matcher = TermMatcher([CLIMATE, "climate crisis", "python", "climate"])
    text = (
        "Python and climate change; climate change again, not a climate-crisis? Yes, climate crisis"
    )
    assert matcher.match(text) == ("climate", "climate change", "climate crisis", "python")
    assert matcher.match("python") == ("python",)
    assert matcher.match("Pythonic climatology") == ()


def test_an_empty_matcher_matches_nothing() -> None:
    matcher = TermMatcher()
    assert not matcher
    assert matcher.match("climate change") == ()
    assert TermMatcher([CLIMATE])


def post(n: int, text: str, minute: int = MINUTE) -> PostPublished:
    return PostPublished(
        id=f"p{n}", key="alice", ts=minute * MINUTE_US + n, source="jetstream",
        post=f"post{n}", author="alice", text=text,
    )  # fmt: skip


def deletion(n: int) -> PostDeleted:
    return PostDeleted(
        id=f"d{n}", key="alice", ts=0, source="jetstream", post=f"post{n}", author="alice"
    )


def records(topic: str, *events: PostPublished | PostDeleted) -> list[Record]:
    return [Record(topic, n, event) for n, event in enumerate(events, 1)]


def test_fold_counts_each_watched_term_once_per_post_in_its_minute() -> None:
    matcher = TermMatcher([CLIMATE, "heat"])
    deltas = fold(
        records(
            POSTS,
            post(1, "Climate change, climate change!"),
            post(2, "heat and CLIMATE-CHANGE"),
            post(3, "climates changed", MINUTE + 1),
            post(4, "a heat wave", MINUTE + 1),
        ),
        {},
        matcher,
    )
    assert dict(deltas.terms) == {
        (CLIMATE, MINUTE): 2,
        ("heat", MINUTE): 1,
        ("heat", MINUTE + 1): 1,
    }
    assert deltas.contributions["post1"].terms == (CLIMATE,)
    assert deltas.contributions["post3"].terms == ()


def test_without_watched_terms_no_term_is_counted() -> None:
    deltas = fold(records(POSTS, post(1, "climate change")), {})
    assert dict(deltas.terms) == {}
    assert deltas.contributions["post1"].terms == ()


def test_a_delete_subtracts_the_terms_its_post_added_whatever_is_watched_now() -> None:
    both = records(POSTS, post(1, "climate change"), post(2, "climate change"))
    posted = fold(both, {}, TermMatcher([CLIMATE]))
    # The watch was removed since: what the post added is taken back all the same.
    deleted = fold(records(DELETES, deletion(1)), posted.contributions, TermMatcher())
    assert dict(deleted.terms) == {(CLIMATE, MINUTE): -1}
    assert deleted.totals[MINUTE]["deleted"] == 1


def test_a_delete_in_the_same_batch_leaves_nothing_counted() -> None:
    deltas = fold(
        [
            Record(POSTS, 1, post(1, "climate change")),
            Record(DELETES, 1, deletion(1)),
        ],
        {},
        TermMatcher([CLIMATE]),
    )
    assert dict(deltas.terms) == {(CLIMATE, MINUTE): 0}


def test_an_edit_that_drops_the_term_takes_its_count_back() -> None:
    posted = fold(records(POSTS, post(1, "climate change")), {}, TermMatcher([CLIMATE]))
    edit = PostEdited(
        id="e1", key="alice", ts=(MINUTE + 5) * MINUTE_US, source="jetstream", post="post1",
        author="alice", text="the weather, really",
    )  # fmt: skip
    edited = fold([Record(POSTS, 2, edit)], posted.contributions, TermMatcher([CLIMATE]))
    assert dict(edited.terms) == {(CLIMATE, MINUTE): -1}  # in the post's own minute
    assert edited.contributions["post1"].terms == ()
