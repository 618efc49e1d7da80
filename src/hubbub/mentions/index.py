"""Prefix top-k over page keys: the ten most followed pages whose key starts with a prefix.

`PrefixTopK` is immutable in its keys and mutable in its scores. Its keys (already
normalized strings) are kept sorted, UTF-8 encoded in one byte string with an offset
array, so that the keys starting with a prefix form one range, found by binary search.
Over the key positions lies a max segment tree (a flat numpy int64 array of `2n`
nodes, leaves at `n..2n-1`) whose values rank pages: score in the high 32 bits, the
complement of the page ordinal in the low 32 bits, so that a greater value means a
higher score, then a lower ordinal. Removed pages have the value -1. A query splits
its range into O(log n) tree nodes and walks them best first with a heap, stopping
after `k` distinct pages; a page owning several keys in the range is reported once.

`MentionsIndex` maps page ids to ordinals and keeps pages added or renamed since the
last build in a small sorted delta, merged into the base by `compact`.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_SCORE", "MentionsIndex", "PrefixTopK"]

MAX_SCORE = (1 << 31) - 1
"""Largest score a page may have (scores share an int64 with the page ordinal)."""

_LOW = (1 << 32) - 1
_MAX_PAGES = 1 << 32
_ABOVE_UTF8 = b"\xff"  # greater than every byte of UTF-8: bounds a prefix range from above


def _rank(page: int, score: int) -> int:
    """Tree value of `page` at `score`: greater means better (higher score, lower page)."""
    return (score << 32) | (_LOW - page)


def _check_score(score: int) -> None:
    if not 0 <= score <= MAX_SCORE:
        raise ValueError(f"score must be in [0, {MAX_SCORE}], got {score}")


class _SortedKeys:
    """The sorted keys as a read-only sequence of bytes, for `bisect`."""

    __slots__ = ("_offsets", "blob")

    def __init__(self, blob: bytes, offsets: memoryview) -> None:
        self.blob = blob
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> bytes:
        return self.blob[self._offsets[i] : self._offsets[i + 1]]


class PrefixTopK:
    """Top-k pages by score among keys starting with a prefix, over a sorted key array.

    Pages are ordinals `0..n_pages-1`. Keys are fixed at build; scores change in place
    (`set_score`) and pages can be removed (`remove`), after which they are never
    returned again and their score updates are ignored. Memory is 24 bytes per key
    (28 past 4 GB of key bytes) plus the key bytes, and 16 bytes per page.
    """

    __slots__ = (
        "_keys",
        "_n",
        "_offsets",
        "_page_keys",
        "_page_ptr",
        "_scores",
        "_tree",
        "_tv",
    )

    def __init__(
        self,
        blob: bytes,
        offsets: npt.NDArray[np.uint32] | npt.NDArray[np.int64],
        tree: npt.NDArray[np.int64],
        page_keys: npt.NDArray[np.int32],
        page_ptr: npt.NDArray[np.int64],
        scores: npt.NDArray[np.int64],
    ) -> None:
        """Use `build`; this takes the arrays as built, without checking them."""
        self._n = len(offsets) - 1
        self._offsets = offsets
        self._keys = _SortedKeys(blob, offsets.data)
        self._tree = tree
        self._tv = tree.data
        self._page_keys = page_keys.data
        self._page_ptr = page_ptr.data
        self._scores = scores.data

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
        order = sorted(range(n), key=encoded.__getitem__)
        sorted_keys = [encoded[i] for i in order]
        del encoded
        lengths = np.fromiter(map(len, sorted_keys), dtype=np.int64, count=n)
        total = int(lengths.sum())
        offsets: npt.NDArray[np.uint32] | npt.NDArray[np.int64] = (
            np.zeros(n + 1, dtype=np.uint32)
            if total < _MAX_PAGES
            else np.zeros(n + 1, dtype=np.int64)
        )
        np.cumsum(lengths, out=offsets[1:])
        blob = b"".join(sorted_keys)
        del sorted_keys
        key_page = page_arr[np.fromiter(order, dtype=np.int64, count=n)]
        del order

        page_ord = np.arange(n_pages, dtype=np.int64)
        ranks = np.where(score_arr >= 0, (score_arr << 32) | (_LOW - page_ord), -1)
        tree = np.full(2 * n, -1, dtype=np.int64)
        tree[n:] = ranks[key_page]
        hi = n
        while hi > 1:
            lo = (hi + 1) // 2
            np.maximum(tree[2 * lo : 2 * hi : 2], tree[2 * lo + 1 : 2 * hi : 2], out=tree[lo:hi])
            hi = lo

        page_keys = np.argsort(key_page, kind="stable").astype(np.int32)
        page_ptr = np.zeros(n_pages + 1, dtype=np.int64)
        np.cumsum(np.bincount(key_page, minlength=n_pages), out=page_ptr[1:])
        return cls(blob, offsets, tree, page_keys, page_ptr, score_arr)

    def __len__(self) -> int:
        """Number of keys (removed pages' keys included)."""
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's key bytes and arrays."""
        return (
            len(self._keys.blob)
            + self._offsets.nbytes
            + self._tree.nbytes
            + self._page_keys.nbytes
            + self._page_ptr.nbytes
            + self._scores.nbytes
        )

    @property
    def n_pages(self) -> int:
        """Number of page ordinals, removed ones included."""
        return len(self._scores)

    def score(self, page: int) -> int:
        """Current score of `page`, or -1 if it was removed (or absent at build)."""
        return int(self._scores[page])

    def keys_of(self, page: int) -> list[str]:
        """The keys of `page`, in sorted order (also for a removed page)."""
        ptr = self._page_ptr
        positions = sorted(self._page_keys[ptr[page] : ptr[page + 1]])
        return [self._keys[int(pos)].decode() for pos in positions]

    def key_range(self, prefix: str) -> tuple[int, int]:
        """Positions `[lo, hi)` of the sorted keys starting with `prefix`."""
        encoded = prefix.encode()
        lo = bisect_left(self._keys, encoded)
        hi = bisect_left(self._keys, encoded + _ABOVE_UTF8, lo)
        return lo, hi

    def top_k(self, prefix: str, k: int = 10) -> list[int]:
        """Page ordinals with a key starting with `prefix`: best score first, ties by
        lower ordinal; each page at most once; removed pages never.

        Costs O(log n) for the range plus O(d log n) for d keys visited, where d is k
        plus the extra keys in the range of the pages returned; never the whole range.
        """
        if k <= 0 or self._n == 0:
            return []
        lo, hi = self.key_range(prefix)
        if lo >= hi:
            return []
        n, tv = self._n, self._tv
        heap: list[tuple[int, int]] = []
        left, right = lo + n, hi + n
        while left < right:
            if left & 1:
                if tv[left] >= 0:
                    heap.append((-tv[left], left))
                left += 1
            if right & 1:
                right -= 1
                if tv[right] >= 0:
                    heap.append((-tv[right], right))
            left >>= 1
            right >>= 1
        heapq.heapify(heap)
        found: list[int] = []
        seen: set[int] = set()
        heappop, heappush = heapq.heappop, heapq.heappush
        while heap:
            neg, node = heappop(heap)
            while node < n:
                child = node << 1
                a, b = tv[child], tv[child + 1]
                if a >= b:
                    node = child
                    if b >= 0:
                        heappush(heap, (-b, child + 1))
                else:
                    node = child + 1
                    if a >= 0:
                        heappush(heap, (-a, child))
            page = _LOW - ((-neg) & _LOW)
            if page not in seen:
                seen.add(page)
                found.append(page)
                if len(found) == k:
                    break
        return found

    def set_score(self, page: int, score: int) -> None:
        """Set the score of `page` in place, in O(keys of page * log n).

        Ignored if `page` was removed. Raises ValueError if `score` is out of range.
        """
        _check_score(score)
        if self._scores[page] < 0:
            return
        self._scores[page] = score
        self._set_leaves(page, _rank(page, score))

    def remove(self, page: int) -> None:
        """Tombstone `page`: it is never returned again."""
        if self._scores[page] < 0:
            return
        self._scores[page] = -1
        self._set_leaves(page, -1)

    def _set_leaves(self, page: int, value: int) -> None:
        tv, n, ptr = self._tv, self._n, self._page_ptr
        for pos in self._page_keys[ptr[page] : ptr[page + 1]]:
            node = pos + n
            tv[node] = value
            node >>= 1
            while node:
                child = node << 1
                a, b = tv[child], tv[child + 1]
                best = a if a >= b else b
                if tv[node] == best:
                    break
                tv[node] = best
                node >>= 1


_EMPTY = PrefixTopK.build([], [], [])


class MentionsIndex:
    """Page ids to their keys and scores, answering `top_k(prefix)` best first.

    A base `PrefixTopK` holds the pages of the last build; pages added or renamed
    since then live in a delta (a sorted list of `(key, ordinal)`, scanned over the
    prefix range), and their base keys are tombstoned. When the delta holds more than
    `delta_limit` keys, the index compacts itself (rebuilds the base from everything).
    Ties between equal scores go to the page indexed first.
    """

    def __init__(self, delta_limit: int = 50_000) -> None:
        """An empty index; `delta_limit` bounds the keys kept outside the base."""
        self.delta_limit = delta_limit
        self._base = _EMPTY
        self._ids: list[str | None] = []
        self._ords: dict[str, int] = {}
        self._delta: list[tuple[str, int]] = []
        self._delta_keys: dict[int, list[str]] = {}
        self._delta_scores: dict[int, int] = {}

    @classmethod
    def build(
        cls, pages: Iterable[tuple[str, list[str], int]], delta_limit: int = 50_000
    ) -> MentionsIndex:
        """An index of `(page_id, keys, score)`; a later entry for an id replaces earlier ones."""
        latest: dict[str, tuple[list[str], int]] = {}
        for page_id, keys, score in pages:
            _check_score(score)
            latest.pop(page_id, None)
            latest[page_id] = (keys, score)
        index = cls(delta_limit)
        index._load(
            list(latest), [ks for ks, _ in latest.values()], [s for _, s in latest.values()]
        )
        return index

    def __len__(self) -> int:
        """Number of live pages."""
        return len(self._ords)

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._ords

    @property
    def delta_size(self) -> int:
        """Number of keys outside the base."""
        return len(self._delta)

    def upsert(self, page_id: str, keys: list[str], score: int) -> None:
        """Add the page, or replace its keys and score (its old keys stop matching).

        `keys` are normalized keys; duplicates are ignored. Raises ValueError if
        `score` is out of `[0, MAX_SCORE]`.
        """
        _check_score(score)
        ordinal = self._ords.get(page_id)
        if ordinal is None:
            ordinal = len(self._ids)
            self._ids.append(page_id)
            self._ords[page_id] = ordinal
        elif ordinal in self._delta_keys:
            self._drop_delta(ordinal)
        else:
            self._base.remove(ordinal)
        unique = sorted(set(keys))
        self._delta_keys[ordinal] = unique
        self._delta_scores[ordinal] = score
        for key in unique:
            insort(self._delta, (key, ordinal))
        if len(self._delta) > self.delta_limit:
            self.compact()

    def set_score(self, page_id: str, score: int) -> None:
        """Set the page's score; ignored for a page not in the index."""
        _check_score(score)
        ordinal = self._ords.get(page_id)
        if ordinal is None:
            return
        if ordinal in self._delta_scores:
            self._delta_scores[ordinal] = score
        else:
            self._base.set_score(ordinal, score)

    def remove(self, page_id: str) -> None:
        """Remove the page; ignored for a page not in the index."""
        ordinal = self._ords.pop(page_id, None)
        if ordinal is None:
            return
        self._ids[ordinal] = None
        if ordinal in self._delta_keys:
            self._drop_delta(ordinal)
        else:
            self._base.remove(ordinal)

    def top_k(self, prefix: str, k: int = 10) -> list[tuple[str, int]]:
        """`(page_id, score)` of the k best pages with a key starting with `prefix`."""
        if k <= 0:
            return []
        base = self._base
        ranked = [(-base.score(o), o) for o in base.top_k(prefix, k)]
        delta = self._delta
        in_range: set[int] = set()
        i = bisect_left(delta, (prefix,))
        while i < len(delta) and delta[i][0].startswith(prefix):
            in_range.add(delta[i][1])
            i += 1
        scores = self._delta_scores
        ranked.extend((-scores[o], o) for o in in_range)
        best = heapq.nsmallest(k, ranked)
        ids = self._ids
        return [(ids[o] or "", -neg) for neg, o in best]

    def compact(self) -> None:
        """Rebuild the base from all live pages, emptying the delta and renumbering."""
        page_ids: list[str] = []
        keys: list[list[str]] = []
        scores: list[int] = []
        base = self._base
        for ordinal, page_id in enumerate(self._ids):
            if page_id is None:
                continue
            page_ids.append(page_id)
            if ordinal in self._delta_keys:
                keys.append(self._delta_keys[ordinal])
                scores.append(self._delta_scores[ordinal])
            else:
                keys.append(base.keys_of(ordinal))
                scores.append(base.score(ordinal))
        self._load(page_ids, keys, scores)

    def _load(self, page_ids: list[str], keys: list[list[str]], scores: list[int]) -> None:
        flat_keys: list[str] = []
        flat_pages: list[int] = []
        for ordinal, page_keys in enumerate(keys):
            unique = set(page_keys)
            flat_keys.extend(unique)
            flat_pages.extend([ordinal] * len(unique))
        self._base = PrefixTopK.build(flat_keys, flat_pages, scores)
        self._ids = list[str | None](page_ids)
        self._ords = {page_id: ordinal for ordinal, page_id in enumerate(page_ids)}
        self._delta = []
        self._delta_keys = {}
        self._delta_scores = {}

    def _drop_delta(self, ordinal: int) -> None:
        del self._delta_scores[ordinal]
        for key in self._delta_keys.pop(ordinal):
            i = bisect_left(self._delta, (key, ordinal))
            del self._delta[i]
