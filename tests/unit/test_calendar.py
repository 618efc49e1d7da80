"""The content calendar's read model over publishing's own tables (SQLite, migrated as the
role migrates it): which posts show, where in the week, in whose zone; and the feed's
tokens and iCalendar body."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from cryptography.fernet import Fernet
from icalendar import Calendar as ICalendar

from hubbub.kernel.sealing import SecretBox
from hubbub.publishing.calendar import (
    Calendar,
    Filters,
    Span,
    TooMuch,
    excerpt,
)
from hubbub.publishing.calendar_api import FeedTokens, feed_body, page_view
from hubbub.publishing.ports import Invalid
from hubbub.publishing.sql import (
    MIGRATIONS,
    SqlJobStore,
    channels,
    decisions_table,
    drafts_table,
    jobs,
    latest_due,
    posts,
    reviews_table,
)
from tests.conftest import postgres_database
from tests.contract.test_tenant_stores import sqlalchemy_url

PARIS = ZoneInfo("Europe/Paris")
ED = "user:ed"


def us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def paris(*parts: int) -> int:
    return us(datetime(*parts, tzinfo=PARIS))  # type: ignore[misc]


class Tables:
    """Publishing's tables, written as the role writes them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def channel(self, tenant: str, account: str, zone: str = "Europe/Paris", **more: Any) -> str:
        made = secrets.token_hex(8)
        self._insert(channels, id=made, tenant=tenant, network="bluesky", account=account,
                     service="https://pds.example", time_zone=zone, limits={"characters": 300},
                     sealed_credentials="x", created_us=0, **more)  # fmt: skip
        return made

    def post(self, tenant: str, text: str, author: str = ED, tags: Any = None,
             version: int = 1, post: str | None = None) -> str:  # fmt: skip
        made = post or secrets.token_hex(8)
        self._insert(posts, id=made, version=version, tenant=tenant, author=author, text=text,
                     variants={}, visibility="public", created_us=0, tags=tags)  # fmt: skip
        return made

    def job(self, tenant: str, post: str, channel: str, due_us: int, state: str = "scheduled",
            version: int = 1, occurrence_us: int | None = None) -> str:  # fmt: skip
        """A job; unless told, its own occurrence (as a series' are), so that one post
        may have several on one channel."""
        made = secrets.token_hex(8)
        self._insert(jobs, id=made, tenant=tenant, post=post, version=version, channel=channel,
                     due_us=due_us, state=state, idempotency_key=secrets.token_hex(8),
                     check_first=False, attempts=0, updated_us=0,
                     occurrence_us=due_us if occurrence_us is None else occurrence_us)  # fmt: skip
        return made

    def review(self, tenant: str, post: str, channels_: list[str], due_us: int | None,
               state: str = "in_review", author: str = ED,
               users: tuple[str, ...] = (), **planned: Any) -> None:  # fmt: skip
        steps = [{"name": "Editor", "users": list(users), "roles": [], "mode": "any"}]
        plan = {"channels": channels_, "at": None, "queue": due_us is None, "repeat": None,
                **planned}  # fmt: skip
        self._insert(reviews_table, post=post, tenant=tenant, version=1, author=author,
                     workflows=["w"], steps=steps, step=0, state=state, plan=plan,
                     due_us=due_us, step_since_us=0, updated_us=0,
                     latest_due_us=latest_due(planned.get("dues") or {}, due_us))  # fmt: skip

    def draft(self, tenant: str, author: str, body: dict[str, Any]) -> str:
        made = secrets.token_hex(8)
        self._insert(drafts_table, tenant=tenant, author=author, id=made, body=body,
                     updated_us=0)  # fmt: skip
        return made

    def decided(self, tenant: str, post: str, who: str) -> None:
        row = {"tenant": tenant, "post": post, "version": 1, "step": 0, "who": who,
               "decision": "approved", "at_us": 0}  # fmt: skip
        if "role" in decisions_table.c:  # who decided, as which role
            row["role"] = "editor"
        self._insert(decisions_table, **row)

    def _insert(self, table: sa.Table, **row: Any) -> None:
        with self.engine.begin() as db:
            db.execute(table.insert().values(row))


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of either kind."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            yield f"sqlite:///{tmp_path / 'publishing.db'}"
        else:
            yield sqlalchemy_url(stack.enter_context(postgres_database("hubbub_calendar")))


