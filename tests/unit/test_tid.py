"""Record keys of publish jobs: atproto TIDs, which sort by time."""

from __future__ import annotations

import pytest

from hubbub.publishing.tid import PATTERN, encode, tid


def test_tids_are_13_sortable_characters_in_time_order() -> None:
    keys = [tid() for _ in range(1000)]
    assert all(PATTERN.match(key) for key in keys)
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)  # one microsecond apart at least


def test_a_tid_is_its_microseconds_then_its_clock_id() -> None:
    assert encode(0) == "2222222222222"
    assert encode(1023) == "22222222222zz"
    assert encode(((1 << 53) - 1) << 10 | 1023) == "bzzzzzzzzzzzz"
    assert encode(1023) < encode(1 << 10)  # time first, then the clock
    with pytest.raises(ValueError, match="63-bit"):
        encode(1 << 63)
    assert tid(now_us=1_800_000_000_000_000) < tid()  # later in time, later in order
