"""Who a comment names: the `@handles` a teammate would read in it."""

from __future__ import annotations

import pytest

from hubbub.publishing.review import mentioned


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Thanks @ada.", ["ada"]),
        ("@ada, @Bob and @ada again", ["ada", "bob"]),
        ("ask @grace.hopper-", ["grace.hopper"]),
        ("mail @lin@example.org!", ["lin@example.org"]),
        ("not a@mention, nor @", []),
        ("(@ada)", ["ada"]),
    ],
)
def test_a_comment_names_each_handle_once_without_the_sentences_punctuation(
    text: str, named: list[str]
) -> None:
    assert mentioned(text) == named
