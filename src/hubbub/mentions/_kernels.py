"""Compiled loops behind the page store: key sorting, prefix ranges, top-k, id lookup.

Numba functions (`nopython`, cached on disk, releasing the GIL) over flat numpy arrays.
Strings are UTF-8 bytes in one `uint8` blob with an `int64` offset array: string `i` is
`blob[off[i]:off[i + 1]]`.

Ranking: a page's *rank* is `score << 32 | (RANK_LOW - page)`, or -1 when its score is
negative (absent). A greater rank is a better page (higher score, then lower ordinal),
and two pages never share a rank, so duplicates of a page pop out of a max-heap one
after another. Keys are grouped in blocks of `BLOCK` positions; a max segment tree over
the blocks (a flat array of `2 * blocks` nodes, leaves at `blocks..2 * blocks - 1`)
holds the best rank of each block and subtree. Leaves of the keys themselves are not
stored: a key's rank is read through its page's score, so a score change touches only
the blocks of that page's keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = [
    "BLOCK",
    "RANK_LOW",
    "build_tree",
    "find_id",
    "gather_strings",
    "gather_texts",
    "last_of_each",
    "prefix_range",
    "render_json",
    "scan_recent",
    "sort_keys",
    "top_k",
    "unique_sorted",
    "update_page",
]

BLOCK = 8
"""Key positions per tree leaf: 2 bytes of tree per key, at most 8 ranks read per leaf."""
RANK_LOW = (1 << 32) - 1

_Function = TypeVar("_Function", bound=Callable[..., object])

Bytes = npt.NDArray[np.uint8]
Int64s = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]
UInt64s = npt.NDArray[np.uint64]


def _kernel(function: _Function) -> _Function:
    return cast(_Function, njit(cache=True, nogil=True)(function))


@_kernel
def _compare(blob: Bytes, off: Int64s, a: int, b: int, start: int) -> int:
    """-1, 0 or 1 as string `a` sorts before, with or after `b` (bytes from `start` on)."""
    a0, a1, b0, b1 = off[a] + start, off[a + 1], off[b] + start, off[b + 1]
    while a0 < a1 and b0 < b1:
        if blob[a0] != blob[b0]:
            return -1 if blob[a0] < blob[b0] else 1
        a0 += 1
        b0 += 1
    return int(a1 - a0 > 0) - int(b1 - b0 > 0)


@_kernel
def _chunk(blob: Bytes, off: Int64s, i: int, depth: int) -> np.uint64:
    """Bytes `depth..depth+8` of string `i`, big-endian, zero-padded: compares like them."""
    value = np.uint64(0)
    start = off[i] + depth
    end = off[i + 1]
    for j in range(8):
        value = value << np.uint64(8)
        if start + j < end:
            value = value | np.uint64(blob[start + j])
    return value


@_kernel
def _insertion_sort(blob: Bytes, off: Int64s, idx: Int64s, lo: int, hi: int, depth: int) -> None:
    for i in range(lo + 1, hi):
        item = idx[i]
        j = i - 1
        while j >= lo and _compare(blob, off, idx[j], item, depth) > 0:
            idx[j + 1] = idx[j]
            j -= 1
        idx[j + 1] = item


@_kernel
def sort_keys(blob: Bytes, off: Int64s, idx: Int64s) -> None:
    """Sort the string numbers `idx` in place by their bytes (UTF-8 order).

    A most-significant-chunk radix: sort by 8-byte chunks, then sort each run of equal
    chunks by the next chunk, strings ending inside the chunk first (shortest first).
    """
    stack_lo = [0]
    stack_hi = [len(idx)]
    stack_depth = [0]
    values = np.empty(len(idx), dtype=np.uint64)
    while len(stack_lo) > 0:
        lo, hi, depth = stack_lo.pop(), stack_hi.pop(), stack_depth.pop()
        if hi - lo <= 16:
            _insertion_sort(blob, off, idx, lo, hi, depth)
            continue
        for i in range(lo, hi):
            values[i] = _chunk(blob, off, idx[i], depth)
        order = np.argsort(values[lo:hi])
        idx[lo:hi] = idx[lo:hi][order]
        values[lo:hi] = values[lo:hi][order]
        i = lo
        while i < hi:
            j = i + 1
            while j < hi and values[j] == values[i]:
                j += 1
            if j - i > 1:
                lengths = np.empty(j - i, dtype=np.int64)
                for m in range(i, j):
                    lengths[m - i] = min(off[idx[m] + 1] - off[idx[m]] - depth, 9)
                by_length = np.argsort(lengths, kind="mergesort")
                idx[i:j] = idx[i:j][by_length]
                longer = i
                while longer < j and lengths[by_length[longer - i]] <= 8:
                    longer += 1
                if j - longer > 1:
                    stack_lo.append(longer)
                    stack_hi.append(j)
                    stack_depth.append(depth + 8)
            i = j


@_kernel
def unique_sorted(blob: Bytes, off: Int64s, idx: Int64s) -> tuple[Bytes, Int64s, Int64s]:
    """The distinct strings of sorted `idx` (blob, offsets) and where each one's run starts
    among the positions of `idx` (`starts[u]..starts[u + 1]`)."""
    n = len(idx)
    first = np.zeros(n, dtype=np.bool_)
    total = 0
    for i in range(n):
        if i == 0 or _compare(blob, off, idx[i - 1], idx[i], 0) != 0:
            first[i] = True
            total += off[idx[i] + 1] - off[idx[i]]
    n_unique = int(first.sum())
    out = np.empty(total, dtype=np.uint8)
    out_off = np.zeros(n_unique + 1, dtype=np.int64)
    starts = np.zeros(n_unique + 1, dtype=np.int64)
    u = 0
    for i in range(n):
        if first[i]:
            s, e = off[idx[i]], off[idx[i] + 1]
            out[out_off[u] : out_off[u] + e - s] = blob[s:e]
            out_off[u + 1] = out_off[u] + e - s
            starts[u] = i
            u += 1
    starts[n_unique] = n
    return out, out_off, starts


@_kernel
def gather_strings(blob: Bytes, off: Int64s, idx: Int64s) -> tuple[Bytes, Int64s]:
    """Strings `idx[0], idx[1], ...` of (blob, off) as a new blob and offsets."""
    out_off = np.zeros(len(idx) + 1, dtype=np.int64)
    for i in range(len(idx)):
        out_off[i + 1] = out_off[i] + off[idx[i] + 1] - off[idx[i]]
    out = np.empty(out_off[len(idx)], dtype=np.uint8)
    for i in range(len(idx)):
        out[out_off[i] : out_off[i + 1]] = blob[off[idx[i]] : off[idx[i] + 1]]
    return out, out_off


@_kernel
def gather_texts(
    ids: Bytes,
    id_off: Int64s,
    handles: Bytes,
    handle_off: Int64s,
    names: Bytes,
    name_off: Int64s,
    rows: Int64s,
) -> tuple[Bytes, Int64s]:
    """Id, handle and name of each row, one after another, as one blob with offsets."""
    total = 0
    for row in rows:
        total += id_off[row + 1] - id_off[row] + handle_off[row + 1] - handle_off[row]
        total += name_off[row + 1] - name_off[row]
    out = np.empty(total, dtype=np.uint8)
    out_off = np.zeros(3 * len(rows) + 1, dtype=np.int64)
    at = 0
    for i, row in enumerate(rows):
        for j, (blob, off) in enumerate(((ids, id_off), (handles, handle_off), (names, name_off))):
            s, e = off[row], off[row + 1]
            out[at : at + e - s] = blob[s:e]
            at += e - s
            out_off[3 * i + j + 1] = at
    return out, out_off


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NULL = np.frombuffer(b"null", dtype=np.uint8)


@_kernel
def _json_string(out: Bytes, at: int, blob: Bytes, s: int, e: int) -> int:
    """Write blob[s:e] (UTF-8) as a JSON string at `out[at]`, escaped as msgspec does."""
    out[at] = 34  # "
    at += 1
    for i in range(s, e):
        byte = blob[i]
        if byte == 34 or byte == 92:  # " and backslash
            out[at] = 92
            out[at + 1] = byte
            at += 2
        elif byte >= 32:
            out[at] = byte
            at += 1
        else:
            out[at] = 92
            short = 0
            if byte == 8:
                short = 98  # b
            elif byte == 9:
                short = 116  # t
            elif byte == 10:
                short = 110  # n
            elif byte == 12:
                short = 102  # f
            elif byte == 13:
                short = 114  # r
            if short:
                out[at + 1] = short
                at += 2
            else:
                out[at + 1 : at + 6] = np.array([117, 48, 48, 0, 0], dtype=np.uint8)  # u00
                out[at + 4] = _HEX[byte >> 4]
                out[at + 5] = _HEX[byte & 15]
                at += 6
    out[at] = 34
    return at + 1


@_kernel
def _put(out: Bytes, at: int, text: Bytes) -> int:
    out[at : at + len(text)] = text
    return at + len(text)


@_kernel
def render_json(
    ids: Bytes,
    id_off: Int64s,
    handles: Bytes,
    handle_off: Int64s,
    names: Bytes,
    name_off: Int64s,
    has: Bytes,
    source: Bytes,
    parts: Bytes,
    part_off: Int64s,
    followers: Int64s,
    rows: Int64s,
) -> Bytes:
    """A JSON array of the rows as suggestion objects (id, handle, display_name,
    followers, source), byte for byte what msgspec writes for them.

    `parts` holds the fixed pieces: `[{"id":`, `,"handle":`, `,"display_name":`,
    `,"followers":`, `,"source":`, `},{"id":`, `}]`, then each source as a JSON string.
    """
    size = 2 + 160 * len(rows)
    for row in rows:
        size += 6 * (id_off[row + 1] - id_off[row] + handle_off[row + 1] - handle_off[row])
        size += 6 * (name_off[row + 1] - name_off[row])
    out = np.empty(size, dtype=np.uint8)
    if len(rows) == 0:
        out[0] = 91
        out[1] = 93
        return out[:2]
    at = 0
    for i, row in enumerate(rows):
        at = _put(out, at, parts[part_off[0 if i == 0 else 5] : part_off[1 if i == 0 else 6]])
        at = _json_string(out, at, ids, id_off[row], id_off[row + 1])
        at = _put(out, at, parts[part_off[1] : part_off[2]])
        if has[row] & 1:
            at = _json_string(out, at, handles, handle_off[row], handle_off[row + 1])
        else:
            at = _put(out, at, _NULL)
        at = _put(out, at, parts[part_off[2] : part_off[3]])
        if has[row] & 2:
            at = _json_string(out, at, names, name_off[row], name_off[row + 1])
        else:
            at = _put(out, at, _NULL)
        at = _put(out, at, parts[part_off[3] : part_off[4]])
        count = followers[row]
        digits = 1
        while count >= 10**digits:
            digits += 1
        for d in range(digits - 1, -1, -1):
            out[at + d] = 48 + count % 10
            count //= 10
        at += digits
        at = _put(out, at, parts[part_off[4] : part_off[5]])
        code = 7 + source[row]
        at = _put(out, at, parts[part_off[code] : part_off[code + 1]])
    return out[: _put(out, at, parts[part_off[6] : part_off[7]])]


@_kernel
def last_of_each(blob: Bytes, off: Int64s, order: Int64s) -> npt.NDArray[np.bool_]:
    """Which entries of `order` (string numbers sorted by their bytes) to keep: of each
    run of equal strings, the greatest string number (the last one added)."""
    keep = np.zeros(len(order), dtype=np.bool_)
    i = 0
    while i < len(order):
        best = i
        j = i + 1
        while j < len(order) and _compare(blob, off, order[j], order[i], 0) == 0:
            if order[j] > order[best]:
                best = j
            j += 1
        keep[best] = True
        i = j
    return keep


@_kernel
def _compare_key(blob: Bytes, s: int, e: int, key: Bytes) -> int:
    """-1, 0 or 1 as the string blob[s:e] sorts before, with or after `key`."""
    n = min(e - s, len(key))
    for j in range(n):
        if blob[s + j] != key[j]:
            return -1 if blob[s + j] < key[j] else 1
    if e - s == len(key):
        return 0
    return -1 if e - s < len(key) else 1


@_kernel
def find_id(blob: Bytes, off: Int64s, key: Bytes) -> int:
    """Position of the string `key` among the sorted strings (blob, off), or -1."""
    lo, hi = 0, len(off) - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        order = _compare_key(blob, off[mid], off[mid + 1], key)
        if order == 0:
            return mid
        if order < 0:
            lo = mid + 1
        else:
            hi = mid
    return -1


@_kernel
def _rank(scores: Int32s, page: int) -> int:
    score = scores[page]
    if score < 0:
        return -1
    return (int(score) << 32) | (RANK_LOW - page)


@_kernel
def _block_rank(key_page: Int32s, scores: Int32s, block: int) -> int:
    best = -1
    for pos in range(block * BLOCK, min((block + 1) * BLOCK, len(key_page))):
        best = max(best, _rank(scores, key_page[pos]))
    return best


@_kernel
def build_tree(key_page: Int32s, scores: Int32s) -> Int64s:
    """The max tree over the blocks of `key_page`, ranked through `scores`."""
    blocks = (len(key_page) + BLOCK - 1) // BLOCK
    tree = np.full(max(2 * blocks, 1), -1, dtype=np.int64)
    for block in range(blocks):
        tree[blocks + block] = _block_rank(key_page, scores, block)
    for node in range(blocks - 1, 0, -1):
        tree[node] = max(tree[2 * node], tree[2 * node + 1])
    return tree


@_kernel
def update_page(
    tree: Int64s,
    key_page: Int32s,
    scores: Int32s,
    page_ptr: Int64s,
    page_keys: Int32s,
    page: int,
) -> None:
    """Bring the tree in line with a new `scores[page]`, along the page's key positions."""
    blocks = len(tree) // 2
    for j in range(page_ptr[page], page_ptr[page + 1]):
        block = page_keys[j] // BLOCK
        node = blocks + block
        tree[node] = _block_rank(key_page, scores, block)
        node >>= 1
        while node >= 1:
            best = max(tree[2 * node], tree[2 * node + 1])
            if tree[node] == best:
                break
            tree[node] = best
            node >>= 1


