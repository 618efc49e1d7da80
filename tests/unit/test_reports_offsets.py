"""Windows cut where a time zone's offset changes, against a minute-by-minute scan."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hubbub.analytics.service import offset_pieces


def scan(first: int, last: int, tz: ZoneInfo) -> list[tuple[int, int, int]]:
    pieces: list[tuple[int, int, int]] = []
    for minute in range(first, last):
        delta = datetime.fromtimestamp(minute * 60, UTC).astimezone(tz).utcoffset()
        offset = int(delta.total_seconds() // 60) if delta else 0
        if pieces and pieces[-1][2] == offset:
            pieces[-1] = (pieces[-1][0], minute + 1, offset)
        else:
            pieces.append((minute, minute + 1, offset))
    return pieces


def minute(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() // 60)


@pytest.mark.parametrize(
    "zone", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]
)
@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-03-27T00:00+00:00", "2026-04-07T13:07+00:00"),  # Europe and Lord Howe change
        ("2026-10-20T05:00+00:00", "2026-11-10T00:00+00:00"),  # autumn, in both hemispheres
        ("2026-06-01T00:00+00:00", "2026-06-01T00:01+00:00"),  # one minute
    ],
)
def test_pieces_match_a_minute_by_minute_scan(zone: str, start: str, end: str) -> None:
    tz = ZoneInfo(zone)
    assert offset_pieces(minute(start), minute(end), tz) == scan(minute(start), minute(end), tz)
