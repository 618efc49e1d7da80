"""Text normalisation shared by every source: HTML to plain text, UTF-8 byte spans."""

from __future__ import annotations

from html.parser import HTMLParser

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
