"""When queued and recurring posts fall due, in each channel's wall-clock time.

A channel's **queue** has weekly time slots in the channel's IANA zone (`WeeklySlots`,
written "mon-fri 09:00,13:30; sat 10:00"); a post added to the queue takes the first
free slot (`next_free`). A **recurring** post follows an RFC 5545 RRULE (`Recurrence`),
expanded by python-dateutil on naive wall-clock times (`occurrences`).

Both are wall-clock times: 9:00 stays 9:00 across daylight saving changes. They become
moments as `service.due_us` makes them, so a queued, a recurring and a scheduled post
agree: a wall-clock time that a DST change skips (02:30 on the night clocks go forward)
is the moment an hour later; one it repeats (01:30 on the night they go back) is its
first occurrence, so it happens once. Moments are UTC microseconds.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby, islice
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

from hubbub.publishing.ports import Invalid

SECOND_US: Final = 1_000_000
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MOST_AHEAD: Final = timedelta(hours=26)
"""More than any zone's offset ahead of UTC (+14:00) plus a skipped hour: no wall-clock
time of a later day is a moment before midnight of that day, read as UTC, less this."""


def zone_of(name: str) -> ZoneInfo:
    """The IANA zone `name`; `Invalid` naming it otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {name!r}: use one such as Europe/Paris") from None


def moment_us(wall: datetime, zone: ZoneInfo) -> int:
    """The moment of the naive wall-clock time `wall` in `zone`, as `service.due_us`
    reads it: fold 0, so a skipped time is an hour later and a repeated one the first."""
    return int(wall.replace(tzinfo=zone).timestamp() * SECOND_US)


