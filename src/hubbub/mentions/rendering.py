"""Answers as JSON: the suggestion array the API returns, written from the base columns
by a compiled loop, with no Python object per page."""

from __future__ import annotations

from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from hubbub.mentions import _kernels

__all__ = ["json_parts", "render_suggestions"]

_Array = npt.NDArray[Any]

_JSON_PIECES: Final = (
    b'[{"id":',
    b',"handle":',
    b',"display_name":',
    b',"followers":',
    b',"source":',
    b'},{"id":',
    b"}]",
)


def json_parts(sources: list[str]) -> tuple[_Array, _Array]:
    """The fixed pieces of a suggestion array, then each source, for `render_suggestions`."""
    pieces = [*_JSON_PIECES, *(msgspec.json.encode(source) for source in sources)]
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([len(piece) for piece in pieces], out=offsets[1:])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets


def render_suggestions(
    columns: dict[str, _Array],
    followers: _Array,
    parts: tuple[_Array, _Array],
    ordinals: _Array,
) -> bytes:
    """The JSON array of the pages at `ordinals` of the base `columns`, in that order."""
    c = columns
    pieces, piece_off = parts
    rendered = _kernels.render_json(
        c["ids"], c["id_off"], c["handles"], c["handle_off"], c["names"], c["name_off"],
        c["has"], c["source"], pieces, piece_off, followers, ordinals,
    )  # fmt: skip
    return rendered.tobytes()
