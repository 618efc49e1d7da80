"""Timestamp identifiers (TIDs), the record keys of AT Protocol repositories.

A TID is 64 bits written in 13 characters of base32-sortable (`234567abcdefghijklmnopqrstuvwxyz`):
the top bit 0, then 53 bits of microseconds since the Unix epoch, then a 10-bit clock
identifier (atproto's "Record Key" and "TID" specifications). Sorted as strings, TIDs
sort by time. A publish job's TID is chosen when the job is made and sent as the record
key, so the post can be looked for before it is sent again.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from typing import Final

ALPHABET: Final = "234567abcdefghijklmnopqrstuvwxyz"
PATTERN: Final = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_lock = threading.Lock()
_last = 0
_clock_id = secrets.randbelow(1024)


def tid(now_us: int | None = None) -> str:
    """A new TID, later than every other this process made (two in one microsecond get
    successive microseconds)."""
    global _last
    with _lock:
        micros = max(now_us if now_us is not None else time.time_ns() // 1000, _last + 1)
        _last = micros
    return encode((micros << 10) | _clock_id)


def encode(value: int) -> str:
    if not 0 <= value < 1 << 63:
        raise ValueError("a TID is a 63-bit number")
    return "".join(ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))
