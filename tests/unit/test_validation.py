"""Validation errors made printable: what a 422 echoes must encode as UTF-8."""

from __future__ import annotations

import json

from hubbub.kernel.validation import printable


def test_every_lone_surrogate_becomes_a_replacement_character() -> None:
    errors = [{"loc": ("body", "name"), "input": {"name": "a\ud800", "k\udfff": ["\ud83d"]}}]
    assert printable(errors) == [
        {"loc": ("body", "name"), "input": {"name": "a\ufffd", "k\ufffd": ["\ufffd"]}}
    ]
    json.dumps(printable(errors), ensure_ascii=False).encode()  # raised before


def test_what_is_printable_already_is_left_as_it_is() -> None:
    value = {"duck": "🦆", "n": 1, "none": None, "tuple": ("é", 2.5)}
    assert printable(value) == value
