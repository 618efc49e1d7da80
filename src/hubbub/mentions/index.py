"""Prefix top-k over page keys: the most followed pages whose key starts with a prefix.

`PrefixTopK` is immutable in its keys and mutable in its scores. Its keys (already
normalized strings) are kept sorted and distinct, UTF-8 encoded in one byte array with
an offset array, so that the keys starting with a prefix form one range, found by
binary search; each distinct key names the run of positions of the pages owning it.
Over the positions lies a max segment tree of blocks (`_kernels`), whose values rank
pages by score then lower ordinal, read through a per-page score array: a query walks
O(log n) tree nodes best first and stops after `k` distinct pages, so one-letter
prefixes over millions of keys cost the same as long ones. Scores change in place.
The compiled loops live in `_kernels`; `PageStore` (store.py) builds on this class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from hubbub.mentions import _kernels

__all__ = ["MAX_SCORE", "PrefixTopK"]

MAX_SCORE = (1 << 31) - 1
"""Largest score a page may have (scores are int32; ranks share an int64 with the ordinal)."""

_MAX_PAGES = 1 << 31
_ARRAYS = ("blob", "offsets", "starts", "key_page", "page_ptr", "page_keys", "tree")


def _check_score(score: int) -> None:
    if not 0 <= score <= MAX_SCORE:
        raise ValueError(f"score must be in [0, {MAX_SCORE}], got {score}")


class PrefixTopK:
    """Top-k pages by score among keys starting with a prefix, over a sorted key array.

    Pages are ordinals `0..n_pages-1`; `scores[page]` (int32, -1 for an absent page) is
    read at query time and may be longer than `n_pages`. Keys are fixed at build; scores
    change in place (`set_score`, `remove`, or writing `scores` then `refresh`). Memory:
    the distinct key bytes with 16 bytes per distinct key, 10 per key, 8 per page.
    """

    __slots__ = ("blob", "key_page", "offsets", "page_keys", "page_ptr", "scores", "starts", "tree")

    def __init__(
        self, arrays: dict[str, npt.NDArray[np.generic]], scores: npt.NDArray[np.int32]
    ) -> None:
        """Use `build` or `from_strings`; this takes the arrays as built (see `arrays`)."""
        self.blob: npt.NDArray[np.uint8] = arrays["blob"]  # type: ignore[assignment]
        self.offsets: npt.NDArray[np.int64] = arrays["offsets"]  # type: ignore[assignment]
        self.starts: npt.NDArray[np.int64] = arrays["starts"]  # type: ignore[assignment]
        self.key_page: npt.NDArray[np.int32] = arrays["key_page"]  # type: ignore[assignment]
        self.page_ptr: npt.NDArray[np.int64] = arrays["page_ptr"]  # type: ignore[assignment]
        self.page_keys: npt.NDArray[np.int32] = arrays["page_keys"]  # type: ignore[assignment]
        self.tree: npt.NDArray[np.int64] = arrays["tree"]  # type: ignore[assignment]
        self.scores = scores

    @classmethod
    def from_strings(
        cls,
        blob: npt.NDArray[np.uint8],
        offsets: npt.NDArray[np.int64],
        key_page: npt.NDArray[np.int32],
        scores: npt.NDArray[np.int32],
        n_pages: int,
    ) -> PrefixTopK:
        """Index the strings of (blob, offsets), string i owned by page key_page[i]."""
        order = np.arange(len(key_page), dtype=np.int64)
        _kernels.sort_keys(blob, offsets, order)
        unique, unique_offsets, starts = _kernels.unique_sorted(blob, offsets, order)
        sorted_pages = np.ascontiguousarray(key_page[order], dtype=np.int32)
        del order
        page_keys = np.argsort(sorted_pages, kind="stable").astype(np.int32)
        page_ptr = np.zeros(n_pages + 1, dtype=np.int64)
        np.cumsum(np.bincount(sorted_pages, minlength=n_pages), out=page_ptr[1:])
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "blob": unique,
            "offsets": unique_offsets,
            "starts": starts,
            "key_page": sorted_pages,
            "page_ptr": page_ptr,
            "page_keys": page_keys,
            "tree": _kernels.build_tree(sorted_pages, scores),
        }
        return cls(arrays, scores)

    @classmethod
    def build(
        cls,
        keys: Sequence[str],
        pages: Sequence[int] | npt.NDArray[np.integer],
        scores: Sequence[int] | npt.NDArray[np.integer],
    ) -> PrefixTopK:
        """Index `keys`, where keys[i] belongs to page ordinal pages[i].

        scores[page] is that page's score, in `[0, MAX_SCORE]`, or -1 for a page that
        is absent (never returned). `len(scores)` is the number of page ordinals. A page
        may own several keys, even equal ones. Raises ValueError on inconsistent input.
        """
        n = len(keys)
        if len(pages) != n:
            raise ValueError(f"{n} keys but {len(pages)} pages")
        score_arr = np.array(scores, dtype=np.int64).reshape(-1)
        n_pages = len(score_arr)
        if n_pages > _MAX_PAGES:
            raise ValueError(f"at most {_MAX_PAGES} pages")
        if n_pages and (score_arr.min() < -1 or score_arr.max() > MAX_SCORE):
            raise ValueError(f"scores must be in [0, {MAX_SCORE}] (or -1 for absent)")
        page_arr = np.asarray(pages, dtype=np.int64).reshape(-1)
        if n and (page_arr.min() < 0 or page_arr.max() >= n_pages):
            raise ValueError("page ordinals must index scores")
        encoded = [key.encode() for key in keys]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return cls.from_strings(
            blob, offsets, page_arr.astype(np.int32), score_arr.astype(np.int32), n_pages
        )

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """The arrays that `PrefixTopK(arrays, scores)` takes back (for saving)."""
        return {name: getattr(self, name) for name in _ARRAYS}

    def __len__(self) -> int:
        """Number of keys (removed pages' keys included)."""
        return len(self.key_page)

    @property
    def nbytes(self) -> int:
        """Bytes held by the key bytes and arrays (scores excluded: they are the caller's)."""
        return sum(getattr(self, name).nbytes for name in _ARRAYS)

    @property
    def n_pages(self) -> int:
        """Number of page ordinals, removed ones included."""
        return len(self.page_ptr) - 1

    def score(self, page: int) -> int:
        """Current score of `page`, or -1 if it was removed (or absent at build)."""
        return int(self.scores[page])

    def keys_of(self, page: int) -> list[str]:
        """The keys of `page`, in sorted order (also for a removed page)."""
        positions = np.sort(self.page_keys[self.page_ptr[page] : self.page_ptr[page + 1]])
        found = np.searchsorted(self.starts, positions, side="right") - 1
        off, blob = self.offsets, self.blob
        return [bytes(blob[off[u] : off[u + 1]]).decode() for u in found.tolist()]

    def top_k(self, prefix: str | bytes, k: int = 10) -> list[int]:
        """Page ordinals with a key starting with `prefix`: best score first, ties by
        lower ordinal; each page at most once; removed pages never.

        Costs O(log n) for the range plus O(d log n) for d keys visited, where d is k
        plus the extra keys in the range of the pages returned; never the whole range.
        """
        return self.top_k_array(prefix, k).tolist()  # type: ignore[no-any-return]

    def top_k_array(
        self, prefix: str | bytes | npt.NDArray[np.uint8], k: int
    ) -> npt.NDArray[np.int64]:
        """`top_k` as an int64 array (`prefix` may be its UTF-8 bytes as a uint8 array)."""
        if isinstance(prefix, str):
            prefix = prefix.encode()
        if isinstance(prefix, bytes):
            prefix = np.frombuffer(prefix, dtype=np.uint8)
        return _kernels.top_k(
            self.blob,
            self.offsets,
            self.starts,
            self.key_page,
            self.tree,
            self.scores,
            prefix,
            k,
        )

    def set_score(self, page: int, score: int) -> None:
        """Set the score of `page` in place, in O(keys of page * log n).

        Ignored if `page` was removed. Raises ValueError if `score` is out of range.
        """
        _check_score(score)
        if self.scores[page] < 0:
            return
        self.scores[page] = score
        self.refresh(page)

    def remove(self, page: int) -> None:
        """Tombstone `page`: it is never returned again."""
        if self.scores[page] < 0:
            return
        self.scores[page] = -1
        self.refresh(page)

    def refresh(self, page: int) -> None:
        """Bring the tree in line after `scores[page]` was written directly."""
        if page < self.n_pages:
            _kernels.update_page(
                self.tree, self.key_page, self.scores, self.page_ptr, self.page_keys, page
            )