@_kernel
def _compare_prefix(blob: Bytes, s: int, e: int, prefix: Bytes) -> int:
    """-1 if the string sorts before every string starting with `prefix`, 1 if after, else 0."""
    for j in range(len(prefix)):
        if s + j >= e:
            return -1
        if blob[s + j] != prefix[j]:
            return -1 if blob[s + j] < prefix[j] else 1
    return 0


@_kernel
def prefix_range(blob: Bytes, off: Int64s, prefix: Bytes) -> tuple[int, int]:
    """Positions `[lo, hi)` of the sorted strings starting with `prefix`."""
    lo, hi = 0, len(off) - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if _compare_prefix(blob, off[mid], off[mid + 1], prefix) < 0:
            lo = mid + 1
        else:
            hi = mid
    first = lo
    hi = len(off) - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if _compare_prefix(blob, off[mid], off[mid + 1], prefix) <= 0:
            lo = mid + 1
        else:
            hi = mid
    return first, lo


@_kernel
def _push(values: Int64s, nodes: Int64s, size: int, value: int, node: int) -> int:
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if values[parent] >= value:
            break
        values[i] = values[parent]
        nodes[i] = nodes[parent]
        i = parent
    values[i] = value
    nodes[i] = node
    return size + 1


@_kernel
def _pop(values: Int64s, nodes: Int64s, size: int) -> int:
    """Remove the top (read it first at index 0); returns the new size."""
    size -= 1
    value, node = values[size], nodes[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and values[child + 1] > values[child]:
            child += 1
        if values[child] <= value:
            break
        values[i] = values[child]
        nodes[i] = nodes[child]
        i = child
    values[i] = value
    nodes[i] = node
    return size


@_kernel
def top_k(
    blob: Bytes,
    off: Int64s,
    starts: Int64s,
    key_page: Int32s,
    tree: Int64s,
    scores: Int32s,
    prefix: Bytes,
    k: int,
) -> Int64s:
    """The best `k` distinct pages having a key that starts with `prefix`, best first.

    Keys are the distinct sorted strings (blob, off); the positions of key `u` are
    `starts[u]..starts[u + 1]`, each naming its page in `key_page`. The range's blocks
    are split into O(log n) tree nodes walked best first with a heap: a tree node pushes
    its children, a leaf its keys, a key is a result. The walk never enumerates the range.
    """
    found = np.empty(max(k, 0), dtype=np.int64)
    lo_key, hi_key = prefix_range(blob, off, prefix)
    if k <= 0 or lo_key >= hi_key:
        return found[:0]
    lo, hi = starts[lo_key], starts[hi_key]
    blocks = len(tree) // 2
    capacity = 256
    values = np.empty(capacity, dtype=np.int64)
    nodes = np.empty(capacity, dtype=np.int64)
    size = 0
    first_full, end_full = (lo + BLOCK - 1) // BLOCK, hi // BLOCK
    if first_full >= end_full:
        first_full = end_full = hi
        edges = ((lo, hi), (hi, hi))
    else:
        edges = ((lo, first_full * BLOCK), (end_full * BLOCK, hi))
    for edge_lo, edge_hi in edges:
        for pos in range(edge_lo, edge_hi):
            rank = _rank(scores, key_page[pos])
            if rank >= 0:
                if size + 1 > capacity:
                    capacity *= 2
                    values, nodes = _grow(values, nodes, capacity)
                size = _push(values, nodes, size, rank, -pos - 1)
    if first_full < end_full:
        left, right = first_full + blocks, end_full + blocks
        while left < right:
            if left & 1:
                if tree[left] >= 0:
                    if size + 1 > capacity:
                        capacity *= 2
                        values, nodes = _grow(values, nodes, capacity)
                    size = _push(values, nodes, size, tree[left], left)
                left += 1
            if right & 1:
                right -= 1
                if tree[right] >= 0:
                    if size + 1 > capacity:
                        capacity *= 2
                        values, nodes = _grow(values, nodes, capacity)
                    size = _push(values, nodes, size, tree[right], right)
            left >>= 1
            right >>= 1
    count = 0
    last = -2
    while size > 0 and count < k:
        value, node = values[0], nodes[0]
        size = _pop(values, nodes, size)
        if size + BLOCK + 64 > capacity:
            capacity *= 2
            values, nodes = _grow(values, nodes, capacity)
        if node >= 0:
            # Follow the child that holds `value` down to its block, keeping the others.
            while node < blocks:
                left, right = 2 * node, 2 * node + 1
                if tree[left] == value:
                    node = left
                    if tree[right] >= 0:
                        size = _push(values, nodes, size, tree[right], right)
                else:
                    node = right
                    if tree[left] >= 0:
                        size = _push(values, nodes, size, tree[left], left)
            block = node - blocks
            for pos in range(block * BLOCK, min((block + 1) * BLOCK, len(key_page))):
                rank = _rank(scores, key_page[pos])
                if rank == value:
                    node = -pos - 1
                elif rank >= 0:
                    size = _push(values, nodes, size, rank, -pos - 1)
        if value != last:
            found[count] = key_page[-node - 1]
            count += 1
            last = value
    return found[:count]


@_kernel
def _grow(values: Int64s, nodes: Int64s, capacity: int) -> tuple[Int64s, Int64s]:
    new_values = np.empty(capacity, dtype=np.int64)
    new_nodes = np.empty(capacity, dtype=np.int64)
    new_values[: len(values)] = values
    new_nodes[: len(nodes)] = nodes
    return new_values, new_nodes


@_kernel
def scan_recent(
    blob: Bytes,
    off: Int64s,
    pages: Int32s,
    count: int,
    scores: Int32s,
    prefix: Bytes,
    k: int,
) -> Int64s:
    """The best `k` distinct ranks, best first, of the pages of the first `count`
    (unsorted) strings that start with `prefix`."""
    best = np.full(max(k, 0), -1, dtype=np.int64)  # descending; a linear insert, k is small
    n = 0
    if k <= 0:
        return best
    for i in range(count):
        if _compare_prefix(blob, off[i], off[i + 1], prefix) != 0:
            continue
        rank = _rank(scores, pages[i])
        if rank < 0 or (n == len(best) and rank <= best[n - 1]):
            continue
        j = 0
        while j < n and best[j] > rank:
            j += 1
        if j < n and best[j] == rank:
            continue
        n = min(n + 1, len(best))
        for m in range(n - 1, j, -1):
            best[m] = best[m - 1]
        if j < n:
            best[j] = rank
    return best[:n]
