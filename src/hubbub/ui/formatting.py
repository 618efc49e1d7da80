"""Numbers and times as each person reads them: in their time zone, for their locale
(Babel, from the CLDR data)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_decimal


@functools.lru_cache(maxsize=64)
def _locale(name: str) -> Locale:
    """A parsed locale, once per name: parsing it is most of a formatting call's cost."""
    return Locale.parse(name)


def number(value: float | int, locale: str) -> str:
    return format_decimal(value, locale=_locale(locale))


def moment(value: datetime | str | None, zone: str, locale: str) -> str:
    """A date and time in `zone`, written the way `locale` writes them."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value.astimezone(ZoneInfo(zone)), "medium", locale=_locale(locale))
