"""The allocator policy gives freed memory back (`hubbub.kernel.allocator`), on glibc.

Each case runs in a process of its own, since the policy is the process's: it frees
4 MiB (which raises glibc's mmap threshold), then makes 800 blocks of 256 KiB, each with
a small block above it still in use, and frees the large ones. Untouched, glibc kept the
200 MB resident (19 → 221 → 221 MB on the development machine); pinned or trimmed, it
gave them back (224 → 21, 221 → 24)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hubbub.kernel import allocator

PROBE = """
import sys
from hubbub.kernel import allocator

def rss_mb():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) // 1024

mode = sys.argv[1]
if mode == "pin":
    assert allocator.pin_mmap_threshold(128)
big = bytearray(4 << 20)
del big
blocks, kept = [], []
for _ in range(800):
    blocks.append(bytearray(256 << 10))
    kept.append(bytes(2048))
held = rss_mb()
del blocks
if mode == "trim":
    allocator.trim()
print(held, rss_mb())
"""

pytestmark = pytest.mark.skipif(
    not allocator.available(), reason="the allocator policy is for glibc; this is not glibc"
)


def _held_then_left(mode: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout
    held, left = (int(n) for n in out.split())
    return held, left


@pytest.mark.parametrize("mode", ["pin", "trim"])
def test_freed_blocks_leave_the_process(mode: str) -> None:
    held, left = _held_then_left(mode)
    assert held - left >= 180, f"{mode}: {held} MB while held, {left} MB once freed"


def test_nothing_is_pinned_when_asked_for_zero() -> None:
    assert allocator.pin_mmap_threshold(0) is False
