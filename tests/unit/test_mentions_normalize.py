"""Case-, accent- and width-insensitive matching keys for names and queries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.mentions.normalize import InvalidQuery, normalize, query_terms, words


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("@Nik", "nik"),
        ("Zoë", "zoe"),
        ("ÅNGSTRÖM", "angstrom"),
        ("Søren Kierkegaard", "soren kierkegaard"),
        ("Łukasz", "lukasz"),
        ("Đorđe", "dorde"),
        ("Straße", "strasse"),
        ("Æsir Œuvre", "aesir oeuvre"),
        ("Þórr", "thorr"),
        ("ılık", "ilik"),
        ("ＴＡＹＬＯＲ", "taylor"),  # full-width letters
        ("ﬁnance", "finance"),  # a ligature
        ("山田太郎", "山田太郎"),
        ("محمد", "محمد"),
        ("🎸 rock", "🎸 rock"),
    ],
)
def test_normalize_folds_case_accents_and_width(typed: str, expected: str) -> None:
    assert normalize(typed) == expected


def test_words_split_names_on_spaces_and_punctuation() -> None:
    assert words("Taylor Swift") == ["taylor", "swift"]
    assert words("  Jean-Luc   Picard (Captain) ") == ["jean", "luc", "picard", "captain"]
    assert words("山田 太郎") == ["山田", "太郎"]
    assert words("DJ 🎧 Zoë") == ["dj", "🎧", "zoe"]
    assert words("...") == []


def test_query_terms_reject_what_cannot_be_answered() -> None:
    assert query_terms("@taylor sw") == ["taylor", "sw"]
    for bad in ("", "   ", "@", "x" * 1000):
        with pytest.raises(InvalidQuery):
            query_terms(bad)


@given(st.text(max_size=60))
def test_normalizing_is_idempotent_and_never_fails(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once or once.startswith("@")
    assert all(" " not in word and word for word in words(text))


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_the_ascii_shortcut_agrees_with_the_unicode_path(text: str) -> None:
    # A lone combining accent makes the text non-ASCII and is then dropped by NFKD.
    assert normalize(text) == normalize(text + "\u0301")
    assert words(text) == words(text + "\u0301")
