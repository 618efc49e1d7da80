"""Numbers and times as each person reads them: their locale, their time zone."""

from __future__ import annotations

from datetime import UTC, datetime

from hubbub.ui import formatting


def test_numbers_are_written_the_way_the_locale_writes_them() -> None:
    assert formatting.number(1234567, "en") == "1,234,567"
    assert formatting.number(1234567, "de") == "1.234.567"
    assert formatting.number(1234567.5, "fr") == "1\u202f234\u202f567,5"


def test_a_moment_is_shown_in_the_persons_zone_and_locale() -> None:
    winter = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    assert formatting.moment(winter, "Europe/Paris", "en") == "Dec 7, 2026, 12:30:00\u202fAM"
    assert formatting.moment(winter, "Europe/Paris", "de") == "07.12.2026, 00:30:00"
    assert formatting.moment("2026-07-01T12:00:00Z", "America/New_York", "en") == (
        "Jul 1, 2026, 8:00:00\u202fAM"
    )
    assert formatting.moment(None, "UTC", "en") == ""
