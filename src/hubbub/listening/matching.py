"""Which saved searches a post matches: the exact rules, and the index that makes them fast.

The rules (`matches` applies them to one query; `Matcher` to every search at once):

- Text is compared folded, as mentions compare names (`hubbub.kernel.text.fold`): case,
  accents and width do not count ("CAFÉ" matches "cafe", "Straße" matches "strasse"),
  but kana keep their voicing marks (ガス, gas, does not match カス, dregs).
- A post's text is cut into terms (`hubbub.listening.query.terms_of`): words are runs of
  letters and digits of any spaced script; spaces, punctuation and underscores separate
  them, and so does a change between a spaced and an unspaced script ("iPhone発売" is
  "iphone" then "発売"). A word matches a whole word only: "cat" is not in "category".
- Han, kana, Thai, Lao, Khmer and Myanmar are written without spaces: a term in those
  scripts matches anywhere inside a run of them ("東京" is in "東京タワー"), never across
  a letter of another script. Emoji are the same: "☕" is in "☕☕". Hangul is written
  with spaces, and its words are whole words like Latin ones.
- A phrase matches consecutive terms, whatever punctuation is between them ("hello,
  world" matches "hello world"). Its first part may end a run of an unspaced script and
  its last part begin one ("iPhone 発売" is in "iPhone発売日").
- `a NEAR/n b`: an occurrence of each, with at most n terms between them, in either
  order (a word is never near itself).
- `#tag` matches the post's tags (folded, without `#`) or a #tag in its text; a plain
  word matches the words of a hashtag too ("coffee" is in "#coffee").
- `@page` matches a post that mentions one of the page ids the handle resolves to (the
  `pages` mapping) or whose text names @handle; `from:` a post by one of those pages, or
  by the page id written.
- `lang:en` matches en and its variants (en-US), not "eng"; `has:link` a post with a
  link; `has:media` one with an attachment; `is:reply` a reply.

The index: each search is reduced to anchors, keys of which every post it matches
yields at least one (a word, a bigram or a character of an unspaced run, or a
pseudo-term such as "\\x00lang:en" that the post's fields yield). OR needs all its
children's anchors, NOT gives none, and AND (like a phrase, NEAR, or a long CJK term)
takes the rarest of its choices: guessed from the kind and length of the keys at
first, then counted on a sample of the posts matched. A post's keys look up the searches
anchored on them, and only those candidates are checked exactly, each by one compiled
function. A search with no anchor (only NOTs, say) is checked against every post:
`Matcher.costly` lists them.
"""

from __future__ import annotations

import builtins
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Final

from hubbub.kernel.events import PostPublished
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
    Or,
    Page,
    Phrase,
    Query,
    Tag,
    Term,
    Word,
    folded,
    is_run,
    required,
    terms_of,
)

_HASHTAG: Final = re.compile(r"(?<![\w&])#(\w+)")
_HANDLE: Final = re.compile(r"(?<![\w@])@(\w[\w.\-]*(?:@\w[\w.\-]*)?)")
_PSEUDO: Final = "\x00"
_MAX_PIECES: Final = 1 << 17

Pages = Mapping[str, Sequence[str]]
_NO_PAGES: Final[Pages] = {}


