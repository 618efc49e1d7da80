"""Numbers and times as each person reads them: in their time zone, for their locale
(Babel, from the CLDR data)."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_decimal


@functools.lru_cache(maxsize=64)
def _locale(name: str) -> Locale:
    """A parsed locale, once per name: parsing it is most of a formatting call's cost."""
    return Locale.parse(name)


def number(value: float | int, locale: str) -> str:
    return format_decimal(value, locale=_locale(locale))


class Moments:
    """Dates and times in one zone and locale, written as Babel's `format_datetime` writes
    them ("medium"), for a page that shows many: a series of a year by day has 365 rows,
    by hour over a month 744, and Babel takes 25 to 40 µs a call. Rows share their days and
    their times of day, so each day's date and each time of day (with its UTC offset) is
    formatted once and the two are joined by the locale's own pattern, as Babel joins them.
    """

    def __init__(self, zone: str, locale: str) -> None:
        self._zone = ZoneInfo(zone)
        self._locale = _locale(locale)
        self._joined = str(get_datetime_format("medium", locale=self._locale)).replace("'", "")
        self._dates: dict[date, str] = {}
        self._times: dict[tuple[int, int, int, timedelta | None], str] = {}

    def __call__(self, value: datetime | str | None) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        local = value.astimezone(self._zone)
        day = local.date()
        written_day = self._dates.get(day)
        if written_day is None:
            written_day = self._dates[day] = format_date(day, "medium", locale=self._locale)
        at = (local.hour, local.minute, local.second, local.utcoffset())
        written_time = self._times.get(at)
        if written_time is None:
            written_time = self._times[at] = format_time(local, "medium", locale=self._locale)
        return self._joined.replace("{0}", written_time).replace("{1}", written_day)


def moment(value: datetime | str | None, zone: str, locale: str) -> str:
    """A date and time in `zone`, written the way `locale` writes them."""
    return Moments(zone, locale)(value)
