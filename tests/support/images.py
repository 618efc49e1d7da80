"""Real image files for the tests, made on the spot: a network that reads an image's
bytes (a PDS sniffs what it stores) gets a well-formed one."""

from __future__ import annotations

import random
import struct
import zlib


def png(width: int = 2, height: int = 2, noise: bool = False, seed: int = 0) -> bytes:
    """A well-formed RGB PNG; `noise` makes it incompressible, so its size in bytes is
    about 3 * width * height."""
    pick = random.Random(seed)
    rows = b"".join(
        b"\x00" + (pick.randbytes(width * 3) if noise else b"\x20\x80\xc0" * width)
        for _ in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows))


def _chunk(kind: bytes, data: bytes) -> bytes:
    checksum = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)