def wall_clock(moment: int, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time in `zone` at `moment` (UTC microseconds)."""
    aware = datetime.fromtimestamp(moment // SECOND_US, UTC).astimezone(zone)
    return aware.replace(tzinfo=None)


# ---------------------------------------------------------------------------- queues

TOKEN: Final = re.compile(
    r"\s*(?:(?P<time>\d+:\d+)|(?P<word>[A-Za-z]+)|(?P<mark>[-,;])|(?P<bad>\S))"
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    column: int
    """1-based, where the token starts in the text."""


@dataclass(frozen=True)
class WeeklySlots:
    """Weekly time slots in one IANA zone: (weekday, minute of the day) pairs, weekday 0
    being Monday. `str()` writes them back in the form `parse` reads, days with the same
    times together."""

    zone: str
    slots: frozenset[tuple[int, int]]

    def __post_init__(self) -> None:
        zone_of(self.zone)
        if not self.slots:
            raise Invalid("a queue needs at least one slot, such as 'mon-fri 09:00'")
        for day, minute in self.slots:
            if not (0 <= day < 7 and 0 <= minute < 24 * 60):
                raise Invalid(f"({day}, {minute}) is not a weekday and a minute of the day")

    @classmethod
    def parse(cls, text: str, zone: str) -> WeeklySlots:
        """Slots from text such as "mon-fri 09:00,13:30; sat 10:00": entries apart by
        ";", each days (a day, or a range such as "fri-mon", apart by ",") then times of
        day (24-hour HH:MM, apart by ","). Days are their first three letters or full
        names, in any case. `Invalid` says at which column, what was expected, and
        what was found."""
        return cls(zone, frozenset(_Parser(text).schedule()))

    def __str__(self) -> str:
        times_of = {day: tuple(sorted(m for d, m in self.slots if d == day)) for day in range(7)}
        entries = []
        for times, days in groupby(
            sorted((times, day) for day, times in times_of.items() if times),
            key=lambda pair: pair[0],
        ):
            entries.append((_days_text([day for _, day in days]), times))
        entries.sort(key=lambda entry: DAYS.index(entry[0][:3]))
        return "; ".join(f"{days} {','.join(map(_time_text, times))}" for days, times in entries)


class _Parser:
    """Recursive descent over the tokens of `WeeklySlots.parse`'s grammar:
    schedule = entry (";" entry)* [";"]; entry = days ("," days)* time ("," time)*;
    days = DAY ["-" DAY]."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = [_token(match) for match in TOKEN.finditer(text)]
        self.at = 0

    def schedule(self) -> set[tuple[int, int]]:
        if not self.tokens:
            raise Invalid("no slots: write days and times, such as 'mon-fri 09:00; sat 10:00'")
        slots = self.entry()
        while self.take(";"):
            if self.peek() is None:
                break
            slots |= self.entry()
        if (extra := self.peek()) is not None:
            self.fail("';' between entries, or the end", extra)
        return slots

    def entry(self) -> set[tuple[int, int]]:
        days = self.days()
        while self.take(","):
            days |= self.days()
        minutes = {self.time(first=True)}
        while self.take(","):
            minutes.add(self.time(first=False))
        return {(day, minute) for day in days for minute in minutes}

    def days(self) -> set[int]:
        first = self.day()
        if not self.take("-"):
            return {first}
        last = self.day()
        return {(first + step) % 7 for step in range((last - first) % 7 + 1)}

    def day(self) -> int:
        token = self.next("a day (mon, tue, wed, thu, fri, sat, sun)")
        word = token.text.lower()
        if token.kind == "word" and word in DAYS:
            return DAYS.index(word)
        if token.kind == "word" and word in FULL_DAYS:
            return FULL_DAYS.index(word)
        return self.fail("a day (mon, tue, wed, thu, fri, sat, sun)", token)

    def time(self, first: bool) -> int:
        expected = "a time of day such as 09:00" + ("" if first else " after ','")
        token = self.next(expected)
        if token.kind != "time":
            if first and token.kind == "word":
                expected = "a time of day such as 09:00, or ',' before another day"
            return self.fail(expected, token)
        hours_text, minutes_text = token.text.split(":")
        hours, minutes = int(hours_text), int(minutes_text)
        if hours > 23 or minutes > 59 or len(hours_text) > 2 or len(minutes_text) != 2:
            return self.fail("a time of day from 00:00 to 23:59", token)
        return hours * 60 + minutes

    def peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, mark: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "mark" and token.text == mark:
            self.at += 1
            return True
        return False

    def next(self, expected: str) -> Token:
        token = self.peek()
        if token is None:
            raise Invalid(f"at column {len(self.text) + 1} (the end): expected {expected}")
        self.at += 1
        return token

    def fail(self, expected: str, found: Token) -> int:
        raise Invalid(f"at column {found.column}: expected {expected}, found {found.text!r}")


def _token(match: re.Match[str]) -> Token:
    kind = match.lastgroup or "bad"
    return Token(kind, match.group(kind), match.start(kind) + 1)


def _days_text(days: list[int]) -> str:
    """Days as runs: [0, 1, 2, 3, 4, 6] is "mon-fri,sun"."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        f"{DAYS[run[0]]}-{DAYS[run[-1]]}" if len(run) > 2 else ",".join(DAYS[d] for d in run)
        for run in runs
    )


def _time_text(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def slot_moments(slots: WeeklySlots, after_us: int) -> Iterator[int]:
    """Every slot's moment strictly after `after_us`, in order, each once (a slot that a
    DST change skips can fall on the moment of the next one: it is that moment).

    Days are expanded a week at a time; a moment is handed out only once no later day
    can bring an earlier one (`MOST_AHEAD`), so skipped hours never reorder the answer.
    """
    zone = zone_of(slots.zone)
    by_day = {day: sorted(m for d, m in slots.slots if d == day) for day in range(7)}
    day = wall_clock(after_us, zone).date() - timedelta(days=1)
    pending: list[int] = []
    last = after_us
    while True:
        for _ in range(7):
            for minute in by_day[day.weekday()]:
                moment = moment_us(_at(day, minute), zone)
                if moment > after_us:
                    heapq.heappush(pending, moment)
            day += timedelta(days=1)
        safe_before = _as_utc_us(datetime.combine(day, time()) - MOST_AHEAD)
        while pending and pending[0] < safe_before:
            moment = heapq.heappop(pending)
            if moment > last:
                last = moment
                yield moment


def next_free(slots: WeeklySlots, after_us: int, taken_us: Collection[int]) -> int:
    """The earliest slot moment strictly after `after_us` that is not in `taken_us` (the
    due times already in the channel's queue)."""
    taken = taken_us if isinstance(taken_us, (set, frozenset)) else set(taken_us)
    return next(moment for moment in slot_moments(slots, after_us) if moment not in taken)


def upcoming(
    slots: WeeklySlots, after_us: int, n: int, taken_us: Collection[int] = ()
) -> list[int]:
    """The next `n` slot moments strictly after `after_us` not in `taken_us`, to show."""
    taken = set(taken_us)
    free = (moment for moment in slot_moments(slots, after_us) if moment not in taken)
    return list(islice(free, max(0, n)))


def _at(day: date, minute: int) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60))


def _as_utc_us(naive: datetime) -> int:
    return int(naive.replace(tzinfo=UTC).timestamp() * SECOND_US)


# -------------------------------------------------------------------- recurring posts

RULE_PARTS: Final = (
    "FREQ", "UNTIL", "COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY",
    "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST",
)  # fmt: skip
"""The parts of an RFC 5545 recurrence rule (section 3.3.10)."""
FREQUENCIES: Final = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
"""Recurring more often than hourly (SECONDLY, MINUTELY) is refused."""
EXAMPLE_DAY: Final = datetime(2026, 1, 5, 9, 0)


