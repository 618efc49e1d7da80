"""Queue slots and recurring posts in each channel's wall-clock time, across DST."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.publishing.ports import Channel, Invalid, Limits
from hubbub.publishing.service import due_us
from hubbub.publishing.slots import (
    Recurrence,
    WeeklySlots,
    moment_us,
    next_free,
    occurrences,
    upcoming,
    wall_clock,
    zone_of,
)

WEEK_US = 7 * 86_400 * 1_000_000
ZONES = ("Europe/Paris", "America/New_York", "Australia/Lord_Howe", "UTC", "Pacific/Apia")


def at(zone: str, text: str) -> int:
    """The moment a local wall-clock time is, read as publishing reads it."""
    return moment_us(datetime.fromisoformat(text), zone_of(zone))


def local(zone: str, moment: int) -> str:
    return wall_clock(moment, zone_of(zone)).isoformat(timespec="minutes")


slot_sets = st.frozensets(
    st.tuples(st.integers(0, 6), st.integers(0, 24 * 60 - 1)), min_size=1, max_size=12
)
moments = st.integers(1_600_000_000_000_000, 2_000_000_000_000_000)


@given(slot_sets, st.sampled_from(ZONES), moments, st.lists(st.booleans(), max_size=20))
@settings(max_examples=200, deadline=None)
def test_the_next_free_slot_is_a_free_slot_after_the_moment(
    chosen: frozenset[tuple[int, int]], zone: str, after: int, take: list[bool]
) -> None:
    slots = WeeklySlots(zone, chosen)
    ahead = upcoming(slots, after, len(take))
    taken = {moment for moment, taken in zip(ahead, take, strict=False) if taken}
    found = next_free(slots, after, taken)
    assert found > after
    assert found not in taken
    wall = wall_clock(found, zone_of(zone))
    # a slot's wall-clock time, or one a DST change skipped (then the moment after it)
    candidates = {
        moment_us(datetime.combine(wall.date() - timedelta(days=back), datetime.min.time())
                  + timedelta(minutes=minute), zone_of(zone))
        for back in (0, 1)
        for day, minute in chosen
        if day == (wall.date() - timedelta(days=back)).weekday()
    }  # fmt: skip
    assert found in candidates
    # nothing free was passed over
    assert all(moment in taken for moment in upcoming(slots, after, 50) if moment < found)


@given(slot_sets, st.sampled_from(("Europe/Paris", "America/New_York", "UTC")), moments)
@settings(max_examples=100, deadline=None)
def test_slots_repeat_every_week_in_wall_clock_time(
    chosen: frozenset[tuple[int, int]], zone: str, after: int
) -> None:
    slots = WeeklySlots(zone, chosen)
    this_week = upcoming(slots, after, len(chosen))
    next_week = upcoming(slots, this_week[-1], len(chosen))
    shift = [
        wall_clock(later, zone_of(zone)) - wall_clock(earlier, zone_of(zone))
        for earlier, later in zip(this_week, next_week, strict=True)
    ]
    # a week later in wall-clock time, but for a slot a DST change skipped
    assert all(abs(delta - timedelta(days=7)) <= timedelta(hours=1) for delta in shift)
    assert len(set(this_week)) == len(this_week)
    assert this_week == sorted(this_week)


@given(slot_sets, st.sampled_from(ZONES))
def test_slots_are_written_back_as_they_read(chosen: frozenset[tuple[int, int]], zone: str) -> None:
    slots = WeeklySlots(zone, chosen)
    assert WeeklySlots.parse(str(slots), zone) == slots


def test_slots_read_ranges_lists_and_full_names() -> None:
    slots = WeeklySlots.parse("Mon-Fri 09:00, 13:30; saturday 10:00; fri-mon 7:05", "UTC")
    assert str(slots) == (
        "mon,fri 07:05,09:00,13:30; tue-thu 09:00,13:30; sat 07:05,10:00; sun 07:05"
    )


def test_nine_stays_nine_across_the_change_in_paris_and_new_york() -> None:
    for zone, before, after in (
        ("Europe/Paris", "2026-03-27", "2026-03-30"),
        ("America/New_York", "2026-03-06", "2026-03-09"),
        ("Europe/Paris", "2026-10-23", "2026-10-26"),
        ("America/New_York", "2026-10-30", "2026-11-02"),
    ):
        slots = WeeklySlots.parse("mon-fri 09:00", zone)
        found = next_free(slots, at(zone, f"{before}T10:00"), ())
        assert local(zone, found) == f"{after}T09:00"


def test_a_slot_skipped_by_spring_forward_is_an_hour_later() -> None:
    for zone, sunday in (("Europe/Paris", "2026-03-29"), ("America/New_York", "2026-03-08")):
        slots = WeeklySlots.parse("sun 02:30", zone)
        found = next_free(slots, at(zone, f"{sunday}T00:00"), ())
        assert local(zone, found) == f"{sunday}T03:30"
        assert found == at(zone, f"{sunday}T02:30")  # as a post scheduled at 02:30 is


def test_a_slot_repeated_by_fall_back_happens_once() -> None:
    for zone, sunday in (("Europe/Paris", "2026-10-25"), ("America/New_York", "2026-11-01")):
        slots = WeeklySlots.parse("sun 01:30; sun 02:30", zone) if zone == "Europe/Paris" else (
            WeeklySlots.parse("sun 01:30", zone)
        )  # fmt: skip
        repeated = "02:30" if zone == "Europe/Paris" else "01:30"
        found = upcoming(slots, at(zone, f"{sunday}T00:00"), 3)
        day = [moment for moment in found if local(zone, moment).startswith(sunday)]
        times = [local(zone, moment)[11:] for moment in day]
        assert times.count(repeated) == 1
        first = at(zone, f"{sunday}T{repeated}")
        assert first in day  # the first of the two
        assert first + 3_600_000_000 not in found


def test_taken_slots_are_skipped_and_a_skipped_slot_joins_the_next() -> None:
    zone = "Europe/Paris"
    slots = WeeklySlots.parse("sun 02:30,03:30", zone)
    after = at(zone, "2026-03-29T00:00")
    first = next_free(slots, after, ())
    assert local(zone, first) == "2026-03-29T03:30"  # 02:30 and 03:30 are one moment
    assert local(zone, next_free(slots, after, {first})) == "2026-04-05T02:30"


def test_queue_errors_say_where_and_what_was_expected() -> None:
    cases = {
        "": "no slots",
        "mon": "at column 4 (the end): expected a time of day",
        "mun 09:00": "at column 1: expected a day (mon, tue",
        "mon 24:00": "at column 5: expected a time of day from 00:00 to 23:59, found '24:00'",
        "mon 09:00 tue 10:00": "at column 11: expected ';' between entries",
        "mon 09:00,": "at column 11 (the end): expected a time of day such as 09:00 after ','",
        "mon-fri @": "at column 9: expected a time of day",
    }
    for text, message in cases.items():
        with pytest.raises(Invalid, match=message.replace("(", r"\(").replace(")", r"\)")):
            WeeklySlots.parse(text, "Europe/Paris")
    with pytest.raises(Invalid, match="unknown time zone 'Mars/Olympus'"):
        WeeklySlots.parse("mon 09:00", "Mars/Olympus")


def test_a_recurrence_keeps_nine_oclock_across_dst() -> None:
    rule = Recurrence.parse("RRULE:FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0")
    for zone in ("Europe/Paris", "America/New_York"):
        found = occurrences(rule, datetime(2026, 1, 5, 9), zone, at(zone, "2026-03-01T00:00"), 12)
        assert {local(zone, moment)[11:] for moment in found} == {"09:00"}
        assert len(found) == 12
        assert found == sorted(found)


def test_a_recurrence_follows_the_dst_policy_and_its_count() -> None:
    zone = "America/New_York"
    rule = Recurrence.parse("FREQ=DAILY;BYHOUR=1,2;BYMINUTE=30")
    start = datetime(2026, 1, 1, 1, 30)
    spring = occurrences(rule, start, zone, at(zone, "2026-03-07T12:00"), 4)
    assert [local(zone, m) for m in spring] == [
        "2026-03-08T01:30", "2026-03-08T03:30", "2026-03-09T01:30", "2026-03-09T02:30",
    ]  # fmt: skip
    autumn = occurrences(rule, start, zone, at(zone, "2026-10-31T12:00"), 4)
    assert autumn[0] == at(zone, "2026-11-01T01:30")  # the first 01:30, once
    assert autumn[0] + 3_600_000_000 not in autumn
    assert [local(zone, m) for m in autumn][:2] == ["2026-11-01T01:30", "2026-11-01T02:30"]
    ten = Recurrence.parse("FREQ=DAILY;BYHOUR=1,2;BYMINUTE=30;COUNT=10")
    found = occurrences(ten, start, zone, at(zone, "2026-01-03T00:00"), 100)
    assert [local(zone, m) for m in found][-1] == "2026-01-05T02:30"  # the 10th from Jan 1
    assert len(found) == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FREQ=MINUTELY", "FREQ=MINUTELY recurs more often than hourly"),
        ("FREQ=HOURLY;BYMINUTE=0,30", "BYMINUTE=0,30 puts several occurrences in one hour"),
        ("FREQ=DAILY;BYDAY=XX", "BYDAY=XX is not valid"),
        ("FREQ=WEEKLY;FOO=1", "'FOO=1' is not a part of an RRULE"),
        ("BYDAY=MO", "the rule has no FREQ"),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ given more than once"),
        ("FREQ=DAILY;COUNT=0", "COUNT=0 is not valid: a whole number of 1 or more"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20261231T090000", "COUNT and UNTIL together"),
        ("FREQ=DAILY;UNTIL=20261231T090000Z", "in UTC: write it as a wall-clock time"),
        ("DTSTART=20260101T090000;FREQ=DAILY", "DTSTART does not go in the rule"),
        ("FREQ=DAILY;BYHOUR", "BYHOUR has no value"),
        ("", "an empty rule"),
    ],
)
def test_rule_errors_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(Invalid, match=message.replace("(", r"\(")):
        Recurrence.parse(text)


def test_a_start_with_an_offset_is_refused() -> None:
    rule = Recurrence.parse("FREQ=DAILY")
    start = datetime.fromisoformat("2026-01-01T09:00+01:00")
    with pytest.raises(Invalid, match="wall-clock time, without an offset"):
        occurrences(rule, start, "Europe/Paris", 0, 1)


@given(
    st.datetimes(datetime(2020, 1, 1), datetime(2035, 1, 1)).map(
        lambda wall: wall.replace(second=0, microsecond=0)
    ),
    st.sampled_from(ZONES),
)
def test_a_wall_clock_time_is_the_moment_a_scheduled_post_is(wall: datetime, zone: str) -> None:
    channel = Channel(
        id="c", tenant="t", network="mastodon", account="a@b.example", service="https://b",
        time_zone=zone, limits=Limits(characters=500), sealed_credentials="",
    )  # fmt: skip
    assert moment_us(wall, zone_of(zone)) == due_us(wall.isoformat(), channel, 0)
