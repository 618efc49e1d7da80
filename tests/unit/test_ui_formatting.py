"""Numbers and times as each person reads them: their locale, their time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from hypothesis import given
from hypothesis import strategies as st

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


LOCALES = ("en", "en_IN", "fr_CH", "de", "ja", "ar", "hi", "zh_Hant", "ru", "fa", "th", "he")
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")


@given(
    st.lists(
        st.datetimes(
            min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from(ZONES),
    st.sampled_from(LOCALES),
)
def test_a_pages_moments_are_written_as_babel_writes_each_one(
    moments: list[datetime], zone: str, locale: str
) -> None:
    """One formatter for a whole page, which remembers days and times of day, writes
    every moment as Babel's own `format_datetime` does, across DST changes included."""
    page = formatting.Moments(zone, locale)
    for value in moments:
        expected = format_datetime(value.astimezone(ZoneInfo(zone)), "medium", locale=locale)
        assert page(value) == expected