@pytest.fixture
def tables(url: str) -> Iterator[Tables]:
    """Publishing's tables, migrated as the role migrates them, on either database."""
    SqlJobStore(url).close()
    engine = sa.create_engine(url)
    yield Tables(engine)
    engine.dispose()


def week(start: str, zone: str = "Europe/Paris", days: int = 7) -> Span:
    first = datetime.fromisoformat(start)
    return Span.parse(first.isoformat(), (first + timedelta(days=days)).isoformat(), zone)


def test_a_post_at_nine_in_paris_stays_at_nine_across_the_end_of_summer_time(
    tables: Tables,
) -> None:
    desk = tables.channel("t1", "desk.example")
    post = tables.post("t1", "Morning briefing")
    before = tables.job("t1", post, desk, paris(2026, 10, 23, 9, 0))  # CEST, UTC+2
    after = tables.job("t1", post, desk, paris(2026, 10, 27, 9, 0))  # CET, UTC+1
    page = Calendar(tables.engine).read("t1", ED, week("2026-10-19", days=14), Filters())
    shown = {entry["id"]: entry for entry in page_view(page)["entries"]}
    assert shown[before]["local"] == "2026-10-23T09:00:00+02:00"
    assert shown[before]["due"] == "2026-10-23T07:00:00+00:00"
    assert shown[after]["local"] == "2026-10-27T09:00:00+01:00"
    assert shown[after]["due"] == "2026-10-27T08:00:00+00:00"
    # Seen from New York (which changes a week later), the same moments, its own times.
    far = Calendar(tables.engine).read("t1", ED, week("2026-10-19", "America/New_York", 14),
                                       Filters())  # fmt: skip
    times = [entry["local"] for entry in page_view(far)["entries"]]
    assert times == ["2026-10-23T03:00:00-04:00", "2026-10-27T04:00:00-04:00"]


