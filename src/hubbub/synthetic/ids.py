"""Identifiers and timestamps of the synthetic stream: DIDs, TIDs (record keys and
commit revs), CID text, strong refs and RFC 3339 times.

The generator makes several of these per event, so most come from table lookups and
memos rather than from hashing or formatting; all depend only on their inputs.
"""

from __future__ import annotations

import binascii
import random
import time
from collections.abc import Callable
from typing import Final

_SORTABLE_BASE32: Final = "234567abcdefghijklmnopqrstuvwxyz"
_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"
_MASK30: Final = (1 << 30) - 1
_MASK40: Final = (1 << 40) - 1
_MEMO_LIMIT: Final = 4096
# Measured on the production sample: a commit's rev is ~0.57 s older than time_us, its
# rkey a little older still.
_REV_LAG_US: Final = 570_000
_RKEY_LAG_US: Final = 585_000


def strong_ref(cid: str, uri: str) -> str:
    """A com.atproto.repo.strongRef as JSON text, ready to splice into a line."""
    return f'{{"cid":"{cid}","uri":"{uri}"}}'


def _pairs(alphabet: str) -> tuple[str, ...]:
    """All 1024 two-character strings, indexed by the 10-bit value they encode."""
    return tuple(a + b for a in alphabet for b in alphabet)


TID_PAIRS: Final = _pairs(_SORTABLE_BASE32)


def mix30(n: int) -> int:
    """A bijection of [0, 2**30) that spreads every input bit over the whole output."""
    x = (n * 0x2C9277B5) & _MASK30
    x ^= x >> 15
    x = (x * 0x1B873593) & _MASK30
    return x ^ (x >> 13)


def _did_encoder() -> Callable[[int], str]:
    """Maps a page index below 2**40 to a unique, random-looking did:plc.

    The index goes through a bijection of 40 bits whose four 10-bit parts each pick a
    6-char chunk from a table of 1024 distinct random strings: as cheap as a few table
    lookups, and distinct indexes always give distinct dids.
    """
    rng = random.Random("did:plc")
    a, b, c, d = (_distinct_chunks(rng, 6) for _ in range(4))

    def did(index: int) -> str:
        x = ((index + 0x5A17F3D9C1) * 0xC6A4A7935BD1E995) & _MASK40
        x ^= x >> 21
        return f"did:plc:{a[x & 1023]}{b[(x >> 10) & 1023]}{c[(x >> 20) & 1023]}{d[x >> 30]}"

    return did


def _distinct_chunks(rng: random.Random, length: int) -> tuple[str, ...]:
    chunks: dict[str, None] = {}
    while len(chunks) < 1024:
        chunks["".join(rng.choices(_BASE32, k=length))] = None
    return tuple(chunks)


page_did: Final = _did_encoder()
"""The did of the page with a given index (independent of the seed)."""

_BASE64_TO_BASE32: Final = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", _BASE32.encode() * 2
)


def base32_text(data: bytes) -> str:
    """Lowercase base32-alphabet text from bytes, 4 chars per 3 bytes.

    Not RFC 4648 base32 (it drops one bit in six), but as random-looking, and it runs in
    C: binascii has no base32 in Python 3.11 and base64.b32encode is ~8x slower.
    """
    return binascii.b2a_base64(data, newline=False).translate(_BASE64_TO_BASE32).decode()


def page_clock_pair(index: int) -> str:
    """The last two TID chars (clock id) used by this page's PDS."""
    return TID_PAIRS[(index * 613 + 5) & 1023]  # inlined in the firehose's _engagement


def tid(micros: int, clock_pair: str) -> str:
    """A TID: 13 sortable-base32 chars of (microseconds << 10 | clock id).

    ``clock_pair`` is the last two chars, which encode the 10-bit clock id.
    """
    pairs = TID_PAIRS
    return (
        f"{_SORTABLE_BASE32[micros >> 50]}{pairs[(micros >> 40) & 1023]}"
        f"{pairs[(micros >> 30) & 1023]}{pairs[(micros >> 20) & 1023]}"
        f"{pairs[(micros >> 10) & 1023]}{pairs[micros & 1023]}{clock_pair}"
    )


def commit_tids_encoder() -> Callable[[int, str], tuple[str, str]]:
    """The (rev, rkey) TIDs of a commit relayed at ``now``, as measured on the sample.

    Consecutive events share a millisecond (micros >> 10), so its 9 chars are memoised.
    """
    millisecond_heads: dict[int, str] = {}
    pairs = TID_PAIRS

    def commit_tids(now: int, clock_pair: str) -> tuple[str, str]:
        rev_us, rkey_us = now - _REV_LAG_US, now - _RKEY_LAG_US
        rev_head = millisecond_heads.get(rev_us >> 10)
        rkey_head = millisecond_heads.get(rkey_us >> 10)
        if rev_head is None or rkey_head is None:
            if len(millisecond_heads) > _MEMO_LIMIT:
                millisecond_heads.clear()
            rev_head = millisecond_heads[rev_us >> 10] = tid(rev_us, "")[:9]
            rkey_head = millisecond_heads[rkey_us >> 10] = tid(rkey_us, "")[:9]
        return (
            f"{rev_head}{pairs[rev_us & 1023]}{clock_pair}",
            f"{rkey_head}{pairs[rkey_us & 1023]}{clock_pair}",
        )

    return commit_tids


_MILLISECONDS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))


def iso_formatter() -> Callable[[int], str]:
    """Formats epoch microseconds as an RFC 3339 UTC timestamp with milliseconds."""
    seconds_memo: dict[int, str] = {}
    milliseconds = _MILLISECONDS

    def iso(micros: int) -> str:
        seconds, fraction = divmod(micros, 1_000_000)
        prefix = seconds_memo.get(seconds)
        if prefix is None:
            if len(seconds_memo) > _MEMO_LIMIT:
                seconds_memo.clear()
            prefix = seconds_memo[seconds] = time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)
            )
        return f"{prefix}{milliseconds[fraction // 1000]}"

    return iso
