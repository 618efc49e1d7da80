"""Terms: the words and phrases a tenant watches in the text of posts.

A term is compared by its words, case- and accent-insensitively: "Climate  Change!"
matches a post saying "…the climate change debate…" and one saying "CLIMATE-CHANGE",
but not "climates changed". Counting every word of every post would multiply the
rollups by the vocabulary; the analytics worker instead counts the terms someone
watches, from the moment the watch reaches it (a rebuild counts them over the whole log).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

_WORD = re.compile(r"\w+")


class InvalidTerm(ValueError):
    """A term with no word in it."""


def words(text: str) -> list[str]:
    """The words of a text, lower-cased and stripped of accents."""
    bare = unicodedata.normalize("NFKD", text.casefold())
    return _WORD.findall("".join(c for c in bare if not unicodedata.combining(c)))


def term_key(term: str) -> str:
    """The form a term is stored and compared in: its words, joined by one space."""
    found = words(term)
    if not found:
        raise InvalidTerm(f"the term {term!r} has no word in it")
    return " ".join(found)


class TermMatcher:
    """Finds which of a set of terms (in `term_key` form) a text contains."""

    def __init__(self, terms: Iterable[str] = ()) -> None:
        self.terms = frozenset(terms)
        self._by_first_word: defaultdict[str, list[str]] = defaultdict(list)
        for term in self.terms:
            self._by_first_word[term.split(" ", 1)[0]].append(term)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def match(self, text: str) -> tuple[str, ...]:
        """The terms the text contains, each once, in a stable order."""
        if not self.terms:
            return ()
        found = words(text)
        candidates = {t for word in set(found) for t in self._by_first_word.get(word, ())}
        if not candidates:
            return ()
        padded = f" {' '.join(found)} "
        return tuple(sorted(t for t in candidates if f" {t} " in padded))
