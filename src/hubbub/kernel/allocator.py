"""How a long-running role asks the C allocator (glibc's malloc) to give memory back.

Two glibc habits make a role's resident memory creep while what it holds stays the same:

- **The dynamic mmap threshold.** A block of at least 128 KiB is mapped on its own and
  unmapped when freed, but each time one is freed glibc raises the threshold to its size
  (up to 32 MiB), so later blocks that size come from the heap arenas instead, where a
  freed block is given back only if nothing above it is still in use. DuckDB's buffers
  (256 KiB) and a batch's large lists are such blocks.
- **Arenas per thread.** Each thread that allocates may get an arena of its own (up to
  eight per core), and each keeps its own free memory.

`pin_mmap_threshold` fixes the threshold (which also turns the raising off), and
`trim_every` hands the arenas' free pages back now and then (`malloc_trim`). On another
C library (musl, macOS) both do nothing. Settings `HUBBUB_ALLOCATOR_MMAP_THRESHOLD_KIB`
and `HUBBUB_ALLOCATOR_TRIM_INTERVAL_S` (0 turns either off).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
from typing import NoReturn

M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the mmap threshold (glibc's malloc.h)."""


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, if this process runs on it."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("mallopt", "malloc_trim", "gnu_get_libc_version")):
        return None
    return libc


def available() -> bool:
    """Whether this process runs on glibc, whose allocator the policy is for."""
    return _glibc() is not None


def pin_mmap_threshold(kib: int) -> bool:
    """Map every block of at least `kib` KiB on its own, for good (see the module
    docstring); whether the allocator took it. 0 leaves glibc's default."""
    libc = _glibc()
    if libc is None or kib <= 0:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, kib * 1024))


def trim() -> bool:
    """Give the allocator's free pages back to the system now; whether any were."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


async def trim_every(interval_s: float) -> NoReturn:
    """`trim` every `interval_s` seconds, in a thread (it walks every arena), until
    cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(trim)