def test_the_week_of_the_change_has_seven_days_and_its_slots_at_their_wall_clock_time(
    tables: Tables,
) -> None:
    desk = tables.channel("t1", "desk.example", queue="mon-sun 09:00,17:30")
    post = tables.post("t1", "Queued")
    tables.job("t1", post, desk, paris(2026, 10, 26, 9, 0))
    span = week("2026-10-19T00:00")  # Monday to Monday, over Sunday the 25th's change
    assert span.end_us - span.start_us == 169 * 3600 * 1_000_000  # one hour longer
    view = page_view(Calendar(tables.engine).read("t1", ED, span, Filters()))
    assert (view["start"], view["end"]) == (
        "2026-10-19T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    )
    slots = view["channels"][0]["slots"]
    assert [slot["local"][11:16] for slot in slots] == ["09:00", "17:30"] * 7
    assert [slot["local"][:10] for slot in slots][::2] == [f"2026-10-{d}" for d in range(19, 26)]
    assert [slot["local"][19:] for slot in slots[-4:]] == ["+02:00"] * 2 + ["+01:00"] * 2
    assert not any(slot["taken"] for slot in slots)  # the job is the next Monday's
    now = paris(2026, 10, 22, 9, 0)  # a slot that has come is no longer one to fill
    later = Calendar(tables.engine).read("t1", ED, span, Filters(), now).channels[0].slots
    assert [moment for moment, _ in later][:2] == [paris(2026, 10, 22, 17, 30),
                                                   paris(2026, 10, 23, 9, 0)]  # fmt: skip
    following = page_view(Calendar(tables.engine).read("t1", ED, week("2026-10-26"), Filters()))
    assert following["channels"][0]["slots"][0] == {
        "due_us": paris(2026, 10, 26, 9, 0), "local": "2026-10-26T09:00:00+01:00", "taken": True,
    }  # fmt: skip


def test_each_kind_of_entry_shows_with_its_state_and_cancelled_jobs_do_not(
    tables: Tables,
) -> None:
    desk = tables.channel("t1", "desk.example")
    wire = tables.channel("t1", "wire.example", zone="America/New_York")
    post = tables.post("t1", "Line one\n\nline   two " + "x" * 200, tags=["launch"])
    states = ("scheduled", "claimed", "sending", "published", "missed", "failed", "unknown",
              "cancelled", "held")  # fmt: skip
    for hour, state in enumerate(states):
        tables.job("t1", post, desk, paris(2026, 10, 20, 8 + hour), state)
    waiting = tables.post("t1", "Waiting for Ann", author="user:bo")
    tables.review("t1", waiting, [desk, wire], paris(2026, 10, 21, 12, 0), "changes_requested",
                  author="user:bo")  # fmt: skip
    queued = tables.post("t1", "For the queue once approved")
    tables.review("t1", queued, [desk], None)  # no moment yet: no entry
    tables.draft("t1", ED, {"text": "A draft", "at": "2026-10-22T10:00", "channels": [desk, wire]})
    tables.draft("t1", ED, {"text": "No time yet", "channels": [desk]})
    tables.draft("t1", ED, {"text": "Typed nonsense", "at": "soonish", "channels": [desk]})
    tables.draft("t1", "user:bo", {"text": "Bo's", "at": "2026-10-22T10:00"})

    entries = Calendar(tables.engine).read("t1", ED, week("2026-10-19"), Filters()).entries
    assert [(e.kind, e.state) for e in entries] == [
        *[("job", s) for s in ("scheduled", "scheduled", "scheduled", "published", "missed",
                               "failed", "unknown", "held")],
        ("review", "changes_requested"), ("review", "changes_requested"),
        ("draft", "draft"), ("draft", "draft"),
    ]  # fmt: skip
    assert entries[0].excerpt.startswith("Line one line two xxx")
    assert len(entries[0].excerpt) == 140
    assert entries[0].excerpt.endswith("…")
    assert entries[0].tags == ("launch",)
    assert {(e.channel, e.author) for e in entries if e.kind == "review"} == {
        (desk, "user:bo"), (wire, "user:bo"),
    }  # fmt: skip
    drafts = {e.channel: e.due_us for e in entries if e.kind == "draft"}
    assert drafts == {  # 10:00 where each channel is, as scheduling would read it
        desk: paris(2026, 10, 22, 10, 0),
        wire: us(datetime(2026, 10, 22, 10, 0, tzinfo=ZoneInfo("America/New_York"))),
    }
    assert excerpt("short") == "short"


def test_a_post_under_review_shows_at_the_time_planned_on_each_channel(tables: Tables) -> None:
    paris_desk = tables.channel("t1", "desk.example")
    new_york = tables.channel("t1", "wire.example", zone="America/New_York")
    at_nine = tables.post("t1", "At nine, wherever")
    tables.review("t1", at_nine, [paris_desk, new_york], paris(2026, 10, 21, 9, 0),
                  at="2026-10-21T09:00")  # fmt: skip
    moved = tables.post("t1", "Moved on one channel")
    dues = {paris_desk: paris(2026, 10, 22, 9, 0), new_york: paris(2026, 10, 26, 23, 30)}
    tables.review("t1", moved, [paris_desk, new_york], paris(2026, 10, 22, 9, 0), dues=dues)
    entries = Calendar(tables.engine).read("t1", ED, week("2026-10-19"), Filters()).entries
    new_york_nine = us(datetime(2026, 10, 21, 9, 0, tzinfo=ZoneInfo("America/New_York")))
    assert [(e.excerpt, e.channel, e.due_us) for e in entries] == [
        ("At nine, wherever", paris_desk, paris(2026, 10, 21, 9, 0)),
        ("At nine, wherever", new_york, new_york_nine),
        ("Moved on one channel", paris_desk, paris(2026, 10, 22, 9, 0)),
    ]  # the move to the 26th is next week's
    following = Calendar(tables.engine).read("t1", ED, week("2026-10-26"), Filters()).entries
    assert [(e.excerpt, e.channel, e.due_us) for e in following] == [
        ("Moved on one channel", new_york, paris(2026, 10, 26, 23, 30)),
    ]  # shown in the week it moved to, though its other channel's time is days before


def test_a_post_under_review_moved_weeks_later_on_one_channel_shows_in_that_week(
    tables: Tables,
) -> None:
    desk = tables.channel("t1", "desk.example")
    wire = tables.channel("t1", "wire.example", zone="America/New_York")
    ann = "user:ann"
    moved = tables.post("t1", "Launch, moved on the wire", author="user:bo")
    dues = {desk: paris(2026, 10, 20, 9, 0), wire: paris(2026, 11, 17, 15, 0)}
    tables.review("t1", moved, [desk, wire], paris(2026, 10, 20, 9, 0), author="user:bo",
                  users=(ann,), dues=dues)  # fmt: skip
    calendar = Calendar(tables.engine)
    for first, channel, due in (("2026-10-19", desk, dues[desk]),
                                ("2026-11-16", wire, dues[wire])):  # fmt: skip
        entries = calendar.read("t1", ED, week(first), Filters()).entries
        assert [(e.state, e.channel, e.due_us) for e in entries] == [("in_review", channel, due)]
        followed = calendar.feed("t1", ann, week(first))[0]
        assert [(e.post, e.channel) for e in followed] == [(moved, channel)]
    assert calendar.read("t1", ED, week("2026-11-02"), Filters()).entries == []
    assert calendar.read("t1", ED, week("2026-10-12"), Filters()).entries == []


def test_a_review_moved_weeks_later_before_the_upgrade_still_shows_in_that_week(
    url: str,
) -> None:
    """Reviews written before their latest planned moment was kept get it from their
    plan as the tables are upgraded."""
    engine = sa.create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "p0006")
    tables = Tables(engine)
    desk = tables.channel("t1", "desk.example")
    wire = tables.channel("t1", "wire.example", zone="America/New_York")
    moved = tables.post("t1", "Launch, moved on the wire", author="user:bo")
    dues = {desk: paris(2026, 10, 20, 9, 0), wire: paris(2026, 11, 17, 15, 0)}
    at_ten = tables.post("t1", "At ten", author="user:bo")
    queued = tables.post("t1", "For the queue", author="user:bo")
    old = sa.Table("publishing_reviews", sa.MetaData(), autoload_with=engine)
    assert "latest_due_us" not in old.c
    with engine.begin() as db:
        for post, due_us, plan in (
            (moved, dues[desk], {"channels": [desk, wire], "dues": dues}),
            (at_ten, paris(2026, 11, 18, 10, 0), {"channels": [desk], "at": "2026-11-18T10:00"}),
            (queued, None, {"channels": [desk], "queue": True}),
        ):
            db.execute(old.insert().values(
                post=post, tenant="t1", version=1, author="user:bo", workflows=["w"],
                steps=[{"name": "Ann", "users": ["user:ann"], "roles": [], "mode": "any"}],
                step=0, state="in_review", plan=plan, due_us=due_us, step_since_us=0,
                updated_us=0,
            ))  # fmt: skip
    engine.dispose()
    SqlJobStore(url).close()  # the role starts: its tables move to the newest
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            said = db.execute(sa.select(reviews_table.c.post, reviews_table.c.latest_due_us))
            kept = {row.post: row.latest_due_us for row in said}
        assert kept == {moved: dues[wire], at_ten: paris(2026, 11, 18, 10, 0), queued: None}
        calendar = Calendar(engine)
        entries = calendar.read("t1", ED, week("2026-11-16"), Filters()).entries
        assert [(e.excerpt, e.channel, e.due_us) for e in entries] == [
            ("Launch, moved on the wire", wire, dues[wire]),
            ("At ten", desk, paris(2026, 11, 18, 10, 0)),
        ]
        followed = calendar.feed("t1", "user:ann", week("2026-11-16"))[0]
        assert [e.excerpt for e in followed] == ["Launch, moved on the wire", "At ten"]
    finally:
        engine.dispose()


