"""How names and queries are compared: case-, accent- and width-insensitively.

`normalize` is the kernel's `fold` (NFKD, combining marks dropped, casefolded, the few
letters NFKD leaves whole spelled out), trimmed and without a leading `@`. Everything
else, CJK, emoji and right-to-left scripts included, is kept as it is, so a prefix of it
matches.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from hubbub.kernel.text import fold

# Categories that separate words in a display name: spaces, punctuation, controls.
_SEPARATORS: Final = frozenset(
    {"Zs", "Zl", "Zp", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Cc", "Cf"}
)
MAX_QUERY_CHARS: Final = 100


# ASCII text, most of what is typed, needs none of the Unicode steps: a shortcut.
_ASCII_SEPARATORS: Final = re.compile(
    "["
    + re.escape("".join(c for c in map(chr, range(128)) if unicodedata.category(c) in _SEPARATORS))
    + "]+"
)


def normalize(text: str) -> str:
    """The comparable form of a handle, a name or a query (a leading `@` dropped)."""
    return fold(text).strip().removeprefix("@").lstrip()


def words(text: str) -> list[str]:
    """The normalized words of a display name or a query, in order."""
    if text.isascii():
        return [word for word in _ASCII_SEPARATORS.split(normalize(text)) if word]
    found: list[str] = []
    current: list[str] = []
    for char in normalize(text):
        if unicodedata.category(char) in _SEPARATORS:
            if current:
                found.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        found.append("".join(current))
    return found


class InvalidQuery(ValueError):
    """A query that cannot be answered; the message says why, for a 4xx answer."""


def query_terms(query: str) -> list[str]:
    """The normalized, space-separated terms of an autocomplete query.

    A term keeps its punctuation ("swift.o" is a handle prefix); `words` splits it
    further to match name words. Raises InvalidQuery for an empty query or one longer
    than MAX_QUERY_CHARS.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"the query is {len(query)} characters; at most {MAX_QUERY_CHARS}")
    terms = normalize(query).split()
    if not terms:
        raise InvalidQuery("the query is empty: type at least one letter after @")
    return terms