class Prepared:
    """A post cut once into what every search looks at.

    The text is cut at whitespace first, and each piece folded and cut into terms once
    per process (`_piece`): folding never joins what whitespace separates, so this is
    `terms_of(folded(text))`, and the words of a firehose repeat enough that most pieces
    are found ready.
    """

    __slots__ = (
        "bigrams",
        "handles",
        "lang_keys",
        "langs",
        "post",
        "sequence",
        "tags",
        "unigrams",
        "words",
    )
    tags: set[str] | frozenset[str]
    handles: set[str] | frozenset[str]
    bigrams: Sequence[str]
    unigrams: Sequence[str]

    def __init__(self, post: PostPublished) -> None:
        self.post = post
        sequence: list[str] = []
        special: list[_Piece] = []
        get = _PIECES.get
        for text in post.text.split():
            piece = get(text) or _piece(text)
            sequence += piece.terms
            if piece.special:
                special.append(piece)
        self.sequence = sequence
        self.words = set(sequence)
        self.langs, self.lang_keys = _languages(tuple(post.langs)) if post.langs else _NO_LANGS
        if not special and not post.tags:
            self.tags = self.handles = _NOTHING
            self.bigrams = self.unigrams = ()
            return
        self.tags = {_folded(tag) for tag in post.tags}
        handles: set[str] = set()
        bigrams: list[str] = []
        unigrams: list[str] = []
        for piece in special:
            self.tags.update(piece.tags)
            handles.update(piece.handles)
            bigrams += piece.bigrams
            unigrams += piece.unigrams
        self.handles, self.bigrams, self.unigrams = handles, bigrams, unigrams

    def keys(self, unigrams: bool) -> list[str]:
        """The terms and pseudo-terms an anchor can be: words, the bigrams of runs (and
        their single characters when `unigrams`), and the pseudo-terms of the fields."""
        post = self.post
        keys = [*self.words, *self.bigrams, *self.lang_keys, _FROM + post.author]
        if unigrams:
            keys += self.unigrams
        if self.tags:
            keys += [_TAG + tag for tag in self.tags]
        if self.handles:
            keys += [_AT + handle for handle in self.handles]
        if post.mentions:
            keys += [_MENTION + mention for mention in post.mentions]
        if post.links:
            keys.append(_HAS_LINK)
        if post.media:
            keys.append(_HAS_MEDIA)
        if post.reply_parent:
            keys.append(_IS_REPLY)
        return keys


_NOTHING: Final[frozenset[str]] = frozenset()
_FROM, _TAG, _AT, _MENTION = "\x00from:", "\x00tag:", "\x00at:", "\x00mention:"
_HAS_LINK, _HAS_MEDIA, _IS_REPLY = "\x00has:link", "\x00has:media", "\x00is:reply"


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
    text_folded = folded(text)
    terms = tuple(terms_of(text_folded))
    runs = [term for term in terms if is_run(term)]
    tags = tuple(_HASHTAG.findall(text_folded)) if "#" in text_folded else ()
    at = "@" in text_folded
    handles = tuple(h.rstrip(".-") for h in _HANDLE.findall(text_folded)) if at else ()
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
    return folded(tag)


_NO_LANGS: Final[tuple[frozenset[str], tuple[str, ...]]] = (frozenset(), ())