def test_a_tenants_long_history_of_reviews_stays_out_of_the_week_and_the_feed(
    tables: Tables,
) -> None:
    desk = tables.channel("t1", "desk.example")
    for week_back in range(1, 30):  # months of reviews, decided or still open, long past
        old = tables.post("t1", f"Old {week_back}", author="user:bo")
        state = "approved" if week_back % 2 else "rejected"
        due = paris(2026, 10, 19, 9, 0) - week_back * 7 * 86_400_000_000
        tables.review("t1", old, [desk], due, state=state, author="user:bo", users=("user:ann",))
    approved = tables.post("t1", "Approved, moved into the week", author="user:bo")
    tables.review("t1", approved, [desk], paris(2026, 9, 1, 9, 0), state="approved",
                  author="user:bo", users=("user:ann",))  # fmt: skip
    tables.job("t1", approved, desk, paris(2026, 10, 21, 9, 0), occurrence_us=0)
    open_now = tables.post("t1", "Waiting for Ann", author="user:bo")
    tables.review("t1", open_now, [desk], paris(2026, 10, 22, 9, 0), author="user:bo",
                  users=("user:ann",))  # fmt: skip
    calendar = Calendar(tables.engine)
    entries = calendar.read("t1", ED, week("2026-10-19"), Filters()).entries
    assert [(e.excerpt, e.state) for e in entries] == [
        ("Approved, moved into the week", "scheduled"), ("Waiting for Ann", "in_review"),
    ]  # fmt: skip
    followed = calendar.feed("t1", "user:ann", week("2026-10-19"))[0]
    assert [(e.excerpt, e.state) for e in followed] == [
        ("Approved, moved into the week", "scheduled"), ("Waiting for Ann", "in_review"),
    ]  # fmt: skip


