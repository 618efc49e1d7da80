"""Page store snapshots on disk: one .npy file per array and a JSON manifest.

A snapshot is written to a sibling temporary directory, synced, then renamed over the
previous one; a crash leaves the previous snapshot, which `read` finds again. Large
arrays are memory-mapped when read: read-only, or copy-on-write for those the store
changes in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import mmap
import os
import shutil
import tempfile
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["FORMAT", "Snapshot", "read", "write"]

FORMAT: Final = "hubbub-pagestore-2"
_MMAP_BYTES: Final = 1 << 20  # smaller arrays are read into memory
_MANIFEST: Final = "manifest.json"

_Array = npt.NDArray[Any]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A snapshot as read: where its manifest is, the manifest, and the arrays by name."""

    manifest_path: Path
    manifest: dict[str, Any]
    arrays: dict[str, _Array]


def write(
    directory: Path,
    arrays: dict[str, _Array],
    *,
    meta: dict[str, object],
    sources: list[str],
    delta: list[tuple[object, ...]],
) -> None:
    """Write `arrays` and the manifest (meta, sources, delta pages) to `directory`, atomically."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-", dir=directory.parent))
    try:
        manifest: dict[str, object] = {
            "format": FORMAT,
            "meta": meta,
            "sources": sources,
            "shapes": {name: [str(v.dtype), len(v)] for name, v in arrays.items()},
            "delta": delta,
        }
        _write(partial, arrays, manifest)
        _fsync(partial)
        _replace_directory(partial, directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _write(partial: Path, arrays: dict[str, _Array], manifest: dict[str, object]) -> None:
    for name, values in arrays.items():
        with (partial / f"{name}.npy").open("wb") as file:
            np.save(file, values)
            file.flush()
            os.fsync(file.fileno())
    with (partial / _MANIFEST).open("w") as file:
        json.dump(manifest, file)
        file.flush()
        os.fsync(file.fileno())


def read(directory: Path, *, mutable: Collection[str]) -> Snapshot:
    """The snapshot saved in `directory`, arrays named in `mutable` mapped copy-on-write.

    Raises ValueError naming the file when the snapshot is missing, corrupt or of
    another format.
    """
    directory = _existing_snapshot(Path(directory))
    manifest = _read_manifest(directory / _MANIFEST)
    shapes = manifest["shapes"]
    arrays = {
        name: _load_array(directory, name, shapes.get(name), name in mutable) for name in shapes
    }
    return Snapshot(directory / _MANIFEST, manifest, arrays)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the page store manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} snapshot")
    return manifest


def _load_array(directory: Path, name: str, shape: object, mutable: bool) -> _Array:
    path = directory / f"{name}.npy"
    try:
        if path.stat().st_size > _MMAP_BYTES:
            values = _map(path, mutable)
        else:
            values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot load ({error})") from None
    if not isinstance(shape, list) or [str(values.dtype), len(values)] != shape:
        raise ValueError(
            f"{path}: expected dtype and length {shape}, found {values.dtype}, {len(values)}"
        )
    if not mutable:
        values.flags.writeable = False  # the same array type whether mapped or read
    return values


def _map(path: Path, mutable: bool) -> _Array:
    """The array of an .npy file, memory-mapped: copy-on-write if `mutable`, else read-only.

    Queries read these arrays at scattered places, a few bytes each, so the kernel is
    told not to read ahead (MADV_RANDOM): otherwise every touch would bring in the
    pages around it too, and a replica's memory would grow to the whole snapshot.
    """
    with path.open("rb") as file:
        version = np.lib.format.read_magic(file)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"an .npy file of version {version}")
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(file)
        offset = file.tell()
        if fortran or len(shape) != 1:
            raise ValueError("not a one-dimensional array")
        access = mmap.ACCESS_COPY if mutable else mmap.ACCESS_READ
        mapped = mmap.mmap(file.fileno(), 0, access=access)
    mapped.madvise(mmap.MADV_RANDOM)
    return np.frombuffer(mapped, dtype=dtype, count=shape[0], offset=offset)


def _fsync(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_directory(partial: Path, directory: Path) -> None:
    """Rename `partial` to `directory`; an old one is renamed aside first, then removed."""
    old = directory.with_name(f".{directory.name}.old-{uuid.uuid4().hex}")
    if directory.exists():
        directory.rename(old)
    partial.rename(directory)
    _fsync(directory.parent)
    shutil.rmtree(old, ignore_errors=True)


def _existing_snapshot(directory: Path) -> Path:
    """`directory`, or the snapshot set aside by a save that crashed before replacing it."""
    if (directory / _MANIFEST).exists():
        return directory
    with contextlib.suppress(OSError):
        for aside in sorted(directory.parent.glob(f".{directory.name}.old-*")):
            if (aside / _MANIFEST).exists():
                return aside
    raise ValueError(f"{directory / _MANIFEST}: no page store snapshot")