@functools.lru_cache(maxsize=4096)
def _languages(langs: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """A post's language tags lower-cased with every prefix ("en-us" gives "en" and
    "en-us"), and their pseudo-terms."""
    codes: set[str] = set()
    for lang in langs:
        parts = lang.lower().split("-")
        codes.update("-".join(parts[: count + 1]) for count in range(len(parts)))
    return frozenset(codes), tuple(_PSEUDO + "lang:" + code for code in codes)


# The exact test of one node, compiled once into one function.

Test = Callable[[Prepared], bool]


def compile_query(node: Node, pages: Pages = _NO_PAGES) -> Test:
    """A function telling whether a prepared post matches the node (the rules above).

    The node becomes the source of one Python function, its tests joined by `and`, `or`
    and `not`: a search is checked in one call, not one call per node (five times faster
    on the benchmark's searches without a required term). No text of the query enters
    that source: each value is a name bound to a constant, so the source depends only on
    the query's shape, and is compiled once per shape.
    """
    constants: list[object] = []
    source = _source(node, pages, constants)
    code = _compiled(source, len(constants))
    test: Test = FunctionType(code, _GLOBALS, "search", tuple(constants))
    return test


@functools.lru_cache(maxsize=4096)
def _compiled(expression: str, constants: int) -> CodeType:
    """The code of `def test(post, c0, c1...)`: the constants come in as the defaults of
    its arguments (fast locals, and no dictionary of names per search)."""
    arguments = "".join(f", c{number}" for number in range(constants))
    module = compile(f"def test(post{arguments}):\n    return {expression}\n", "<search>", "exec")
    return next(code for code in module.co_consts if isinstance(code, CodeType))


_FLAG_SOURCES: Final = {
    "has:link": "len(post.post.links) > 0",
    "has:media": "post.post.media > 0",
    "is:reply": "bool(post.post.reply_parent)",
}


def _source(node: Node, pages: Pages, constants: list[object]) -> str:
    def constant(value: object) -> str:
        constants.append(value)
        return f"c{len(constants) - 1}"

    if isinstance(node, Word):
        return f"{constant(node.text)} in post.words"
    if isinstance(node, Fragment):
        return f"_contains({constant(node.text)}, post.sequence)"
    if isinstance(node, Phrase):
        return f"{constant(_phrase_test(node))}(post)"
    if isinstance(node, Near):
        return f"{constant(_near_test(node))}(post)"
    if isinstance(node, Tag):
        return f"{constant(node.name)} in post.tags"
    if isinstance(node, Page):
        handle, ids = constant(node.handle), constant(frozenset(pages.get(node.handle, ())))
        return f"({handle} in post.handles or not {ids}.isdisjoint(post.post.mentions))"
    if isinstance(node, Author):
        return f"post.post.author in {constant(_authors(node, pages))}"
    if isinstance(node, Lang):
        return f"{constant(node.code)} in post.langs"
    if isinstance(node, Has):
        return _FLAG_SOURCES[node.flag]
    if isinstance(node, Not):
        return f"not ({_source(node.child, pages, constants)})"
    joint = " and " if isinstance(node, And) else " or "
    return "(" + joint.join(_source(child, pages, constants) for child in node.children) + ")"


def _contains(fragment: str, sequence: list[str]) -> bool:
    for term in sequence:  # noqa: SIM110 (any() of a generator is slower on the hot path)
        if fragment in term:
            return True
    return False


_GLOBALS: Final = {"__builtins__": builtins, "_contains": _contains}
"""The names every compiled search sees besides its constants."""


def _phrase_test(node: Phrase) -> Test:
    words, spans = _words_of(node), _spans_of(node)

    def test(post: Prepared) -> bool:
        for word in words:
            if word not in post.words:
                return False
        return bool(spans(post.sequence))

    return test


def _near_test(node: Near) -> Test:
    words = _words_of(node.left) + _words_of(node.right)
    lefts, rights, distance = _spans_of(node.left), _spans_of(node.right), node.distance

    def test(post: Prepared) -> bool:
        for word in words:
            if word not in post.words:
                return False
        sequence = post.sequence
        others = rights(sequence)
        for start, end in lefts(sequence) if others else ():
            for other_start, other_end in others:
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


def _words_of(term: Term) -> list[str]:
    parts = term.parts if isinstance(term, Phrase) else (term,)
    return [part.text for part in parts if isinstance(part, Word)]


Spans = Callable[[list[str]], list[tuple[int, int]]]


def _spans_of(term: Term) -> Spans:
    """A function listing where the term occurs in a post's terms: (first, last) indexes."""
    if isinstance(term, Word):
        word = term.text
        return lambda sequence: [(i, i) for i, each in enumerate(sequence) if each == word]
    if isinstance(term, Fragment):
        fragment = term.text
        return lambda sequence: [(i, i) for i, each in enumerate(sequence) if fragment in each]
    parts, last = term.parts, len(term.parts) - 1
    first, rest = parts[0], tuple(enumerate(parts))[1:]

    def spans(sequence: list[str]) -> list[tuple[int, int]]:
        return [
            (start, start + last)
            for start in range(len(sequence) - last)
            if _part_at(first, 0, last, sequence[start])
            and all(_part_at(part, index, last, sequence[start + index]) for index, part in rest)
        ]

    return spans


def _part_at(part: Word | Fragment, index: int, last: int, term: str) -> bool:
    """Whether part `index` of a phrase of `last + 1` parts is at `term`: a fragment may end
    the run it starts the phrase in, and begin the run it ends the phrase in."""
    if isinstance(part, Word):
        return part.text == term
    if index == 0:
        return term.endswith(part.text)
    if index == last:
        return term.startswith(part.text)
    return part.text == term


def _authors(node: Author, pages: Pages) -> frozenset[str]:
    named = pages.get(node.handle, ()) if node.handle is not None else ()
    return frozenset([node.literal, *named])


def matches(query: Query, post: PostPublished, pages: Pages = _NO_PAGES) -> bool:
    """Whether the post matches the query: the exact rules, applied to this one post.

    The compiled query is remembered, so that calling this for each of many posts costs
    little more than a `Matcher` holding that one search.
    """
    resolved = tuple((handle, tuple(ids)) for handle, ids in pages.items()) if pages else ()
    return _test_of(query.expression, resolved)(Prepared(post))


@functools.lru_cache(maxsize=1024)
def _test_of(expression: Node, pages: tuple[tuple[str, tuple[str, ...]], ...]) -> Test:
    return compile_query(expression, dict(pages))


# Anchors.

Anchors = frozenset[str]
Rarity = Callable[[str], float]
"""How many posts carry a key, or a guess of it: lower is rarer, a better anchor."""


def anchors(node: Node, pages: Pages = _NO_PAGES, rarity: Rarity | None = None) -> Anchors | None:
    """Keys one of which every post matching the node yields, or None when there are none.

    Where any of several sets would do (the children of AND, the parts of a phrase, the
    sides of NEAR), the rarest one is taken, as `rarity` (by default `guessed_rarity`)
    ranks keys.
    """
    rarity = rarity or guessed_rarity
    if isinstance(node, Word):
        return frozenset([node.text])
    if isinstance(node, Fragment):
        return frozenset([_rarest_gram(node.text, rarity)])
    if isinstance(node, Phrase | Near):
        sides = node.parts if isinstance(node, Phrase) else (node.left, node.right)
        return _rarest([anchors(side, pages, rarity) for side in sides], rarity)
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
    found = [anchors(child, pages, rarity) for child in node.children]
    if isinstance(node, And):
        return _rarest(found, rarity)
    if any(child is None for child in found):
        return None
    return frozenset().union(*found)  # type: ignore[arg-type]


def _rarest(choices: Sequence[Anchors | None], rarity: Rarity) -> Anchors | None:
    required = [choice for choice in choices if choice is not None]
    if not required:
        return None
    return min(required, key=lambda keys: sum(map(rarity, keys)))


def _rarest_gram(fragment: str, rarity: Rarity) -> str:
    if len(fragment) == 1:
        return fragment
    return min((fragment[start : start + 2] for start in range(len(fragment) - 1)), key=rarity)


# Before any post is seen: common pseudo-terms and short words select little; a handle,
# an author or a long word much.
_PSEUDO_GUESSES: Final = {"lang": 400.0, "is": 300.0, "has": 100.0, "tag": 3.0}


def guessed_rarity(key: str) -> float:
    """A guess of how common a key is, from its kind and length alone."""
    if key.startswith(_PSEUDO):
        return _PSEUDO_GUESSES.get(key[1:].partition(":")[0], 1.0)
    if RUNS.match(key):
        return 30.0 if len(key) == 1 else 5.0 + 10 * sum("\u3040" <= c <= "\u309f" for c in key)
    return 60.0 if len(key) <= 2 else 20.0 if len(key) == 3 else 50.0 / len(key)


class _Rarities:
    """How many of a sample of posts carry each key: the rarity `Matcher` anchors by once
    it has seen enough posts (a guess would anchor "coffee acme" on "coffee" as readily
    as on "acme", and check every post about coffee)."""

    def __init__(self, sample_every: int, learn_after: Sequence[int]) -> None:
        self.counts: dict[str, int] = {}
        self.sampled = 0
        self.sample_every = sample_every
        self.countdown = sample_every
        self.learn_after = sorted(learn_after)

    def learned(self) -> bool:
        return self.sampled >= self.learn_after[0] if self.learn_after else False

    def rarity(self, key: str) -> float:
        # The guess only breaks ties between keys the sample saw as often.
        return self.counts.get(key, 0) + guessed_rarity(key) / 1_000

    def sample(self, keys: list[str]) -> bool:
        """Count one post's keys; True when the sample just grew to a size in `learn_after`
        (the searches are then worth anchoring again)."""
        counts = self.counts
        for key in set(keys):
            counts[key] = counts.get(key, 0) + 1
        self.sampled += 1
        # Once the largest sample is taken, the countdown goes below zero and stays there.
        done = not self.learn_after or self.sampled >= self.learn_after[-1]
        self.countdown = -1 if done else self.sample_every
        return self.sampled in self.learn_after


@dataclass(slots=True)
class _Search:
    query: Query
    pages: Pages
    test: Test
    anchors: Anchors | None
    chooses: bool
    """Whether its anchors are chosen among several (worth choosing again when rarities
    are learned)."""


def _chooses(node: Node) -> bool:
    if isinstance(node, Phrase | Near):
        return True
    if isinstance(node, Fragment):
        return len(node.text) > 2
    if isinstance(node, And):
        return sum(required(child) for child in node.children) > 1 or any(
            _chooses(child) for child in node.children
        )
    if isinstance(node, Or):
        return any(_chooses(child) for child in node.children)
    return False


REANCHORED_PER_BATCH: Final = 2_000
_NO_KEYS: Final[frozenset[str]] = frozenset()


class Matcher:
    """Every saved search of every tenant, indexed by the terms each requires.

    `put` and `remove` apply from the next post matched. A sample of the posts matched
    (one in `sample_every`) is counted to learn which keys are rare; when the sample
    reaches each size of `learn_after`, the searches are anchored again on the rarest
    keys, `REANCHORED_PER_BATCH` searches per `match_many` so no batch waits for all.
    Not thread-safe: one owner.
    """

    def __init__(
        self, *, sample_every: int = 4, learn_after: Sequence[int] = (1_000, 20_000)
    ) -> None:
        self._searches: dict[str, _Search] = {}
        self._tests: dict[str, Test] = {}
        self._index: dict[str, set[str]] = {}
        self._costly: dict[str, Test] = {}
        self._unigrams = 0
        self._rarities = _Rarities(sample_every, learn_after)
        self._to_reanchor: list[str] = []

    def put(self, key: str, query: Query, pages: Pages = _NO_PAGES) -> None:
        """Add the search, or replace the one of that key; `pages` resolves its handles."""
        self.remove(key)
        test = compile_query(query.expression, pages)
        search = _Search(query, pages, test, None, _chooses(query.expression))
        self._searches[key] = search
        self._tests[key] = search.test
        if query.costly:
            self._costly[key] = search.test
        else:
            self._anchor(key, search)

    def remove(self, key: str) -> None:
        """Forget the search (nothing happens for an unknown key)."""
        search = self._searches.pop(key, None)
        if search is not None:
            del self._tests[key]
            self._costly.pop(key, None)
            self._unanchor(key, search)

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
        found = [self._match(Prepared(post)) for post in posts]
        if self._to_reanchor:
            self._reanchor(REANCHORED_PER_BATCH)
        return found

    def _match(self, post: Prepared) -> list[str]:
        keys = post.keys(self._unigrams > 0)
        rarities = self._rarities
        rarities.countdown -= 1
        if not rarities.countdown and rarities.sample(keys):
            self._to_reanchor = [key for key, search in self._searches.items() if search.chooses]
        tests = self._tests
        candidates = _NO_KEYS.union(*filter(None, map(self._index.get, keys)))
        matched = [key for key in candidates if tests[key](post)]
        for key, test in self._costly.items():
            if test(post):
                matched.append(key)
        if len(matched) > 1:
            matched.sort()
        return matched

    def _anchor(self, key: str, search: _Search) -> None:
        rarities = self._rarities
        rarity = rarities.rarity if rarities.learned() else None
        search.anchors = anchors(search.query.expression, search.pages, rarity)
        for anchor in search.anchors or ():
            self._index.setdefault(anchor, set()).add(key)
            self._unigrams += _is_unigram(anchor)

    def _unanchor(self, key: str, search: _Search) -> None:
        for anchor in search.anchors or ():
            keys = self._index[anchor]
            keys.discard(key)
            if not keys:
                del self._index[anchor]
            self._unigrams -= _is_unigram(anchor)
        search.anchors = None

    def _reanchor(self, count: int) -> None:
        for key in self._to_reanchor[-count:]:
            search = self._searches.get(key)
            if search is not None and search.anchors is not None:
                self._unanchor(key, search)
                self._anchor(key, search)
        del self._to_reanchor[-count:]


def _is_unigram(anchor: str) -> bool:
    return len(anchor) == 1 and RUNS.match(anchor) is not None
