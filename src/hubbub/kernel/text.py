"""Text normalisation shared by every source: HTML to plain text, UTF-8 byte spans, and
the folded form in which names, queries and posts are compared."""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from html.parser import HTMLParser
from typing import Final

_BLOCK_TAGS = frozenset({"p", "div", "blockquote", "li", "pre", "h1", "h2", "h3", "h4"})
# Mastodon marks links to accounts and hashtags with these classes; they are not web links.
_NOT_LINKS = frozenset({"mention", "hashtag", "u-url"})


class _PlainText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS and self.parts and not self.parts[-1].endswith("\n\n"):
            self.parts.append("\n\n")
        elif tag == "a":
            attributes = dict(attrs)
            classes = set((attributes.get("class") or "").split())
            href = attributes.get("href")
            if href and not classes & _NOT_LINKS:
                self.links.append(href)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> tuple[str, list[str]]:
    """Plain text of an HTML fragment (paragraphs as blank lines) and the web links in it.

    Malformed markup is tolerated: whatever text the parser can recover is kept.
    """
    parser = _PlainText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts).strip(), parser.links


def utf8_span(text_bytes: bytes, start: object, end: object) -> str | None:
    """The text between two UTF-8 byte offsets, or None when the range is not valid.

    Invalid means: not integers, reversed, outside the text, or cutting a character in
    two (an offset counted in code points instead of bytes often does that).
    """
    if type(start) is not int or type(end) is not int:
        return None
    if not 0 <= start <= end <= len(text_bytes):
        return None
    try:
        return text_bytes[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return None


# Letters NFKD does not decompose, mapped the way people type them on a plain keyboard.
_SPELLED_OUT: Final = str.maketrans(
    {
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ı": "i",  # noqa: RUF001 (the dotless i)
        "æ": "ae",
        "œ": "oe",
        "ß": "ss",
        "þ": "th",
        "ð": "d",
        "ħ": "h",
        "ŧ": "t",
    }
)


def fold(text: str, *, kana_voicing: bool = False) -> str:
    """The case-, accent- and width-insensitive form of a text: "Zoë" and "ZOE" fold alike,
    so do "Straße" and "strasse", and a full-width "TAYLOR" and "taylor".

    NFKD splits accented letters and folds compatibility forms (full-width letters,
    ligatures); the combining marks it splits off are dropped, then the text is casefolded.
    NFKD leaves a few letters whole that people still type without their stroke or
    ligature (ø ł đ æ œ ß þ, the dotless i); those are spelled out. Everything else (CJK,
    emoji, right-to-left scripts) is kept as it is. Spaces are kept: callers strip or split.

    NFKD splits the voicing marks off kana too (ガ becomes カ and a mark); with
    `kana_voicing` they are kept, split off, so that ガス (gas) and カス (dregs) differ.
    """
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    marks, astral_marks = _combining_marks(kana_voicing)
    bare = marks.sub("", decomposed)
    for char in _ASTRAL.findall(bare):
        if char in astral_marks:
            bare = bare.replace(char, "")
    folded = bare.casefold()
    return folded.translate(_SPELLED_OUT) if _TO_SPELL_OUT.search(folded) else folded


_KANA_VOICING: Final = frozenset("\u3099\u309a")
_TO_SPELL_OUT: Final = re.compile("[" + "".join(map(chr, _SPELLED_OUT)) + "]")
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")


@functools.cache
def _combining_marks(kana_voicing: bool) -> tuple[re.Pattern[str], frozenset[str]]:
    """The code points with a combining class (but kana's voicing marks when they are
    kept): those of the Basic Multilingual Plane as one character class (a bitmap to the
    regex engine), the others as a set (few texts have any). Built on first use, in tens
    of milliseconds ASCII-only processes never pay."""
    kept = _KANA_VOICING if kana_voicing else frozenset()
    marks = [
        chr(c)
        for c in range(sys.maxunicode + 1)
        if unicodedata.combining(chr(c)) and chr(c) not in kept
    ]
    basic = "".join(re.escape(mark) for mark in marks if mark <= "\uffff")
    return re.compile(f"[{basic}]+"), frozenset(mark for mark in marks if mark > "\uffff")