def test_filters_narrow_by_channel_author_state_and_tag(tables: Tables) -> None:
    desk, wire = tables.channel("t1", "desk.example"), tables.channel("t1", "wire.example")
    launch = tables.post("t1", "Launch", tags=["launch", "q4"])
    plain = tables.post("t1", "Plain", author="user:bo")  # tags NULL
    odd = tables.post("t1", "Odd tag", tags=['50%_"off"'])
    for post, channel, state in ((launch, desk, "scheduled"), (plain, wire, "published"),
                                 (odd, wire, "failed")):  # fmt: skip
        tables.job("t1", post, channel, paris(2026, 10, 20, 9, 0), state)
    calendar, span = Calendar(tables.engine), week("2026-10-19")

    def texts(**filters: list[str]) -> list[str]:
        chosen = Filters(**{name: frozenset(values) for name, values in filters.items()})
        return sorted(e.excerpt for e in calendar.read("t1", ED, span, chosen).entries)

    assert texts() == ["Launch", "Odd tag", "Plain"]
    assert texts(channels=[wire]) == ["Odd tag", "Plain"]
    assert texts(authors=["user:bo"]) == ["Plain"]
    assert texts(states=["published", "failed"]) == ["Odd tag", "Plain"]
    assert texts(tags=["q4"]) == ["Launch"]
    assert texts(tags=['50%_"off"']) == ["Odd tag"]
    assert texts(tags=["50%"]) == []  # a tag is matched whole
    assert texts(tags=["q4"], states=["failed"]) == []
    shown = calendar.read("t1", ED, span, Filters(channels=frozenset([wire]))).channels
    assert [c.account for c in shown] == ["wire.example"]
    with pytest.raises(Invalid, match="unknown state 'done'"):
        Filters(states=frozenset(["done"]))


