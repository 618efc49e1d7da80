"""The accounts (pages) of the synthetic world: a did, a unique handle, a display name
and a language for every index, the same whatever the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from hubbub.synthetic.corpus import FAMILY_NAME_FIRST, NAME_EMOJI, NAMES
from hubbub.synthetic.ids import mix30, page_did


@dataclass(frozen=True)
class Page:
    """An account of the synthetic population."""

    did: str
    handle: str
    display_name: str
    lang: str


def _name_combinations() -> tuple[tuple[str, str, str], ...]:
    """Every (lang, display name, handle stem) combination, in a fixed shuffled order."""
    combos = [
        (lang, _display_name(lang, given[0], family[0]), given[1] + family[1])
        for lang, (givens, families) in NAMES.items()
        for given in givens
        for family in families
    ]
    random.Random(0x4A3E).shuffle(combos)
    return tuple(combos)


def _display_name(lang: str, given: str, family: str) -> str:
    if lang in FAMILY_NAME_FIRST:
        return family + given
    return f"{given} {family}"


_COMBINATIONS: Final = _name_combinations()


def _combination_slot(index: int) -> int:
    count = len(_COMBINATIONS)
    return index if index < count else mix30(index) % count


def page(index: int) -> Page:
    """The page with this index: did, handle and display name are stable across seeds.

    The first pages take every name combination once; later ones reuse a name and add
    their index to the handle, so handles stay unique.
    """
    lang, display, stem = _COMBINATIONS[_combination_slot(index)]
    handle = stem if index < len(_COMBINATIONS) else f"{stem}{index}"
    display += NAME_EMOJI[mix30(index + 1) % len(NAME_EMOJI)]
    return Page(page_did(index), handle + ".bsky.social", display, lang)


def page_lang(index: int) -> str:
    """The language of the page with this index, without building the whole page."""
    return _COMBINATIONS[_combination_slot(index)][0]
