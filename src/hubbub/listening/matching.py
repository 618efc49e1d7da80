"""Which saved searches a post matches: the exact rules, and the index that makes them fast.

The rules (`matches` applies them to one query; `Matcher` to every search at once):

- Text is compared folded, as mentions compare names (`hubbub.kernel.text.fold`): case,
  accents and width do not count ("CAFÉ" matches "cafe", "Straße" matches "strasse").
  Folding drops the voicing marks of kana too (ガ folds to カ).
- A post's text is cut into terms (`hubbub.listening.query.terms_of`): words are runs of
  letters and digits of any spaced script; punctuation, spaces and underscores separate
  them, and so does a change between a spaced and an unspaced script ("iPhone発売"
  is "iphone" then "発売"). A word matches a whole word only: "cat" is not in
  "category", nor in "cat_lover"'s neighbour "catlover".
- Han, kana, Thai, Lao, Khmer and Myanmar are written without spaces: a term in those
  scripts matches anywhere inside a run of them ("東京" is in "東京タワー"), never across
  a letter of another script. Emoji are the same: "☕" is in "☕☕". Hangul is written
  with spaces and its words are whole words like Latin ones.
- A phrase matches consecutive terms, punctuation between them aside ("hello, world"
  matches "hello world"). Its first part may end a run of an unspaced script, its last
  may begin one.
- `a NEAR/n b`: an occurrence of each, with at most n terms between them, either order.
- `#tag` matches the post's tags (lower-cased, without `#`) or a #tag in its text;
  a plain word matches the words of a hashtag too ("coffee" is in "#coffee").
- `@page` matches a post that mentions one of the page ids the handle resolves to (the
  `pages` mapping) or whose text names @handle; `from:` a post by one of those pages, or
  by the literal page id given.
- `lang:en` matches en and its variants (en-US), not "eng"; `has:link` a post with a
  link; `has:media` one with an attachment; `is:reply` a reply.

The index: each search is reduced to anchors, terms of which every post it matches
contains at least one (a word, an n-gram of an unspaced run, or a pseudo-term such as
"\\x00lang:en" that the post's fields produce). AND picks its cheapest child's anchors,
OR needs all of its children's, NOT gives none. A post's terms look up the searches
anchored on them, and only those candidates are checked exactly. A search with no anchor
(only NOTs, say) is checked against every post: `Matcher.costly` lists them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from hubbub.kernel.events import PostPublished
from hubbub.kernel.text import fold
from hubbub.listening.query import (
    RUNS,
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
    Query,
    Tag,
    Term,
    Word,
    is_run,
    terms_of,
)

_HASHTAG: Final = re.compile(r"(?<![\w&])#(\w+)")
_HANDLE: Final = re.compile(r"(?<![\w@])@(\w[\w.\-]*(?:@\w[\w.\-]*)?)")
_PSEUDO: Final = "\x00"
_MAX_PIECES: Final = 1 << 18

Pages = Mapping[str, Sequence[str]]
_NO_PAGES: Final[Pages] = {}


class Prepared:
    """A post cut once into what every search looks at.

    The text is cut at whitespace first, and each piece folded and cut into terms once
    per process (`_piece`): folding never joins what whitespace separates, so this is
    `terms_of(fold(text))`, and the words of a firehose repeat enough that most pieces
    are found ready.
    """

    __slots__ = ("bigrams", "handles", "langs", "post", "sequence", "tags", "unigrams", "words")

    def __init__(self, post: PostPublished) -> None:
        self.post = post
        sequence: list[str] = []
        special: list[_Piece] = []
        pieces = _PIECES
        for text in post.text.split():
            piece = pieces.get(text) or _piece(text)
            sequence += piece.terms
            if piece.special:
                special.append(piece)
        self.sequence = sequence
        self.words = set(sequence)
        self.tags = {_folded(tag) for tag in post.tags} if post.tags else set()
        self.handles: set[str] = set()
        self.bigrams: list[str] = []
        self.unigrams: list[str] = []
        for piece in special:
            self.tags.update(piece.tags)
            self.handles.update(piece.handles)
            self.bigrams += piece.bigrams
            self.unigrams += piece.unigrams
        self.langs = [_language(lang) for lang in post.langs]

    def keys(self, unigrams: bool) -> list[str]:
        """The terms and pseudo-terms an anchor can be: words, the bigrams of runs (and
        their single characters when `unigrams`), and the pseudo-terms of the fields."""
        post = self.post
        keys = [*self.words, *self.bigrams, _PSEUDO + "from:" + post.author]
        if unigrams:
            keys += self.unigrams
        for _, prefixes in self.langs:
            keys += prefixes
        keys += [_PSEUDO + "tag:" + tag for tag in self.tags]
        keys += [_PSEUDO + "at:" + handle for handle in self.handles]
        keys += [_PSEUDO + "mention:" + mention for mention in post.mentions]
        if post.links:
            keys.append(_PSEUDO + "has:link")
        if post.media:
            keys.append(_PSEUDO + "has:media")
        if post.reply_parent:
            keys.append(_PSEUDO + "is:reply")
        return keys


@dataclass(frozen=True, slots=True)
class _Piece:
    """What a piece of text between two spaces holds, folded."""

    terms: tuple[str, ...]
    tags: tuple[str, ...]
    handles: tuple[str, ...]
    bigrams: tuple[str, ...]
    unigrams: tuple[str, ...]
    special: bool
    """Whether it holds any tag, handle or run (most pieces hold none)."""


_PIECES: dict[str, _Piece] = {}


def _piece(text: str) -> _Piece:
    """The piece of `text`, remembered (the memory is emptied when it grows past a bound:
    a firehose's new words then fill it again)."""
    folded = fold(text)
    terms = tuple(terms_of(folded))
    runs = [term for term in terms if is_run(term)]
    tags = tuple(_HASHTAG.findall(folded)) if "#" in folded else ()
    handles = tuple(h.rstrip(".-") for h in _HANDLE.findall(folded)) if "@" in folded else ()
    bigrams = tuple(run[start : start + 2] for run in runs for start in range(len(run) - 1))
    unigrams = tuple(char for run in runs for char in run)
    piece = _Piece(terms, tags, handles, bigrams, unigrams, bool(runs or tags or handles))
    if len(_PIECES) >= _MAX_PIECES:
        _PIECES.clear()
    _PIECES[text] = piece
    return piece


def forget_pieces() -> None:
    """Empty the memory of folded pieces (benchmarks measure a cold start with it)."""
    _PIECES.clear()


@functools.lru_cache(maxsize=65_536)
def _folded(tag: str) -> str:
    return fold(tag)


@functools.lru_cache(maxsize=4096)
def _language(lang: str) -> tuple[str, tuple[str, ...]]:
    """A language tag lower-cased, and the pseudo-terms of it and its prefixes."""
    code = lang.lower()
    parts = code.split("-")
    prefixes = ("-".join(parts[: count + 1]) for count in range(len(parts)))
    return code, tuple(_PSEUDO + "lang:" + prefix for prefix in prefixes)


# The exact test of one node, compiled once into nested closures.

Test = Callable[[Prepared], bool]


def compile_query(node: Node, pages: Pages = _NO_PAGES) -> Test:
    """A function telling whether a prepared post matches the node (the rules above)."""
    if isinstance(node, Word):
        word = node.text
        return lambda post: word in post.words
    if isinstance(node, Fragment):
        fragment = node.text
        return lambda post: any(fragment in term for term in post.sequence)
    if isinstance(node, Phrase):
        return _phrase_test(node)
    if isinstance(node, Near):
        return _near_test(node)
    if isinstance(node, Tag):
        name = node.name
        return lambda post: name in post.tags
    if isinstance(node, Page):
        return _page_test(node, pages)
    if isinstance(node, Author):
        authors = _authors(node, pages)
        return lambda post: post.post.author in authors
    if isinstance(node, Lang):
        return _lang_test(node.code)
    if isinstance(node, Has):
        return _FLAG_TESTS[node.flag]
    if isinstance(node, Not):
        child = compile_query(node.child, pages)
        return lambda post: not child(post)
    tests = tuple(compile_query(child, pages) for child in node.children)
    return _all(tests) if isinstance(node, And) else _any(tests)


def _all(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 2:
        first, second = tests
        return lambda post: first(post) and second(post)

    def test(post: Prepared) -> bool:
        for each in tests:  # noqa: SIM110 (all() of a generator is slower on the hot path)
            if not each(post):
                return False
        return True

    return test


def _any(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 2:
        first, second = tests
        return lambda post: first(post) or second(post)

    def test(post: Prepared) -> bool:
        for each in tests:  # noqa: SIM110 (any() of a generator is slower on the hot path)
            if each(post):
                return True
        return False

    return test


_FLAG_TESTS: Final[dict[str, Test]] = {
    "has:link": lambda post: bool(post.post.links),
    "has:media": lambda post: post.post.media > 0,
    "is:reply": lambda post: bool(post.post.reply_parent),
}


def _phrase_test(node: Phrase) -> Test:
    words = [part.text for part in node.parts if isinstance(part, Word)]

    def test(post: Prepared) -> bool:
        for word in words:
            if word not in post.words:
                return False
        return next(_spans(node, post.sequence), None) is not None

    return test


def _near_test(node: Near) -> Test:
    left, right, distance = node.left, node.right, node.distance

    def test(post: Prepared) -> bool:
        sequence = post.sequence
        rights = list(_spans(right, sequence))
        if not rights:
            return False
        for start, end in _spans(left, sequence):
            for other_start, other_end in rights:
                if other_start > end:
                    between = other_start - end - 1
                elif start > other_end:
                    between = start - other_end - 1
                else:
                    continue  # the same words
                if between <= distance:
                    return True
        return False

    return test


def _spans(term: Term, sequence: list[str]) -> Iterator[tuple[int, int]]:
    """Where the term occurs in a post's terms: (first, last) indexes, both included."""
    parts = term.parts if isinstance(term, Phrase) else (term,)
    size = len(parts)
    for start in range(len(sequence) - size + 1):
        if all(
            _part_at(part, index, size, sequence[start + index]) for index, part in enumerate(parts)
        ):
            yield start, start + size - 1


def _part_at(part: Word | Fragment, index: int, size: int, term: str) -> bool:
    if isinstance(part, Word):
        return part.text == term
    if size == 1:
        return part.text in term
    if index == 0:
        return term.endswith(part.text)
    if index == size - 1:
        return term.startswith(part.text)
    return part.text == term


def _page_test(node: Page, pages: Pages) -> Test:
    handle, ids = node.handle, frozenset(pages.get(node.handle, ()))
    return lambda post: handle in post.handles or not ids.isdisjoint(post.post.mentions)


def _authors(node: Author, pages: Pages) -> frozenset[str]:
    named = pages.get(node.handle, ()) if node.handle is not None else ()
    return frozenset([node.literal, *named])


def _lang_test(code: str) -> Test:
    variant = code + "-"
    return lambda post: any(lang == code or lang.startswith(variant) for lang, _ in post.langs)


def matches(query: Query, post: PostPublished, pages: Pages = _NO_PAGES) -> bool:
    """Whether the post matches the query: the exact rules, applied to this one post."""
    return compile_query(query.expression, pages)(Prepared(post))


# Anchors.

Anchors = frozenset[str]


def anchors(node: Node, pages: Pages = _NO_PAGES) -> Anchors | None:
    """Keys one of which every post matching the node yields, or None when there are none."""
    if isinstance(node, Word):
        return frozenset([node.text])
    if isinstance(node, Fragment):
        return frozenset([_best_gram(node.text)])
    if isinstance(node, Phrase):
        return min((anchors(part) for part in node.parts), key=_cost)
    if isinstance(node, Near):
        return min((anchors(node.left), anchors(node.right)), key=_cost)
    if isinstance(node, Tag):
        return frozenset([_PSEUDO + "tag:" + node.name])
    if isinstance(node, Page):
        ids = pages.get(node.handle, ())
        return frozenset([_PSEUDO + "at:" + node.handle, *(_PSEUDO + "mention:" + i for i in ids)])
    if isinstance(node, Author):
        return frozenset(_PSEUDO + "from:" + author for author in _authors(node, pages))
    if isinstance(node, Lang):
        return frozenset([_PSEUDO + "lang:" + node.code])
    if isinstance(node, Has):
        return frozenset([_PSEUDO + node.flag])
    if isinstance(node, Not):
        return None
    found = [anchors(child, pages) for child in node.children]
    if isinstance(node, And):
        required = [child for child in found if child is not None]
        return min(required, key=_cost) if required else None
    if any(child is None for child in found):
        return None
    return frozenset().union(*found)  # type: ignore[arg-type]


# How many posts a key is expected in, roughly: common pseudo-terms and short words
# select little; a handle, an author or a long word select much.
_PSEUDO_COSTS: Final = {"lang": 400, "is": 300, "has": 100, "tag": 3}


def _cost(keys: Anchors | None) -> int:
    if keys is None:
        return 1 << 30
    return sum(_key_cost(key) for key in keys)


def _key_cost(key: str) -> int:
    if key.startswith(_PSEUDO):
        return _PSEUDO_COSTS.get(key[1:].partition(":")[0], 1)
    if RUNS.match(key):
        return 30 if len(key) == 1 else 5 + 10 * sum("\u3040" <= c <= "\u309f" for c in key)
    return 60 if len(key) <= 2 else 20 if len(key) == 3 else 10 if len(key) == 4 else 5


def _best_gram(fragment: str) -> str:
    if len(fragment) == 1:
        return fragment
    grams = (fragment[start : start + 2] for start in range(len(fragment) - 1))
    return min(grams, key=_key_cost)


# The index of every search.


@dataclass(frozen=True, slots=True)
class _Search:
    test: Test
    anchors: Anchors | None


class Matcher:
    """Every saved search of every tenant, indexed by the terms each requires.

    `put` and `remove` apply from the next post matched. Not thread-safe: one owner.
    """

    def __init__(self) -> None:
        self._searches: dict[str, _Search] = {}
        self._index: dict[str, set[str]] = {}
        self._costly: dict[str, Test] = {}
        self._unigrams = 0

    def put(self, key: str, query: Query, pages: Pages = _NO_PAGES) -> None:
        """Add the search, or replace the one of that key; `pages` resolves its handles."""
        self.remove(key)
        search = _Search(compile_query(query.expression, pages), anchors(query.expression, pages))
        self._searches[key] = search
        if search.anchors is None:
            self._costly[key] = search.test
            return
        for anchor in search.anchors:
            self._index.setdefault(anchor, set()).add(key)
            self._unigrams += _is_unigram(anchor)

    def remove(self, key: str) -> None:
        """Forget the search (nothing happens for an unknown key)."""
        search = self._searches.pop(key, None)
        if search is None:
            return
        self._costly.pop(key, None)
        for anchor in search.anchors or ():
            keys = self._index[anchor]
            keys.discard(key)
            if not keys:
                del self._index[anchor]
            self._unigrams -= _is_unigram(anchor)

    def __len__(self) -> int:
        return len(self._searches)

    def costly(self) -> list[str]:
        """The keys of the searches with no required term, checked against every post."""
        return list(self._costly)

    def match(self, post: PostPublished) -> list[str]:
        """The keys of the searches the post matches, sorted."""
        return self.match_many([post])[0]

    def match_many(self, posts: Sequence[PostPublished]) -> list[list[str]]:
        """`match` of each post, in order: the fast path, each post cut once."""
        return [self._match(Prepared(post)) for post in posts]

    def _match(self, post: Prepared) -> list[str]:
        index, searches = self._index, self._searches
        candidates: set[str] = set()
        for key in post.keys(self._unigrams > 0):
            found = index.get(key)
            if found:
                candidates.update(found)
        matched = [key for key in candidates if searches[key].test(post)]
        matched.extend(key for key, test in self._costly.items() if test(post))
        matched.sort()
        return matched


def _is_unigram(anchor: str) -> bool:
    return len(anchor) == 1 and RUNS.match(anchor) is not None
