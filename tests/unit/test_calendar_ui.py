"""The calendar page's shape: which days a week or a month shows, where each post and slot
goes (at its wall-clock time, whatever DST does that week), the heat map's levels, and a
moved post's time as the channel's zone reads it."""

from __future__ import annotations

from datetime import date

import pytest

from hubbub.ui.calendar import (
    Grid,
    People,
    days_shown,
    filters_of,
    heat_levels,
    linking,
    moved_by,
    moved_message,
    shown_entry,
    wall_time_in,
)
from hubbub.ui.service import Problem


def entry(local: str, state: str = "scheduled", **more: object) -> dict[str, object]:
    return {"kind": "job", "id": local, "post": "p1", "channel": "c1", "account": "desk",
            "state": state, "local": local, "excerpt": "x", "author": "user:ed",
            **more}  # fmt: skip


def test_a_week_runs_monday_to_sunday_and_a_month_in_whole_weeks() -> None:
    assert days_shown("week", date(2026, 10, 25)) == (date(2026, 10, 19), date(2026, 10, 26))
    assert days_shown("month", date(2026, 10, 25)) == (date(2026, 9, 28), date(2026, 11, 2))
    assert days_shown("month", date(2027, 2, 10)) == (date(2027, 2, 1), date(2027, 3, 1))
    assert moved_by("week", date(2026, 10, 25), -1) == date(2026, 10, 18)
    assert moved_by("month", date(2026, 12, 25), 1) == date(2027, 1, 1)
    assert moved_by("month", date(2027, 1, 31), -1) == date(2026, 12, 1)


def test_posts_at_nine_sit_in_the_nine_oclock_row_on_both_sides_of_a_dst_change() -> None:
    before = shown_entry(entry("2026-10-23T09:00:00+02:00"))
    after = shown_entry(entry("2026-10-25T09:10:00+01:00"))
    slot = {"local": "2026-10-24T17:30:00+02:00", "taken": False, "account": "desk"}
    grid = Grid("week", date(2026, 10, 19), date(2026, 10, 26), [before, after], [slot], {})
    rows = grid.week_rows()
    assert len(rows) == 48
    assert len(grid.days) == 7
    nine = rows[18]
    assert nine["time"] == "09:00"
    shown = {cell["at"]: [e["time"] for e in cell["entries"]] for cell in nine["cells"]}
    assert shown["2026-10-23T09:00"] == ["09:00"]
    assert shown["2026-10-25T09:00"] == ["09:10"]
    assert [c["slots"] for c in rows[35]["cells"]][5] == [slot]
    month = Grid("month", *days_shown("month", date(2026, 10, 1)), [before], [], {})
    weeks = month.month_weeks(10)
    assert len(weeks) == 5
    assert all(len(week) == 7 for week in weeks)
    assert not weeks[0][0]["in_month"]
    friday = next(cell for week in weeks for cell in week if cell["day"] == date(2026, 10, 23))
    assert friday["entries"] == [before]


def test_only_scheduled_or_reviewed_posts_on_a_channel_move() -> None:
    assert shown_entry(entry("2026-10-23T09:00:00+02:00"))["movable"]
    assert shown_entry(entry("2026-10-23T09:00:00+02:00", "in_review"))["movable"]
    assert not shown_entry(entry("2026-10-23T09:00:00+02:00", "published"))["movable"]
    assert not shown_entry(entry("2026-10-23T09:00:00+02:00", kind="draft"))["movable"]
    removed = shown_entry(entry("2026-10-23T09:00:00+02:00", channel=None, account=None))
    assert (removed["movable"], removed["where"]) == (False, "a removed channel")


def test_the_heat_map_has_four_levels_from_the_best_slot() -> None:
    slots = [{"day": 0, "time": "09:00", "score": 4.0}, {"day": 0, "time": "09:30", "score": 1.0},
             {"day": 6, "time": "23:30", "score": 0.0}]  # fmt: skip
    assert heat_levels(slots) == {(0, 18): (4, 4.0), (0, 19): (1, 1.0), (6, 47): (0, 0.0)}
    assert heat_levels([{"day": 1, "time": "00:00", "score": 0.0}]) == {(1, 0): (0, 0.0)}


def test_a_moved_post_is_given_to_the_api_in_its_channels_zone() -> None:
    assert wall_time_in("2027-03-26T15:00", "Europe/Paris", "America/New_York") == (
        "2027-03-26T10:00"  # New York is already on summer time, Paris not yet
    )
    assert wall_time_in("2027-03-29T09:00", "Europe/Paris", "Europe/Paris") == "2027-03-29T09:00"
    assert moved_message({"version": 2, "review": None}, "2027-03-29T09:30") == (
        "Rescheduled to Mon 29 Mar 09:30."
    )
    again = moved_message({"version": 3, "review": {"state": "in_review"}}, "2027-03-29T09:30")
    assert again.endswith("Version 3 goes through approval again: In review.")


def test_filters_are_split_and_kept_in_the_links() -> None:
    filters = filters_of(["c1", ""], ["user:ed, user:bo"], ["scheduled", "bogus"], ["q4,launch"])
    assert filters == {"channel": ["c1"], "author": ["user:ed", "user:bo"],
                       "state": ["scheduled"], "tag": ["q4", "launch"]}  # fmt: skip
    link = linking(filters, "c1")
    assert link("month", date(2026, 10, 1)) == (
        "/calendar?view=month&day=2026-10-01&channel=c1&author=user%3Aed&author=user%3Abo"
        "&state=scheduled&tag=q4&tag=launch&heat=c1"
    )


def test_authors_are_named_by_their_email_or_as_you() -> None:
    names = People([{"id": "u1", "email": "ed@desk.example"}, {"id": "u2", "email": "bo@x"}], "u2")
    assert names.name_of("user:u1") == "ed@desk.example"
    assert names.name_of("user:u2") == "you"
    assert names.name_of("user:u9") == "user:u9"
    assert names.name_of("k_abc") == "k_abc"  # an API key, as the API names it
    assert [names.key_of(typed) for typed in ("ed@desk.example", "you", "k_abc")] == [
        "user:u1", "user:u2", "k_abc",
    ]  # fmt: skip
    assert shown_entry(entry("2026-10-23T09:00:00+02:00"), names)["by"] == "user:ed"


def test_a_post_dropped_on_a_time_the_clocks_skip_is_refused_saying_so() -> None:
    # 02:30 on the last Sunday of March does not happen in Paris: 02:00 becomes 03:00.
    with pytest.raises(Problem) as refused:
        wall_time_in("2026-03-29T02:30", "Europe/Paris", "Europe/Paris")
    assert refused.value.status == 422
    assert str(refused.value) == (
        "Sun 29 Mar 02:30 does not exist in Europe/Paris: the clocks go forward that night"
        " and skip it. Choose a time before or after."
    )
    assert wall_time_in("2026-03-29T03:00", "Europe/Paris", "Europe/Paris") == "2026-03-29T03:00"
    # The same wall-clock time in New York (which changed weeks before) is a real time.
    assert wall_time_in("2026-03-29T02:30", "America/New_York", "Europe/Paris") == (
        "2026-03-29T08:30"
    )