@dataclass(frozen=True)
class Recurrence:
    """An RFC 5545 RRULE, as parts ("FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0"); its
    start (DTSTART) is given apart, as a wall-clock time in the channel's zone.

    Refused, with `Invalid` naming the part: an unknown or repeated part; a value
    dateutil does not read; a rule recurring more often than hourly (FREQ SECONDLY or
    MINUTELY, or several BYMINUTE or BYSECOND values, which put two occurrences in one
    hour); a DTSTART or TZID inside the rule; an UNTIL in UTC (`...Z`), since the start
    is a wall-clock time and RFC 5545 then wants UNTIL in wall-clock time too. A rule
    without COUNT or UNTIL is allowed: recurring posts often go on until stopped, and
    `occurrences` computes only as many as it is asked for.
    """

    rule: str
    """The parts, upper case, in the order given, without a leading "RRULE:"."""

    @classmethod
    def parse(cls, text: str) -> Recurrence:
        body = text.strip()
        if body.upper().startswith("RRULE:"):
            body = body[len("RRULE:") :]
        if not body:
            raise Invalid("an empty rule: write one such as FREQ=WEEKLY;BYDAY=MO;BYHOUR=9")
        parts = [_rule_part(part) for part in body.rstrip(";").split(";")]
        names = [name for name, _ in parts]
        if (repeated := {name for name in names if names.count(name) > 1}) != set():
            raise Invalid(f"{', '.join(sorted(repeated))} given more than once")
        if "FREQ" not in names:
            raise Invalid("the rule has no FREQ: start it with FREQ=DAILY, WEEKLY, ...")
        if "COUNT" in names and "UNTIL" in names:
            raise Invalid("COUNT and UNTIL together: RFC 5545 allows one of them")
        for name, value in parts:
            _check_part(name, value)
        return cls(";".join(f"{name}={value}" for name, value in parts))

    def __str__(self) -> str:
        return self.rule

    def expand(self, start_wall: datetime) -> rrule:
        """The rule from `start_wall` (naive), as dateutil's rrule of wall-clock times."""
        if start_wall.tzinfo is not None:
            raise Invalid("the start is a wall-clock time, without an offset or zone")
        expanded = rrulestr(self.rule, dtstart=start_wall.replace(microsecond=0))
        assert isinstance(expanded, rrule)  # a single RRULE, never a set
        return expanded


def _rule_part(part: str) -> tuple[str, str]:
    name, equals, value = part.strip().partition("=")
    name, value = name.strip().upper(), value.strip().upper()
    if name in ("DTSTART", "TZID") or name.startswith("DTSTART"):
        raise Invalid(f"{name} does not go in the rule: the start is given apart, as a"
                      " wall-clock time in the channel's zone")  # fmt: skip
    if name not in RULE_PARTS:
        raise Invalid(f"{part.strip()!r} is not a part of an RRULE: use {', '.join(RULE_PARTS)}")
    if not equals or not value:
        raise Invalid(f"{name} has no value: write {name}=...")
    return name, value


def _check_part(name: str, value: str) -> None:
    """A part that dateutil reads and that recurs at most hourly, else `Invalid`."""
    if name == "FREQ" and value not in FREQUENCIES:
        if value in ("SECONDLY", "MINUTELY"):
            raise Invalid(f"FREQ={value} recurs more often than hourly: use HOURLY at most")
        raise Invalid(f"FREQ={value} is not a frequency: use {', '.join(FREQUENCIES)}")
    if name in ("BYMINUTE", "BYSECOND") and "," in value:
        raise Invalid(f"{name}={value} puts several occurrences in one hour: name one value")
    if name in ("COUNT", "INTERVAL") and not (value.isdigit() and int(value) >= 1):
        raise Invalid(f"{name}={value} is not valid: a whole number of 1 or more")
    if name == "UNTIL" and value.endswith("Z"):
        raise Invalid(f"UNTIL={value} is in UTC: write it as a wall-clock time in the"
                      f" channel's zone, {value[:-1]}")  # fmt: skip
    frequency = "FREQ=DAILY" if name != "FREQ" else ""
    try:
        rrulestr(";".join(filter(None, (frequency, f"{name}={value}"))), dtstart=EXAMPLE_DAY)
    except (ValueError, KeyError, IndexError) as error:
        raise Invalid(f"{name}={value} is not valid: {error}") from None


def occurrences(
    rule: Recurrence, start_wall: datetime, zone: str, after_us: int, count: int
) -> list[int]:
    """The next `count` moments of `rule` strictly after `after_us`, the rule expanded
    from `start_wall` on wall-clock times in `zone` and each occurrence then read there
    as `service.due_us` reads a time (two occurrences that a skipped hour puts on one
    moment are one). Fewer when the rule ends (COUNT, UNTIL) before.

    dateutil counts `start_wall` as an occurrence only when it matches the rule (RFC 5545
    counts DTSTART always): give a start that the rule would choose.
    """
    where = zone_of(zone)
    expanded = rule.expand(start_wall)
    # Start a day early: a later wall-clock time can be an earlier moment near DST.
    since = wall_clock(after_us, where) - timedelta(days=1)
    found: list[int] = []
    for wall in expanded.xafter(since, inc=True):
        moment = moment_us(wall, where)
        if moment > after_us and (not found or moment > found[-1]):
            found.append(moment)
        if len(found) >= count:
            break
    return found