def test_another_tenants_posts_reviews_drafts_and_channels_never_show(tables: Tables) -> None:
    mine = tables.channel("t1", "desk.example", queue="mon 09:00")
    theirs = tables.channel("t2", "rival.example", queue="mon 10:00")
    their_post = tables.post("t2", "Rival's plan")
    tables.job("t2", their_post, theirs, paris(2026, 10, 20, 9, 0))
    tables.review("t2", their_post, [theirs, mine], paris(2026, 10, 21, 9, 0))
    tables.draft("t2", ED, {"text": "Rival draft", "at": "2026-10-22T10:00", "channels": [mine]})
    # A job of t1's own pointing at t2's post id (never made so) shows nothing of t2's.
    tables.job("t1", their_post, mine, paris(2026, 10, 20, 10, 0))
    page = Calendar(tables.engine).read("t1", ED, week("2026-10-19"), Filters())
    assert page.entries == []
    assert [c.id for c in page.channels] == [mine]
    entries, found = Calendar(tables.engine).feed("t1", ED, week("2026-10-19"))
    assert (entries, list(found)) == ([], [mine])


def test_spans_and_zones_that_are_wrong_say_so() -> None:
    with pytest.raises(Invalid, match="unknown time zone 'Mars/Olympus'"):
        Span.parse("2026-10-19", "2026-10-26", "Mars/Olympus")
    with pytest.raises(Invalid, match="start: 'monday' is not a time"):
        Span.parse("monday", "2026-10-26", "UTC")
    with pytest.raises(Invalid, match="must come after the start"):
        Span.parse("2026-10-26", "2026-10-19", "UTC")
    with pytest.raises(Invalid, match="at most 62 days"):
        Span.parse("2026-10-01", "2027-01-01", "UTC")
    offset = Span.parse("2026-10-19T00:00+02:00", "2026-10-20T00:00Z", "Asia/Tokyo")
    assert offset.end_us - offset.start_us == 26 * 3600 * 1_000_000


def test_more_entries_than_answered_at_once_ask_for_a_narrower_span(tables: Tables) -> None:
    desk = tables.channel("t1", "desk.example")
    post = tables.post("t1", "Hourly")
    for hour in range(6):
        tables.job("t1", post, desk, paris(2026, 10, 20, 8 + hour))
    with pytest.raises(TooMuch, match="more than 5 entries in this span: narrow it"):
        Calendar(tables.engine, limit=5).read("t1", ED, week("2026-10-19"), Filters())
    assert len(Calendar(tables.engine, limit=6).read("t1", ED, week("2026-10-19"),
                                                     Filters()).entries) == 6  # fmt: skip
    busy = tables.channel("t1", "busy.example", queue="mon-sun 08:00,09:00,10:00")
    with pytest.raises(TooMuch, match="queue slots"):
        Calendar(tables.engine, limit=10).read(
            "t1", ED, week("2026-10-19"), Filters(channels=frozenset([busy]))
        )


