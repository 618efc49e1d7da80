"""The saved searches' query language: what each construct parses to, and the errors an
analyst sees for a query that does not parse."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.listening.query import (
    And,
    Author,
    Fragment,
    Has,
    Lang,
    Near,
    Node,
    Not,
    Or,
    Page,
    Phrase,
    Query,
    QueryError,
    Tag,
    Word,
    parse,
)

TERM = 'a word, a "phrase", a #hashtag, an @page or ('


def w(text: str) -> Word:
    return Word(text)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("coffee", w("coffee")),
        ("Café", w("cafe")),
        ('"flat white"', Phrase((w("flat"), w("white")))),
        ('"  Coffee  "', w("coffee")),
        ("sci-fi", Phrase((w("sci"), w("fi")))),
        ("東京タワー", Fragment("東京タワー")),
        ("iPhone発売", Phrase((w("iphone"), Fragment("発売")))),
        ("☕", Fragment("☕")),
        ("#Fußball", Tag("fussball")),
        ("@Hubbub.Social", Page("hubbub.social")),
        ("@bob@Mastodon.social,", Page("bob@mastodon.social")),
        ("-5", w("5")),
        ("from:Alice.bsky.social", Author("alice.bsky.social", "alice.bsky.social")),
        ("from:@alice", Author("alice", "alice")),
        ("from:did:plc:abc", Author("did:plc:abc", None)),
        ("from:https://mastodon.social/@bob", Author("https://mastodon.social/@bob", None)),
        ("lang:pt-BR", Lang("pt-br")),
        ("LANG:en", Lang("en")),
        ("has:link", Has("has:link")),
        ("has:media", Has("has:media")),
        ("is:reply", Has("is:reply")),
        ("price NEAR/3 rise", Near(w("price"), w("rise"), 3)),
        ('"gas price" NEAR/0 rise', Near(Phrase((w("gas"), w("price"))), w("rise"), 0)),
        ("a AND b", And((w("a"), w("b")))),
        ("a b c", And((w("a"), w("b"), w("c")))),
        ("a OR b OR c", Or((w("a"), w("b"), w("c")))),
        ("a and b", And((w("a"), w("and"), w("b")))),
        ("NOT spam", Not(w("spam"))),
        ("a AND NOT b", And((w("a"), Not(w("b"))))),
        ("a NOT b", And((w("a"), Not(w("b"))))),
        ("NOT NOT a", Not(Not(w("a")))),
        ("a OR b c", Or((w("a"), And((w("b"), w("c")))))),
        ("(a OR b) c", And((Or((w("a"), w("b"))), w("c")))),
        ("NOT a OR b", Or((Not(w("a")), w("b")))),
        ("NOT (a OR b)", Not(Or((w("a"), w("b"))))),
        ("a NEAR/2 b OR c", Or((Near(w("a"), w("b"), 2), w("c")))),
        ('coffee"tea"', And((w("coffee"), w("tea")))),
        ("((a))", w("a")),
    ],
)
def test_each_construct_parses_to_its_tree(text: str, tree: Node) -> None:
    assert parse(text).expression == tree


def test_a_query_counts_its_terms_and_names_its_handles_once() -> None:
    query = parse('@Hubbub (from:hubbub OR from:did:plc:x) lang:en has:link "a b" NOT c')
    assert query.text == '@Hubbub (from:hubbub OR from:did:plc:x) lang:en has:link "a b" NOT c'
    assert query.terms == 7
    assert query.handles == ("hubbub",)
    assert not query.costly


@pytest.mark.parametrize(
    ("text", "costly"),
    [
        ("coffee", False),
        ("NOT spam", True),
        ("coffee OR NOT spam", True),
        ("NOT spam AND lang:en", False),
        ("(a OR b) AND NOT c", False),
        ("NOT a NOT b", True),
    ],
)
def test_a_query_without_a_required_term_is_costly(text: str, costly: bool) -> None:
    assert parse(text).costly is costly


@pytest.mark.parametrize(
    ("text", "position", "expected", "message"),
    [
        ("", 0, TERM, f"at character 1: expected {TERM}, found the end of the query"),
        ("coffee AND", 10, TERM, f"at character 11: expected {TERM} after AND, found the end"),
        ("coffee OR OR tea", 10, TERM, f'expected {TERM} after OR, found "OR"'),
        ("AND coffee", 0, TERM, 'at character 1: expected a word, a "phrase"'),
        ("coffee NOT", 10, TERM, "after NOT, found the end of the query"),
        ("(coffee OR tea", 14, "a ) to close the ( at character 1", "at character 15"),
        ("coffee)", 6, "a ( before this )", "at character 7: expected a ( before this )"),
        ("()", 1, TERM, 'after (, found ")"'),
        ('coffee "flat white', 18, 'a closing " for the phrase opened at character 8', ""),
        ("price NEAR rise", 6, "NEAR/n with a number of words up to 100, as in NEAR/3", ""),
        ("price NEAR/500 rise", 6, "NEAR/n with a number of words up to 100, as in NEAR/3", ""),
        ("price NEAR/3", 12, TERM, "after NEAR/3, found the end of the query"),
        ("price NEAR/3 (a OR b)", 13, "a word or a phrase", 'after NEAR/3, found "("'),
        ("#coffee NEAR/3 rise", 0, "a word or a phrase", "before NEAR/3"),
        ("a NEAR/2 b NEAR/2 c", 11, "AND between two NEAR/n", ""),
        ("lang:english", 5, "a language code such as en or pt-BR", 'found "english"'),
        ("lang:", 5, "a language code such as en or pt-BR", "found nothing"),
        ("has:video", 4, "link or media", 'after has:, found "video"'),
        ("is:quote", 3, "reply", 'after is:, found "quote"'),
        ("#", 0, "a hashtag (letters or digits after #)", ""),
        ("@", 0, "a page's handle after @", ""),
        ("from:", 5, "an author's handle or page id after from:", 'found "from:"'),
        ("coffee !!!", 7, "a word with letters or digits", 'found "!!!"'),
        ('""', 1, "a word with letters or digits", ""),
        ("coffee -decaf", 7, "NOT decaf to leave out decaf", 'found "-decaf"'),
    ],
)
def test_an_error_says_where_and_what_was_expected(
    text: str, position: int, expected: str, message: str
) -> None:
    with pytest.raises(QueryError) as raised:
        parse(text)
    assert (raised.value.position, raised.value.expected) == (position, expected)
    assert message in str(raised.value)
    assert str(raised.value).startswith(f"at character {position + 1}: ")


def test_a_query_over_the_terms_limit_is_refused_at_the_first_term_too_many() -> None:
    parse("a b c", max_terms=3)
    with pytest.raises(QueryError) as raised:
        parse("a OR b c (d e)", max_terms=3)
    assert raised.value.position == 10
    assert raised.value.expected == "at most 3 terms"
    assert "the query has more than 3 terms" in str(raised.value)


def test_a_query_over_the_length_limit_is_refused_before_it_is_read() -> None:
    parse("a" * 20, max_chars=20)
    with pytest.raises(QueryError) as raised:
        parse("(" * 21, max_chars=20)
    assert raised.value.position == 20
    assert str(raised.value) == "the query is 21 characters long; at most 20 are allowed"


def test_a_query_nested_too_deep_is_refused_where_it_goes_too_deep() -> None:
    parse("(" * 10 + "NOT " * 10 + "a" + ")" * 10)
    with pytest.raises(QueryError) as raised:
        parse("(" * 10 + "NOT " * 11 + "a" + ")" * 10)
    assert raised.value.position == 50
    assert "nests parentheses and NOTs more than 20 deep" in str(raised.value)
    with pytest.raises(QueryError):
        parse("(" * 5000 + "a" + ")" * 5000, max_chars=100_000)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "a",
                "café",
                "東京",
                "(",
                ")",
                '"',
                "AND",
                "OR",
                "NOT",
                "NEAR/2",
                "NEAR",
                "#",
                "#x",
                "@",
                "@b",
                "from:",
                "lang:en",
                "has:",
                "-x",
                "!",
            ]
        ),
        max_size=12,
    ).map(" ".join)
    | st.text(max_size=40)
)
def test_any_text_parses_or_says_where_it_goes_wrong(text: str) -> None:
    outcome: Query | QueryError
    try:
        outcome = parse(text)
    except QueryError as error:
        outcome = error
    if isinstance(outcome, QueryError):
        assert 0 <= outcome.position <= len(text)
        assert str(outcome).startswith(f"at character {outcome.position + 1}: ")
    else:
        assert outcome.terms >= 1
