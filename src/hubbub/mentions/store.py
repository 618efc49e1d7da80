"""Every page the mentions service knows, in columns, with the prefix index over them.

`PageStore` is both the service's page table and its autocomplete index, sized for tens
of millions of pages: no Python object per page is kept outside the delta.

- The *base* holds the pages of the last build or compaction as numpy columns, sorted
  by id, so a page's ordinal is found by binary search, and pages with as many
  followers rank by id, as in the postgres backend. Strings (id, handle, display
  name) are UTF-8 blobs with offsets, sources a one-byte code. Followers, activity
  and the index tree are updated in place; the rest never changes, so a saved base is
  memory-mapped on load.
- The base keys (`PrefixTopK`) are the distinct normalized keys, sorted, each naming
  its pages. A page whose followers or activity change keeps its keys and ordinal.
- The *delta* holds pages added or renamed since the base, as `Page` records; a renamed
  base page is tombstoned there. Delta keys live in a small `PrefixTopK` rebuilt every
  `_RECENT_LIMIT` new keys, plus the unsorted recent keys, scanned by a compiled loop.
  When the delta holds more than `delta_limit` keys or pages, it is folded into a new
  base (`compact`).

Ranking: followers, capped at `MAX_SCORE`; among equal scores, base pages before delta
pages, then the lower ordinal (by id in the base, by arrival in the delta).

Snapshots on disk are written and read by `snapshots`; answers are rendered as JSON by
`rendering`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from hubbub.mentions import _kernels, snapshots
from hubbub.mentions.index import MAX_SCORE, PrefixTopK
from hubbub.mentions.pages import Page
from hubbub.mentions.rendering import json_parts, render_suggestions

__all__ = ["PageStore", "warm_up"]

_ACTIVE: Final = 1
_MOVED: Final = 2  # the page's record lives in the delta
_RECENT_LIMIT: Final = 512  # delta keys scanned unsorted (~3 us) before the delta index is rebuilt

_Array = npt.NDArray[Any]
_PAGE_COLUMNS: Final = (
    "ids",
    "id_off",
    "source",
    "handles",
    "handle_off",
    "names",
    "name_off",
    "has",
)
_MUTABLE: Final = ("followers", "state", "scores", "tree")  # changed in place, mapped copy-on-write
_HAS_HANDLE: Final = 1
_HAS_NAME: Final = 2


def _score(page: Page) -> int:
    return min(page.followers, MAX_SCORE) if page.suggestible else -1


class _Columns:
    """Pages being gathered as columns (bytearrays and typed arrays), in arrival order."""

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        self._codes = {source: code for code, source in enumerate(sources)}
        self.ids, self.handles, self.names, self.keys = (bytearray() for _ in range(4))
        self.id_len, self.handle_len, self.name_len, self.key_len = (array("q") for _ in range(4))
        self.source, self.has, self.active = array("B"), array("B"), array("B")
        self.followers = array("q")
        self.key_row = array("i")

    def add(self, page: Page) -> None:
        row = len(self.id_len)
        ident = page.id.encode()
        self.ids += ident
        self.id_len.append(len(ident))
        self.source.append(self._code(page.source))
        handle = b"" if page.handle is None else page.handle.encode()
        name = b"" if page.display_name is None else page.display_name.encode()
        self.handles += handle
        self.handle_len.append(len(handle))
        self.names += name
        self.name_len.append(len(name))
        has = (_HAS_HANDLE if page.handle is not None else 0) | (
            _HAS_NAME if page.display_name is not None else 0
        )
        self.has.append(has)
        self.followers.append(page.followers)
        self.active.append(_ACTIVE if page.active else 0)
        page_keys = page.keys()
        for key in page_keys:
            encoded = key.encode()
            self.keys += encoded
            self.key_len.append(len(encoded))
            self.key_row.append(row)

    def _code(self, source: str) -> int:
        code = self._codes.get(source)
        if code is None:
            if len(self.sources) > 255:
                raise ValueError("at most 256 distinct page sources")
            code = self._codes[source] = len(self.sources)
            self.sources.append(source)
        return code

    def arrays(self) -> dict[str, _Array]:
        """The columns as numpy arrays (the bytearrays are copied, then may be dropped)."""

        def blob(data: bytearray) -> _Array:
            return np.frombuffer(bytes(data), dtype=np.uint8)

        return {
            "ids": blob(self.ids),
            "id_off": _offsets(self.id_len),
            "source": np.frombuffer(self.source, dtype=np.uint8).copy(),
            "handles": blob(self.handles),
            "handle_off": _offsets(self.handle_len),
            "names": blob(self.names),
            "name_off": _offsets(self.name_len),
            "has": np.frombuffer(self.has, dtype=np.uint8).copy(),
            "followers": np.frombuffer(self.followers, dtype=np.int64).copy(),
            "state": np.frombuffer(self.active, dtype=np.uint8).copy(),
            "keys": blob(self.keys),
            "key_off": _offsets(self.key_len),
            "key_row": np.frombuffer(self.key_row, dtype=np.int32).copy(),
        }


def _offsets(lengths: array[int]) -> npt.NDArray[np.int64]:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    if len(lengths):
        np.cumsum(np.frombuffer(lengths, dtype=np.int64), out=offsets[1:])
    return offsets


def _strings(
    columns: dict[str, _Array], blob: str, off: str, rows: _Array
) -> tuple[_Array, _Array]:
    return _kernels.gather_strings(columns[blob], columns[off], rows)


def _concat(a: dict[str, _Array], b: dict[str, _Array]) -> dict[str, _Array]:
    """Columns of `a` then `b` (row and offset columns shifted)."""
    out = {name: np.concatenate([a[name], b[name]]) for name in a}
    for name in ("id_off", "handle_off", "name_off", "key_off"):
        out[name] = np.concatenate([a[name][:-1], b[name] + a[name][-1]])
    out["key_row"] = np.concatenate([a["key_row"], b["key_row"] + len(a["id_off"]) - 1]).astype(
        np.int32
    )
    return out


def _finish(raw: dict[str, _Array]) -> tuple[dict[str, _Array], npt.NDArray[np.int32], PrefixTopK]:
    """Base columns (sorted by id, the last of each id kept), scores and index."""
    rows = len(raw["id_off"]) - 1
    order = np.arange(rows, dtype=np.int64)
    _kernels.sort_keys(raw["ids"], raw["id_off"], order)
    order = order[_kernels.last_of_each(raw["ids"], raw["id_off"], order)]
    n = len(order)
    if n >= 1 << 31:
        raise ValueError("at most 2**31 - 1 pages")
    new_row = np.full(rows, -1, dtype=np.int64)
    new_row[order] = np.arange(n, dtype=np.int64)
    columns: dict[str, _Array] = {}
    for blob, off in (("ids", "id_off"), ("handles", "handle_off"), ("names", "name_off")):
        columns[blob], columns[off] = _strings(raw, blob, off, order)
    for name in ("source", "has", "followers", "state"):
        columns[name] = raw[name][order]
    key_page = new_row[raw["key_row"]]
    keys, key_off = raw["keys"], raw["key_off"]
    if (key_page < 0).any():
        kept = np.flatnonzero(key_page >= 0)
        keys, key_off = _kernels.gather_strings(keys, key_off, kept)
        key_page = key_page[kept]
    named = (np.diff(columns["handle_off"]) > 0) | (np.diff(columns["name_off"]) > 0)
    suggestible = named & (columns["state"] & _ACTIVE).astype(bool)
    scores = np.where(suggestible, np.minimum(columns["followers"], MAX_SCORE), -1)
    scores = scores.astype(np.int32)
    index = PrefixTopK.from_strings(keys, key_off, key_page.astype(np.int32), scores, n)
    return columns, scores, index


class PageStore:
    """Pages by id, and the k most followed suggestible pages having a key with a prefix.

    `get` returns a copy; `put` stores a page and brings the index in line: a change of
    followers or activity is applied in place, a change of handle or name moves the
    page to the delta (its old keys stop matching at once). Not thread-safe: one writer,
    and no reader while it writes.
    """

    def __init__(self, delta_limit: int = 100_000) -> None:
        """An empty store; `delta_limit` bounds the keys (and pages) kept outside the base."""
        self.delta_limit = delta_limit
        self._sources: list[str] = []
        self._set_base(*_finish(_Columns(self._sources).arrays()))

    @classmethod
    def build(cls, pages: Iterable[Page], *, delta_limit: int = 100_000) -> PageStore:
        """A store of `pages` (a later page with the same id replaces the earlier one).

        Pages are streamed into columns; no Python object is kept per page.
        """
        store = cls(delta_limit)
        columns = _Columns(store._sources)
        for page in pages:
            columns.add(page)
        raw = columns.arrays()
        del columns
        store._set_base(*_finish(raw))
        return store

    def _set_base(
        self, columns: dict[str, _Array], scores: npt.NDArray[np.int32], index: PrefixTopK
    ) -> None:
        self._columns = columns
        self._followers: npt.NDArray[np.int64] = columns["followers"]
        self._state: npt.NDArray[np.uint8] = columns["state"]
        self._scores = scores
        self._index = index
        self._base_live = int(np.count_nonzero((self._state & _MOVED) == 0))
        self._json_parts = (*json_parts(self._sources), len(self._sources))
        self._reset_delta()

    def _reset_delta(self) -> None:
        self._delta: dict[str, Page] = {}
        self._delta_ord: dict[str, int] = {}
        self._delta_ids: list[str] = []
        self._delta_keys: dict[int, list[bytes]] = {}
        self._delta_key_count = 0
        self._delta_scores = np.full(64, -1, dtype=np.int32)
        self._delta_index = PrefixTopK.build([], [], [])
        self._delta_index.scores = self._delta_scores
        self._recent_blob = np.empty(1024, dtype=np.uint8)
        self._recent_off = np.zeros(_RECENT_LIMIT + 1, dtype=np.int64)
        self._recent_page = np.empty(_RECENT_LIMIT, dtype=np.int32)
        self._recent_count = 0

    # --- reading ------------------------------------------------------------------

    def __len__(self) -> int:
        """Pages known, suggestible or not."""
        return self._base_live + len(self._delta)

    def __contains__(self, page_id: object) -> bool:
        return isinstance(page_id, str) and (page_id in self._delta or self._ordinal(page_id) >= 0)

    def __getitem__(self, page_id: str) -> Page:
        page = self.get(page_id)
        if page is None:
            raise KeyError(page_id)
        return page

    def get(self, page_id: str) -> Page | None:
        """A copy of the page, or None; changing it has no effect until `put`."""
        page = self._delta.get(page_id)
        if page is not None:
            return dataclasses.replace(page)
        ordinal = self._ordinal(page_id)
        return None if ordinal < 0 else self._base_page(ordinal)

    def _ordinal(self, page_id: str) -> int:
        """The page's base ordinal, or -1 if it is not in the base (or moved out of it)."""
        ordinal = self._find(page_id)
        return -1 if ordinal < 0 or self._state[ordinal] & _MOVED else ordinal

    def _find(self, page_id: str) -> int:
        key = np.frombuffer(page_id.encode(), dtype=np.uint8)
        return _kernels.find_id(self._columns["ids"], self._columns["id_off"], key)

    def _text(self, blob: str, off: str, ordinal: int) -> str:
        offsets = self._columns[off]
        return bytes(self._columns[blob][offsets[ordinal] : offsets[ordinal + 1]]).decode()

    def _base_page(self, ordinal: int) -> Page:
        has = int(self._columns["has"][ordinal])
        return Page(
            self._text("ids", "id_off", ordinal),
            self._sources[self._columns["source"][ordinal]],
            self._text("handles", "handle_off", ordinal) if has & _HAS_HANDLE else None,
            self._text("names", "name_off", ordinal) if has & _HAS_NAME else None,
            int(self._followers[ordinal]),
            bool(self._state[ordinal] & _ACTIVE),
        )

    def top_k(self, prefix: str, k: int = 10) -> list[tuple[str, int]]:
        """`(page_id, followers)` of the k most followed suggestible pages having a key
        that starts with `prefix` (already normalized); each page once."""
        if self._delta_key_count:
            return [(page.id, page.followers) for page in self.top_pages(prefix, k)]
        if k <= 0:
            return []
        ordinals = self._index.top_k_array(np.frombuffer(prefix.encode(), dtype=np.uint8), k)
        blob, offsets = _kernels.gather_strings(
            self._columns["ids"], self._columns["id_off"], ordinals
        )
        data, ends = blob.tobytes(), offsets.tolist()
        followers = self._followers[ordinals].tolist()
        return [(data[ends[i] : ends[i + 1]].decode(), followers[i]) for i in range(len(ends) - 1)]

    def top_pages(self, prefix: str, k: int = 10) -> list[Page]:
        """`top_k` as copies of the pages themselves, best first."""
        if k <= 0:
            return []
        encoded = np.frombuffer(prefix.encode(), dtype=np.uint8)
        base = self._base_pages(self._index.top_k_array(encoded, k))
        if not self._delta_key_count:
            return base
        ranked = [(min(page.followers, MAX_SCORE), 0, i) for i, page in enumerate(base)]
        delta = self._delta_top_k(encoded, k)
        ranked += [(int(self._delta_scores[o]), 1, o) for o in delta]
        ranked.sort(key=lambda hit: (-hit[0], hit[1]))  # stable: each part is best first
        return [
            base[i] if tier == 0 else dataclasses.replace(self._delta[self._delta_ids[i]])
            for _, tier, i in ranked[:k]
        ]

    def top_json(self, prefix: str, k: int = 10) -> bytes | None:
        """`top_pages` as the JSON array of suggestions the API answers, written by a
        compiled loop; None when the delta has pages for `prefix` (ask `top_pages`)."""
        encoded = np.frombuffer(prefix.encode(), dtype=np.uint8)
        if self._delta_key_count and len(self._delta_top_k(encoded, 1)):
            return None
        ordinals = self._index.top_k_array(encoded, k) if k > 0 else np.empty(0, np.int64)
        if self._json_parts[2] != len(self._sources):
            self._json_parts = (*json_parts(self._sources), len(self._sources))
        parts, part_off, _ = self._json_parts
        return render_suggestions(self._columns, self._followers, (parts, part_off), ordinals)

    def _base_pages(self, ordinals: npt.NDArray[np.int64]) -> list[Page]:
        """Base pages by ordinal, their strings gathered in one pass."""
        c = self._columns
        blob, offsets = _kernels.gather_texts(
            c["ids"], c["id_off"], c["handles"], c["handle_off"], c["names"], c["name_off"],
            ordinals,
        )  # fmt: skip
        data, ends = blob.tobytes(), offsets.tolist()
        sources, source_codes = self._sources, c["source"][ordinals].tolist()
        has = c["has"][ordinals].tolist()
        followers = self._followers[ordinals].tolist()
        active = (self._state[ordinals] & _ACTIVE).tolist()
        found = []
        for i in range(len(ordinals)):
            at = 3 * i
            found.append(
                Page(
                    data[ends[at] : ends[at + 1]].decode(),
                    sources[source_codes[i]],
                    data[ends[at + 1] : ends[at + 2]].decode() if has[i] & _HAS_HANDLE else None,
                    data[ends[at + 2] : ends[at + 3]].decode() if has[i] & _HAS_NAME else None,
                    followers[i],
                    bool(active[i]),
                )
            )
        return found

    def _delta_top_k(self, prefix: npt.NDArray[np.uint8], k: int) -> list[int]:
        """Delta ordinals of the best k delta pages matching `prefix`, best first."""
        low = _kernels.RANK_LOW
        ranks = [
            (int(self._delta_scores[o]) << 32) | (low - o)
            for o in self._delta_index.top_k_array(prefix, k).tolist()
        ]
        if self._recent_count:
            ranks += _kernels.scan_recent(
                self._recent_blob,
                self._recent_off,
                self._recent_page,
                self._recent_count,
                self._delta_scores,
                prefix,
                k,
            ).tolist()
        best = sorted(set(ranks), reverse=True)[:k]
        return [low - (rank & low) for rank in best]

    # --- writing ------------------------------------------------------------------

    def put(self, page: Page) -> None:
        """Insert or update the page; the index follows at once."""
        page = dataclasses.replace(page)
        ordinal = self._find(page.id)
        if ordinal >= 0 and not self._state[ordinal] & _MOVED:
            stored = self._base_page(ordinal)
            if (stored.source, stored.handle, stored.display_name) == (
                page.source,
                page.handle,
                page.display_name,
            ):
                self._rescore_base(ordinal, page)
                return
            self._state[ordinal] |= _MOVED
            self._scores[ordinal] = -1
            self._index.refresh(ordinal)
            self._base_live -= 1
        self._put_delta(page)
        if self._delta_key_count > self.delta_limit or len(self._delta) > self.delta_limit:
            self.compact()

    def _rescore_base(self, ordinal: int, page: Page) -> None:
        self._followers[ordinal] = page.followers
        self._state[ordinal] = _ACTIVE if page.active else 0
        score = _score(page)
        if self._scores[ordinal] != score:
            self._scores[ordinal] = score
            self._index.refresh(ordinal)

    def _put_delta(self, page: Page) -> None:
        old = self._delta.get(page.id)
        self._delta[page.id] = page
        ordinal = self._delta_ord.get(page.id)
        if old is not None and (old.handle, old.display_name) == (page.handle, page.display_name):
            if ordinal is not None:
                self._delta_scores[ordinal] = _score(page)
                self._delta_index.refresh(ordinal)
            return
        if ordinal is not None:
            del self._delta_ord[page.id]
            self._delta_scores[ordinal] = -1
            self._delta_index.refresh(ordinal)
            self._delta_key_count -= len(self._delta_keys.pop(ordinal))
        page_keys = page.keys()
        keys = [key.encode() for key in page_keys]
        if keys:
            self._add_delta_keys(page, keys)

    def _add_delta_keys(self, page: Page, keys: list[bytes]) -> None:
        ordinal = len(self._delta_ids)
        self._delta_ids.append(page.id)
        self._delta_ord[page.id] = ordinal
        self._delta_keys[ordinal] = keys
        self._delta_key_count += len(keys)
        if ordinal >= len(self._delta_scores):
            grown = np.full(2 * len(self._delta_scores), -1, dtype=np.int32)
            grown[: len(self._delta_scores)] = self._delta_scores
            self._delta_scores = self._delta_index.scores = grown
        self._delta_scores[ordinal] = _score(page)
        if self._recent_count + len(keys) > _RECENT_LIMIT:
            self._rebuild_delta_index()
            return
        for key in keys:
            self._append_recent(key, ordinal)

    def _append_recent(self, key: bytes, ordinal: int) -> None:
        i = self._recent_count
        start = int(self._recent_off[i])
        if start + len(key) > len(self._recent_blob):
            self._recent_blob = np.resize(self._recent_blob, 2 * (start + len(key)))
        self._recent_blob[start : start + len(key)] = np.frombuffer(key, dtype=np.uint8)
        self._recent_off[i + 1] = start + len(key)
        self._recent_page[i] = ordinal
        self._recent_count = i + 1

    def _rebuild_delta_index(self) -> None:
        keys = [key for ordinal in sorted(self._delta_keys) for key in self._delta_keys[ordinal]]
        pages = [o for o in sorted(self._delta_keys) for _ in self._delta_keys[o]]
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum([len(key) for key in keys], out=offsets[1:])
        self._delta_index = PrefixTopK.from_strings(
            np.frombuffer(b"".join(keys), dtype=np.uint8),
            offsets,
            np.array(pages, dtype=np.int32),
            self._delta_scores,
            len(self._delta_ids),
        )
        self._recent_count = 0

    @property
    def delta_size(self) -> int:
        """Keys held outside the base."""
        return self._delta_key_count

    def compact(self) -> None:
        """Fold the delta into a fresh base (ordinals change; answers do not)."""
        delta = _Columns(self._sources)
        for ordinal in sorted(self._delta_keys):
            delta.add(self._delta[self._delta_ids[ordinal]])
        for page_id, page in self._delta.items():
            if page_id not in self._delta_ord:
                delta.add(page)
        raw = _concat(self._surviving_columns(), delta.arrays())
        del delta
        self._set_base(*_finish(raw))

    def _surviving_columns(self) -> dict[str, _Array]:
        """The base pages not moved to the delta, as raw columns (see `_Columns.arrays`)."""
        c = self._columns
        rows = np.flatnonzero((self._state & _MOVED) == 0)
        raw: dict[str, _Array] = {}
        for blob, off in (("ids", "id_off"), ("handles", "handle_off"), ("names", "name_off")):
            raw[blob], raw[off] = _strings(c, blob, off, rows)
        for name in ("source", "has", "followers", "state"):
            raw[name] = np.asarray(c[name])[rows]
        index = self._index
        new_row = np.full(len(self._state), -1, dtype=np.int64)
        new_row[rows] = np.arange(len(rows))
        positions = np.flatnonzero(new_row[index.key_page] >= 0)
        keys = np.searchsorted(index.starts, positions, side="right") - 1
        raw["keys"], raw["key_off"] = _kernels.gather_strings(index.blob, index.offsets, keys)
        raw["key_row"] = new_row[index.key_page[positions]].astype(np.int32)
        return raw

    # --- saving -------------------------------------------------------------------

    def save(self, directory: Path, meta: dict[str, object]) -> None:
        """Write the store and `meta` (JSON-serializable) to `directory`, atomically.

        The snapshot is written to a sibling temporary directory, synced, then renamed
        over `directory`; a crash leaves the previous snapshot (see `load`).
        """
        delta = [self._delta[self._delta_ids[o]] for o in sorted(self._delta_keys)]
        delta += [p for i, p in self._delta.items() if i not in self._delta_ord]
        snapshots.write(
            directory,
            self._arrays(),
            meta=meta,
            sources=self._sources,
            delta=[dataclasses.astuple(page) for page in delta],
        )

    def _arrays(self) -> dict[str, _Array]:
        arrays = {name: self._columns[name] for name in (*_PAGE_COLUMNS, "followers", "state")}
        arrays["scores"] = self._scores
        arrays.update(self._index.arrays())
        return arrays

    @classmethod
    def load(cls, directory: Path) -> tuple[PageStore, dict[str, object]]:
        """The store saved in `directory`, and its meta.

        Arrays are memory-mapped: read-only for those never changed, copy-on-write for
        followers, activity and the index tree. Raises ValueError naming the file when
        the snapshot is missing, corrupt or of another format.
        """
        snapshot = snapshots.read(directory, mutable=_MUTABLE)
        manifest, arrays = snapshot.manifest, snapshot.arrays
        store = cls(int(manifest.get("delta_limit", 100_000)))
        store._sources = list(manifest["sources"])
        try:
            columns = {name: arrays[name] for name in (*_PAGE_COLUMNS, "followers", "state")}
            scores = arrays["scores"]
            index = PrefixTopK(
                {name: arrays[name] for name in PrefixTopK.__slots__ if name in arrays}, scores
            )
        except KeyError as error:
            raise ValueError(f"{snapshot.manifest_path}: no array {error}") from None
        store._set_base(columns, scores, index)
        for fields in manifest["delta"]:
            store._put_delta(Page(*fields))
        if store._delta_keys:
            store._rebuild_delta_index()
        return store, dict(manifest["meta"])

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays held (mapped or not), delta arrays included."""
        base = sum(values.nbytes for values in self._arrays().values())
        delta = self._delta_index.nbytes + self._delta_scores.nbytes + self._recent_blob.nbytes
        return base + delta + self._recent_off.nbytes + self._recent_page.nbytes


_warmed = False


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel, for built and loaded stores.

    The first call in a fresh environment takes about 20 s, later ones in a new process
    under a second, and again in the same process nothing; call it at start-up so the
    first query is not the one that pays.
    """
    global _warmed
    if _warmed:
        return
    pages = [Page(f"p{i}", "bluesky", f"h{i}", f"name {i}", i) for i in range(40)]
    store = PageStore.build(pages, delta_limit=10)

    def ask(store: PageStore) -> None:
        for prefix in ("h", "n", "zz"):
            store.top_k(prefix)
            store.top_pages(prefix)
            store.top_json(prefix)

    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):
            ask(store)
            store.put(Page("new", "bluesky", "hnew", None, 3))
            store.put(Page("p1", "bluesky", "h1", "name 1", 99))
            ask(store)
            store.save(Path(tmp) / "s", {})
            store, _ = PageStore.load(Path(tmp) / "s")
        store.compact()
        ask(store)
    _warmed = True
