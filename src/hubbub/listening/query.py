"""The query language of saved searches, as analysts know it from Brandwatch and Talkwalker.

    coffee "flat white" #latte            three terms, all required (implicit AND)
    (nike OR adidas) AND NOT "fake shoes"
    @hubbub from:alice.bsky.social lang:fr has:link has:media is:reply
    price NEAR/3 increase                 at most 3 words between them, either order

Operators are upper case (`and` is a word); NOT binds tighter than AND, AND tighter than
OR, NEAR/n tightest, and joins two words or phrases. `parse` turns a text into a `Query`
(the tree of `Node`s below) or raises `QueryError`, which says where and what was
expected, in the analysts' terms.

A word or phrase is folded (`folded`) and cut into terms by `terms_of`,
the same cut the matcher makes of a post's text: a word with inner punctuation
("sci-fi", "example.com", "iphone発売") becomes the phrase of its parts. What those terms
match is `hubbub.listening.matching`'s business.

The parser is written by hand, a recursive descent over a dozen tokens, rather than
generated (lark): its errors name what an analyst types ("a word, a "phrase", a
#hashtag...") instead of grammar symbols, and it needs no dependency.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from hubbub.kernel.text import fold

MAX_NEAR: Final = 100
MAX_DEPTH: Final = 20
"""Parentheses and NOTs nested deeper are refused (and would exhaust Python's stack)."""

# Scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar):
# their runs are searched by substring.
_UNSPACED: Final = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3005\u3007\u3021-\u3029\u3031-\u3035"
    "\u3038-\u303c\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
# Pictographs and the joiners and selectors that build emoji sequences.
_EMOJI: Final = (
    "\u00a9\u00ae\u203c\u2049\u20e3\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2"
    "\u25aa-\u27bf\u2934\u2935\u2b05-\u2b55\u3030\u303d\u3297\u3299\u200d\ufe0f"
    "\U0001f000-\U0001faff\U000e0020-\U000e007f"
)
_RUN_PATTERN: Final = f"[{_UNSPACED}]+|[{_EMOJI}]+"
RUNS: Final = re.compile(_RUN_PATTERN)
"""The runs of a folded text searched by substring: unspaced scripts, and emoji."""
# Vowel signs of the Indic scripts are marks, not letters, yet part of their words.
_INDIC_SIGNS: Final = "\u0900-\u0963\u0966-\u0dff"
TERMS: Final = re.compile(f"{_RUN_PATTERN}|(?:[^\\W_{_UNSPACED}]|[{_INDIC_SIGNS}])+")
"""The terms of a folded text: runs (as `RUNS`) and words (letters and digits, any other
script: Latin, Cyrillic, Greek, Arabic, Hebrew, Hangul, Devanagari...)."""
ASCII_TERMS: Final = re.compile("[a-z0-9]+")
"""`TERMS` for a folded ASCII text, several times faster."""


def folded(text: str) -> str:
    """Text as listening compares it: `fold`ed, but kana keep their voicing marks (ガス,
    gas, is not カス, dregs: a brand's name is not a word it resembles)."""
    return fold(text, kana_voicing=True)


def terms_of(folded: str) -> list[str]:
    """The terms of a folded text, in order."""
    if folded.isascii():
        return ASCII_TERMS.findall(folded)
    return TERMS.findall(folded)


def is_run(term: str) -> bool:
    """Whether a term is a run of an unspaced script or of emoji (searched by substring)."""
    return RUNS.fullmatch(term) is not None


# The syntax tree. Term nodes hold folded text.


@dataclass(frozen=True, slots=True)
class Word:
    """A whole word: "cat" is not in "category"."""

    text: str


@dataclass(frozen=True, slots=True)
class Fragment:
    """Text of an unspaced script or emoji, found inside a run of the same kind."""

    text: str


@dataclass(frozen=True, slots=True)
class Phrase:
    """Terms that follow each other (at least two)."""

    parts: tuple[Word | Fragment, ...]


@dataclass(frozen=True, slots=True)
class Tag:
    """A hashtag, folded, without `#`."""

    name: str


@dataclass(frozen=True, slots=True)
class Page:
    """`@handle`: a post mentioning one of the handle's pages, or naming @handle."""

    handle: str


@dataclass(frozen=True, slots=True)
class Author:
    """`from:`: a post by one of the pages of `handle`, or by the page id `literal`."""

    literal: str
    handle: str | None


@dataclass(frozen=True, slots=True)
class Lang:
    """`lang:`: a post in that language or one of its variants (en matches en-US)."""

    code: str


Flag = Literal["has:link", "has:media", "is:reply"]


@dataclass(frozen=True, slots=True)
class Has:
    """`has:link`, `has:media` or `is:reply`."""

    flag: Flag


Term = Word | Fragment | Phrase


@dataclass(frozen=True, slots=True)
class Near:
    """Two terms with at most `distance` words between them, in either order."""

    left: Term
    right: Term
    distance: int


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


Node = Word | Fragment | Phrase | Tag | Page | Author | Lang | Has | Near | Not | And | Or


class QueryError(ValueError):
    """A query that cannot be saved: where (`position`, 0-based), and what was `expected`.

    `str(error)` is a sentence for the person who typed the query; it counts characters
    from 1, as people do.
    """

    def __init__(self, message: str, position: int, expected: str) -> None:
        super().__init__(message)
        self.position = position
        self.expected = expected


@dataclass(frozen=True)
class Query:
    """A parsed search. `expression` is its tree; the rest is what callers show or check."""

    text: str
    terms: int
    handles: tuple[str, ...]
    costly: bool
    """True when no term is required, so every post must be checked against it."""
    expression: Node = field(repr=False, compare=False)


def parse(text: str, *, max_terms: int = 50, max_chars: int = 2000) -> Query:
    """The query a text says, or QueryError (with the position of the problem)."""
    if len(text) > max_chars:
        raise QueryError(
            f"the query is {len(text):,} characters long; at most {max_chars:,} are allowed",
            max_chars,
            f"at most {max_chars:,} characters",
        )
    parser = _Parser(text, max_terms)
    expression = parser.query()
    return Query(
        text=text,
        terms=parser.terms,
        handles=tuple(dict.fromkeys(parser.handles)),
        costly=not required(expression),
        expression=expression,
    )


def required(node: Node) -> bool:
    """Whether every post the node matches must contain some term (not only lack some)."""
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(required(child) for child in node.children)
    if isinstance(node, Or):
        return all(required(child) for child in node.children)
    return True


# The tokens of the query text.

_TERM_EXPECTED: Final = 'a word, a "phrase", a #hashtag, an @page or ('
_OPERATORS: Final = frozenset({"AND", "OR", "NOT"})
_NEAR: Final = re.compile(r"NEAR(?:/(\d*))?")
_LANGUAGE: Final = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_FLAGS: Final[dict[str, tuple[Flag, ...]]] = {
    "has": ("has:link", "has:media"),
    "is": ("is:reply",),
}
_PAGE_ID: Final = re.compile(r"did:|[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["(", ")", "AND", "OR", "NOT", "NEAR", "phrase", "bare", "end"]
    text: str
    position: int


def _tokens(text: str) -> Iterator[_Token]:
    position, end = 0, len(text)
    while position < end:
        char = text[position]
        if char.isspace():
            position += 1
        elif char in "()":
            yield _Token(char, char, position)  # type: ignore[arg-type]
            position += 1
        elif char == '"':
            closing = text.find('"', position + 1)
            if closing < 0:
                raise _error(
                    end,
                    f'a closing " for the phrase opened at character {position + 1}',
                    "",
                    "the end of the query",
                )
            yield _Token("phrase", text[position + 1 : closing], position)
            position = closing + 1
        else:
            stop = position
            while stop < end and not text[stop].isspace() and text[stop] not in '()"':
                stop += 1
            word = text[position:stop]
            kind = word if word in _OPERATORS else "NEAR" if _NEAR.fullmatch(word) else "bare"
            yield _Token(kind, word, position)  # type: ignore[arg-type]
            position = stop
    yield _Token("end", "", end)


def _error(position: int, expected: str, context: str, found: str) -> QueryError:
    where = f" {context}" if context else ""
    return QueryError(
        f"at character {position + 1}: expected {expected}{where}, found {found}",
        position,
        expected,
    )


def _found(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the query"
    return f'"{token.text}"'


class _Parser:
    """Recursive descent: query = or; or = and {OR and}; and = unary {[AND] unary};
    unary = NOT unary | near; near = primary [NEAR/n primary]; primary = term | ( or )."""

    def __init__(self, text: str, max_terms: int) -> None:
        self.tokens = list(_tokens(text))
        self.index = 0
        self.max_terms = max_terms
        self.terms = 0
        self.handles: list[str] = []
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def query(self) -> Node:
        node = self.any_of("")
        token = self.peek()
        if token.kind == ")":
            raise _error(token.position, "a ( before this )", "", "none")
        if token.kind != "end":
            expected = "AND, OR, NOT, another term or the end of the query"
            raise _error(token.position, expected, "", _found(token))
        return node

    def any_of(self, context: str) -> Node:
        children = [self.all_of(context)]
        while self.peek().kind == "OR":
            self.take()
            children.append(self.all_of("after OR"))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def all_of(self, context: str) -> Node:
        children = [self.unary(context)]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                self.take()
                children.append(self.unary("after AND"))
            elif kind in ("NOT", "(", "phrase", "bare"):
                children.append(self.unary(""))
            else:
                return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self, context: str) -> Node:
        if self.peek().kind == "NOT":
            self.enter(self.take())
            node = Not(self.unary("after NOT"))
            self.depth -= 1
            return node
        return self.near(context)

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(
                f"at character {token.position + 1}: the query nests parentheses and NOTs "
                f"more than {MAX_DEPTH} deep",
                token.position,
                f"at most {MAX_DEPTH} parentheses and NOTs inside each other",
            )

    def near(self, context: str) -> Node:
        start = self.peek()
        left = self.primary(context)
        if self.peek().kind != "NEAR":
            return left
        operator = self.take()
        distance = self.distance(operator)
        if not isinstance(left, Word | Fragment | Phrase):
            raise _error(
                start.position, "a word or a phrase", f"before {operator.text}", _found(start)
            )
        operand = self.peek()
        right = self.primary(f"after {operator.text}")
        if not isinstance(right, Word | Fragment | Phrase):
            raise _error(
                operand.position, "a word or a phrase", f"after {operator.text}", _found(operand)
            )
        if self.peek().kind == "NEAR":
            following = self.peek()
            raise _error(
                following.position,
                "AND between two NEAR/n",
                "(NEAR/n joins two words or phrases)",
                _found(following),
            )
        return Near(left, right, distance)

    def distance(self, operator: _Token) -> int:
        digits = operator.text.partition("/")[2]
        if not digits or int(digits) > MAX_NEAR:
            raise _error(
                operator.position,
                f"NEAR/n with a number of words up to {MAX_NEAR}, as in NEAR/3",
                "",
                _found(operator),
            )
        return int(digits)

    def primary(self, context: str) -> Node:
        token = self.take()
        if token.kind == "(":
            self.enter(token)
            inner = self.any_of("after (")
            self.depth -= 1
            closing = self.peek()
            if closing.kind != ")":
                raise _error(
                    closing.position,
                    f"a ) to close the ( at character {token.position + 1}",
                    "",
                    _found(closing),
                )
            self.take()
            return inner
        if token.kind == "phrase":
            return self.counted(token, self.words(token, token.text, token.position + 1))
        if token.kind == "bare":
            return self.counted(token, self.bare(token))
        raise _error(token.position, _TERM_EXPECTED, context, _found(token))

    def counted(self, token: _Token, node: Node) -> Node:
        self.terms += 1
        if self.terms > self.max_terms:
            raise QueryError(
                f"at character {token.position + 1}: the query has more than {self.max_terms}"
                " terms (words, phrases, hashtags, pages and operators such as lang:); "
                "split it into several searches",
                token.position,
                f"at most {self.max_terms} terms",
            )
        return node

    def bare(self, token: _Token) -> Node:
        text = token.text
        if text[0] == "#":
            return self.tag(token)
        if text[0] == "@":
            handle = self.handle(token, token.position, text[1:], "a page's handle after @")
            return Page(handle)
        prefix, colon, value = text.partition(":")
        operator = prefix.lower()
        if colon and operator in ("from", "lang", "has", "is"):
            return self.operator(token, operator, value)
        if text[0] == "-" and text[1:2].isalpha():
            # A search engine's "-word" would otherwise be read as the word itself.
            raise _error(
                token.position, f"NOT {text[1:]} to leave out {text[1:]}", "", _found(token)
            )
        return self.words(token, text, token.position)

    def tag(self, token: _Token) -> Tag:
        name = folded(token.text[1:])
        if not terms_of(name):
            raise _error(token.position, "a hashtag (letters or digits after #)", "", _found(token))
        return Tag(name)

    def handle(self, token: _Token, position: int, value: str, expected: str) -> str:
        handle = folded(value).removeprefix("@").rstrip(".,;:!?-")
        if not terms_of(handle):
            raise _error(position, expected, "", _found(token))
        self.handles.append(handle)
        return handle

    def operator(self, token: _Token, operator: str, value: str) -> Node:
        value_at = token.position + len(operator) + 1
        if operator == "from":
            if _PAGE_ID.match(value):
                return Author(value, None)
            expected = "an author's handle or page id after from:"
            handle = self.handle(token, value_at, value, expected)
            return Author(handle, handle)
        if operator == "lang":
            code = value.lower()
            if not _LANGUAGE.fullmatch(code):
                raise _error(
                    value_at,
                    "a language code such as en or pt-BR",
                    "after lang:",
                    _found(_Token("bare", value, value_at)) if value else "nothing",
                )
            return Lang(code)
        flags = _FLAGS[operator]
        flag = f"{operator}:{value.lower()}"
        if flag not in flags:
            allowed = " or ".join(name.partition(":")[2] for name in flags)
            raise _error(
                value_at,
                allowed,
                f"after {operator}:",
                _found(_Token("bare", value, value_at)) if value else "nothing",
            )
        return Has(flag)

    def words(self, token: _Token, text: str, position: int) -> Node:
        terms = terms_of(folded(text))
        if not terms:
            raise _error(position, "a word with letters or digits", "", _found(token))
        parts = tuple(Fragment(term) if is_run(term) else Word(term) for term in terms)
        return parts[0] if len(parts) == 1 else Phrase(parts)