def test_a_feed_holds_what_a_person_wrote_approves_or_decided_on(tables: Tables) -> None:
    desk = tables.channel("t1", "desk.example")
    written = tables.post("t1", 'Ed\'s post; with, "specials"\nand a line')
    tables.job("t1", written, desk, paris(2026, 10, 20, 9, 0), occurrence_us=0)
    to_approve = tables.post("t1", "Bo asks Ed", author="user:bo")
    tables.review("t1", to_approve, [desk], paris(2026, 10, 21, 9, 0), author="user:bo",
                  users=("ed",))  # fmt: skip
    approved = tables.post("t1", "Ed approved it", author="user:bo")
    tables.decided("t1", approved, ED)
    tables.job("t1", approved, desk, paris(2026, 10, 22, 9, 0), "published")
    elsewhere = tables.post("t1", "Nothing to do with Ed", author="user:bo")
    tables.job("t1", elsewhere, desk, paris(2026, 10, 23, 9, 0))

    by_role = tables.post("t1", "Any admin may approve", author="user:bo")
    tables.review("t1", by_role, [desk], paris(2026, 10, 24, 9, 0), author="user:bo")
    with tables.engine.begin() as db:  # a step that names a role, not people
        steps = [{"name": "Admins", "users": [], "roles": ["admin"], "mode": "any"}]
        db.execute(
            reviews_table.update().where(reviews_table.c.post == by_role).values(steps=steps)
        )
    as_admin = Calendar(tables.engine).feed("t1", ED, week("2026-10-19"), "admin")[0]
    assert [e.post for e in as_admin] == [written, to_approve, approved, by_role]
    entries, found = Calendar(tables.engine).feed("t1", ED, week("2026-10-19"), "editor")
    assert [e.post for e in entries] == [written, to_approve, approved]
    bo_as_admin = Calendar(tables.engine).feed("t1", "user:bo", week("2026-10-19"), "admin")[0]
    assert by_role in [e.post for e in bo_as_admin]  # bo wrote it: there as its author
    now = paris(2026, 10, 19, 0, 0)
    body = feed_body(entries, found, now)
    parsed = ICalendar.from_ical(body)
    events = list(parsed.walk("VEVENT"))
    assert [str(e["summary"]) for e in events] == [
        'scheduled: Ed\'s post; with, "specials" and a line',
        "in review: Bo asks Ed",
        "published: Ed approved it",
    ]
    assert b'SUMMARY:scheduled: Ed\'s post\\; with\\, "specials" and a line' in body
    assert events[0]["dtstart"].dt == datetime(2026, 10, 20, 7, 0, tzinfo=UTC)
    again = feed_body(Calendar(tables.engine).feed("t1", ED, week("2026-10-19"))[0], found, now)
    assert [str(e["uid"]) for e in ICalendar.from_ical(again).walk("VEVENT")] == [
        str(e["uid"]) for e in events
    ]
    assert len({str(e["uid"]) for e in events}) == 3
    # Moved: a new version, its job due later, the old one cancelled: the same event.
    with tables.engine.begin() as db:
        db.execute(jobs.update().where(jobs.c.post == written).values(state="cancelled"))
    tables.post("t1", "Ed's post, moved", version=2, post=written)
    tables.job("t1", written, desk, paris(2026, 10, 20, 11, 0), version=2, occurrence_us=0)
    moved = ICalendar.from_ical(
        feed_body(Calendar(tables.engine).feed("t1", ED, week("2026-10-19"))[0], found, now)
    )
    first = next(e for e in moved.walk("VEVENT") if str(e["uid"]) == str(events[0]["uid"]))
    assert (str(first["summary"]), first["dtstart"].dt.hour) == ("scheduled: Ed's post, moved", 9)


def test_a_feed_token_opens_only_as_made_and_in_its_time() -> None:
    box = SecretBox(Fernet.generate_key())
    tokens = FeedTokens(box)
    now = us(datetime(2026, 10, 19, tzinfo=UTC))
    token = tokens.make("t1", ED, "editor", now)
    assert tokens.read(token, now) == ("t1", ED, "editor")
    assert tokens.read(token, now + 364 * 86_400 * 1_000_000) == ("t1", ED, "editor")
    assert tokens.read(token, now + 366 * 86_400 * 1_000_000) is None  # expired
    assert tokens.read(token[:-6] + "AAAAAA", now) is None  # tampered
    assert tokens.read("not-a-token", now) is None
    assert FeedTokens(SecretBox(Fernet.generate_key())).read(token, now) is None  # other key
    forged = box.seal('{"tenant": "t1", "person": "user:ed"}').removeprefix("sealed:v1:")
    assert tokens.read(forged, now) is None  # no end: not one made here
