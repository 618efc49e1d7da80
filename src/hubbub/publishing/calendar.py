"""The content calendar: what a tenant publishes, has published, or means to publish in a
span of time, read from publishing's own tables (a read model: plain queries, no state).

An **entry** is one post on one channel at one moment:

- a publish job (`scheduled`, which covers claimed and being sent, `held` while its
  channel's queue is paused, `published`, `missed`, `failed`, `unknown`; a cancelled job
  is no entry), with its post's excerpt, author and tags;
- a post waiting for approval (`in_review`, `changes_requested`, `rejected`): one entry
  per channel its plan names, at the moment planned there (a post planned for the queue
  has none yet, and is no entry);
- one of the caller's drafts that names a time (`draft`): its wall-clock time read in each
  channel's zone, as scheduling it would read it.

Moments are UTC microseconds; each entry is also given as a wall-clock time in the
caller's zone, so 09:00 in Paris is 09:00 whether that day is in summer time or not. A
**channel** comes with its queue's slots to come in the span (its weekly slots expanded in
its own zone, `publishing.slots`), each marked taken when an open job of the channel is due then,
and whether its queue is paused.

Everything read is the tenant's: each query names it, and another tenant's channel, post,
review or draft is never read. The span is at most `MAX_DAYS` long, and a span holding more
than `limit` entries (or queue slots) is refused with `TooMuch`, asking for a narrower one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from hubbub.publishing.ports import Invalid
from hubbub.publishing.slots import WeeklySlots, slot_moments, zone_of
from hubbub.publishing.sql import (
    channels,
    decisions_table,
    drafts_table,
    jobs,
    posts,
    reviews_table,
)

MAX_DAYS: Final = 62
"""The longest span asked at once: two months, the longest a month view shows."""
MAX_ENTRIES: Final = 2000
"""The most entries (and, apart, queue slots) answered for one span."""
EXCERPT: Final = 140
"""Characters of a post's text an entry shows."""
SECOND_US: Final = 1_000_000
DAY_US: Final = 86_400 * SECOND_US
REVIEW_STATES: Final = ("in_review", "changes_requested", "rejected")
"""A review in these states holds its post back; an approved one has made its jobs."""
JOB_STATES: Final = {
    "scheduled": "scheduled", "claimed": "scheduled", "sending": "scheduled",
    "published": "published", "missed": "missed", "failed": "failed", "unknown": "unknown",
    "held": "held",
}  # fmt: skip
"""A job's state as the calendar names it; a cancelled job is left out."""
STATES: Final = (
    "scheduled", "held", "published", "missed", "failed", "unknown", *REVIEW_STATES, "draft",
)  # fmt: skip
"""Every state an entry may have, the values the `state` filter takes."""


class TooMuch(ValueError):
    """More entries or slots in the span than are answered at once; the message asks for a
    narrower span."""


@dataclass(frozen=True)
class Span:
    """[start_us, end_us), asked in `zone` (the caller's: where entries' wall-clock times
    are given)."""

    start_us: int
    end_us: int
    zone: str

    @classmethod
    def parse(cls, start: str, end: str, zone: str) -> Span:
        """A span from ISO 8601 times (with an offset, or a wall-clock time read in `zone`);
        `Invalid` naming what is wrong: a time that is none, an unknown zone, an end not
        after the start, or a span longer than `MAX_DAYS`."""
        where = zone_of(zone)
        span = cls(_moment(start, where, "start"), _moment(end, where, "end"), zone)
        if span.end_us <= span.start_us:
            raise Invalid(f"the end ({end}) must come after the start ({start})")
        if span.end_us - span.start_us > MAX_DAYS * 86_400 * SECOND_US:
            raise Invalid(f"a span is at most {MAX_DAYS} days: ask for a shorter one")
        return span

    def holds(self, moment_us: int) -> bool:
        return self.start_us <= moment_us < self.end_us


@dataclass(frozen=True)
class Filters:
    """What the caller narrows the calendar to; an empty set lets everything through."""

    channels: frozenset[str] = frozenset()
    authors: frozenset[str] = frozenset()
    states: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if unknown := sorted(self.states - set(STATES)):
            raise Invalid(f"unknown state {unknown[0]!r}: use {', '.join(STATES)}")

    def lets(self, state: str, channel: str | None, author: str, tags: Sequence[str]) -> bool:
        return (
            (not self.states or state in self.states)
            and (not self.channels or channel in self.channels)
            and (not self.authors or author in self.authors)
            and (not self.tags or bool(self.tags.intersection(tags)))
        )


@dataclass(frozen=True)
class Entry:
    """One post on one channel at one moment (see the module's docstring)."""

    kind: str
    """`job`, `review` or `draft`."""
    id: str
    """The job's id, the post's (a review), or the draft's."""
    post: str | None
    version: int | None
    channel: str | None
    state: str
    due_us: int
    author: str
    excerpt: str
    tags: tuple[str, ...] = ()
    occurrence_us: int = 0
    """Which occurrence of a recurring post (its first moment); 0 for a post that is
    published once."""


@dataclass(frozen=True)
class ChannelDay:
    """A channel as the calendar shows it: its queue's slots in the span and its pause."""

    id: str
    network: str
    account: str
    time_zone: str
    queue: str | None
    paused: bool
    slots: tuple[tuple[int, bool], ...] = field(default=())
    """(moment, taken) for each queue slot in the span."""
    best_queue: bool = False
    """Whether "add to queue" takes the channel's best times to post (then `slots` are
    those, once known)."""


@dataclass(frozen=True)
class CalendarPage:
    span: Span
    entries: list[Entry]
    channels: list[ChannelDay]


class Calendar:
    """The calendar's queries over publishing's tables (`hubbub.publishing.sql`)."""

    def __init__(self, engine: sa.Engine, limit: int = MAX_ENTRIES) -> None:
        self._engine = engine
        self.limit = limit

    def read(
        self, tenant: str, caller: str, span: Span, filters: Filters, now_us: int | None = None
    ) -> CalendarPage:
        """Every entry of `tenant` in `span` that `filters` let through, by moment; the
        drafts are `caller`'s own; the queues' slots to come (after `now_us`). `TooMuch`
        past `limit` entries or queue slots."""
        with self._engine.connect() as db:
            found = {row.id: row for row in db.execute(_channels_of(tenant))}
            entries = [
                *self._jobs(db, tenant, span, filters),
                *_reviews(db, tenant, span, filters, found),
                *_drafts(db, tenant, caller, span, filters, found),
            ]
        if len(entries) > self.limit:
            raise TooMuch(
                f"more than {self.limit} entries in this span: narrow it (a week, or a channel)"
            )
        entries.sort(key=lambda entry: (entry.due_us, entry.channel or "", entry.id))
        shown = [
            row for row in found.values() if not filters.channels or row.id in filters.channels
        ]
        ahead = span if now_us is None else replace(span, start_us=max(span.start_us, now_us + 1))
        return CalendarPage(span, entries, self._channels(shown, ahead, entries))

    def _jobs(
        self, db: sa.Connection, tenant: str, span: Span, filters: Filters
    ) -> Iterator[Entry]:
        query = _jobs_in(tenant, span, filters).limit(self.limit + 1)
        for row in db.execute(query):
            tags = _tags(row.tags)
            state = JOB_STATES[row.state]
            if filters.lets(state, row.channel, row.author, tags):
                yield Entry("job", row.id, row.post, row.version, row.channel, state,
                            row.due_us, row.author, excerpt(row.text), tags,
                            row.occurrence_us)  # fmt: skip

    def _channels(
        self, rows: Iterable[Any], span: Span, entries: Sequence[Entry]
    ) -> list[ChannelDay]:
        taken = {
            (entry.channel, entry.due_us)
            for entry in entries
            if entry.kind == "job" and entry.state in ("scheduled", "held", "unknown")
        }
        made, budget = [], self.limit
        for row in rows:
            weekly = row.best_slots if row.best_queue and row.best_slots else row.queue
            moments = queue_slots(weekly, row.time_zone, span, budget) if weekly else []
            budget -= len(moments)
            slots = tuple((moment, (row.id, moment) in taken) for moment in moments)
            made.append(ChannelDay(row.id, row.network, row.account, row.time_zone, row.queue,
                                   bool(row.paused), slots, bool(row.best_queue)))  # fmt: skip
        return made

    def feed(
        self, tenant: str, person: str, span: Span, role: str | None = None
    ) -> tuple[list[Entry], dict[str, Any]]:
        """What `person` (the gateway's key, `user:<id>`, of `role`) follows in `span`: the
        posts they wrote, the posts a review asks them (or their role) to approve, and
        those they decided on; as
        entries by moment (at most `limit`, the nearest first), and the tenant's channels
        by id."""
        named = {person, person.removeprefix("user:")}
        with self._engine.connect() as db:
            found = {row.id: row for row in db.execute(_channels_of(tenant))}
            theirs = _followed_posts(db, tenant, named, role, span)
            query = _jobs_in(tenant, span, Filters()).where(
                (posts.c.author == person) | jobs.c.post.in_(sorted(theirs))
            )
            entries = [
                Entry("job", row.id, row.post, row.version, row.channel, JOB_STATES[row.state],
                      row.due_us, row.author, excerpt(row.text), _tags(row.tags),
                      row.occurrence_us)
                for row in db.execute(query.limit(self.limit))
            ]  # fmt: skip
            entries += list(_reviews(db, tenant, span, Filters(), found, theirs, person))
        entries.sort(key=lambda entry: (entry.due_us, entry.channel or "", entry.id))
        return entries[: self.limit], found


def queue_slots(queue: str, time_zone: str, span: Span, most: int) -> list[int]:
    """The moments of a channel's weekly slots (`WeeklySlots` text in `time_zone`) in
    `span`; `TooMuch` when there are more than `most`."""
    moments: list[int] = []
    for moment in slot_moments(WeeklySlots.parse(queue, time_zone), span.start_us - 1):
        if moment >= span.end_us:
            return moments
        if len(moments) >= most:
            raise TooMuch("more queue slots in this span than are shown at once: narrow it")
        moments.append(moment)
    return moments


def excerpt(text: str) -> str:
    """The start of a post's text, on one line, cut at `EXCERPT` characters."""
    line = " ".join(text.split())
    return line if len(line) <= EXCERPT else line[: EXCERPT - 1].rstrip() + "…"


def wall_time(moment_us: int, zone: tzinfo) -> datetime:
    """The moment as an aware time in `zone` (second precision)."""
    return datetime.fromtimestamp(moment_us // SECOND_US, UTC).astimezone(zone)


# ---------------------------------------------------------------------------- queries


def _channels_of(tenant: str) -> sa.Select[Any]:
    columns = [channels.c[name] for name in
               ("id", "network", "account", "time_zone", "queue", "paused", "best_queue",
                "best_slots")]  # fmt: skip
    return sa.select(*columns).where(channels.c.tenant == tenant).order_by(channels.c.account)


def _jobs_in(tenant: str, span: Span, filters: Filters) -> sa.Select[Any]:
    """The tenant's jobs in the span, but cancelled ones, with their post's version."""
    states = [s for s, shown in JOB_STATES.items() if not filters.states or shown in filters.states]
    query = (
        sa.select(
            jobs.c.id,
            jobs.c.post,
            jobs.c.version,
            jobs.c.channel,
            jobs.c.state,
            jobs.c.due_us,
            jobs.c.occurrence_us,
            posts.c.author,
            posts.c.text,
            posts.c.tags,
        )
        .join(posts, (posts.c.id == jobs.c.post) & (posts.c.version == jobs.c.version))
        .where(
            (jobs.c.tenant == tenant)
            & (posts.c.tenant == tenant)
            & (jobs.c.due_us >= span.start_us)
            & (jobs.c.due_us < span.end_us)
            & jobs.c.state.in_(states)
        )
        .order_by(jobs.c.due_us, jobs.c.id)
    )
    if filters.channels:
        query = query.where(jobs.c.channel.in_(sorted(filters.channels)))
    if filters.authors:
        query = query.where(posts.c.author.in_(sorted(filters.authors)))
    if filters.tags:
        # A first cut in SQL on the tags' JSON text (either dialect); `lets` decides.
        text = sa.cast(posts.c.tags, sa.Text)
        query = query.where(
            sa.or_(*(text.contains(json.dumps(tag), autoescape=True) for tag in filters.tags))
        )
    return query


def _reviews(
    db: sa.Connection, tenant: str, span: Span, filters: Filters, found: dict[str, Any],
    only: set[str] | None = None, author: str | None = None,
) -> Iterator[Entry]:  # fmt: skip
    """A review's post on each channel of its plan, at the planned moment (of the posts
    `only` names and those `author` wrote, when they are given)."""
    query = (
        sa.select(
            reviews_table.c.post,
            reviews_table.c.version,
            reviews_table.c.author,
            reviews_table.c.state,
            reviews_table.c.plan,
            reviews_table.c.due_us,
            posts.c.text,
            posts.c.tags,
        )
        .join(
            posts,
            (posts.c.id == reviews_table.c.post) & (posts.c.version == reviews_table.c.version),
        )
        .where(
            (reviews_table.c.tenant == tenant)
            & (posts.c.tenant == tenant)
            & reviews_table.c.state.in_(REVIEW_STATES)
            & _planned_near(span)
        )
    )
    if only is not None:
        query = query.where(
            reviews_table.c.post.in_(sorted(only)) | (reviews_table.c.author == (author or ""))
        )
    for row in db.execute(query):
        tags, plan = _tags(row.tags), _json(row.plan) or {}
        for channel in plan.get("channels") or ():
            if channel not in found or not filters.lets(row.state, channel, row.author, tags):
                continue
            moment = planned_moment(plan, channel, found[channel].time_zone, row.due_us)
            if moment is not None and span.holds(moment):
                yield Entry("review", row.post, row.post, row.version, channel, row.state,
                            moment, row.author, excerpt(row.text), tags)  # fmt: skip


def _planned_near(span: Span) -> Any:
    """Reviews whose planned moments may be in the span, by the review's own columns
    (indexed with its tenant): `due_us` is the earliest of its channels' times and
    `latest_due_us` the latest. One planned by `at` has its channels within a day and a
    few hours of `due_us` (zones' offsets), hence the margins; one moved on a channel
    alone (its `dues`) may have that channel's time weeks later, which `latest_due_us`
    is. One without them (planned for the queue) may still name each channel's moment."""
    due, latest = reviews_table.c.due_us, reviews_table.c.latest_due_us
    near = (due < span.end_us + DAY_US) & (latest >= span.start_us - 2 * DAY_US)
    return latest.is_(None) | near


def planned_moment(plan: dict[str, Any], channel: str, zone: str, due_us: int | None) -> int | None:
    """When a post under review is planned on `channel`: its own moment (`dues`), or the
    plan's `at` read in the channel's zone, or the review's moment; None for a post
    planned for the queue (its slot is chosen once it is approved)."""
    dues = plan.get("dues") or {}
    if isinstance(dues.get(channel), int):
        return int(dues[channel])
    at = plan.get("at")
    if isinstance(at, str) and at.strip():
        return _draft_moment(at, zone)
    return due_us


def _followed_posts(
    db: sa.Connection, tenant: str, named: set[str], role: str | None, span: Span
) -> set[str]:
    """The posts a person decided on, or whose review names them: named in a step's
    `users` (by key or by id), or, while the review is open, holding a role a step names;
    never their own (nobody approves their own post). Only the reviews that can show in
    the span are read: open ones planned near it, and those of posts with a job in it."""
    decided = sa.select(decisions_table.c.post).where(
        (decisions_table.c.tenant == tenant) & decisions_table.c.who.in_(sorted(named))
    )
    followed = set(db.execute(decided).scalars())
    in_span = sa.select(jobs.c.post).where(
        (jobs.c.tenant == tenant) & (jobs.c.due_us >= span.start_us) & (jobs.c.due_us < span.end_us)
    )
    reviews = sa.select(
        reviews_table.c.post, reviews_table.c.steps, reviews_table.c.state,
        reviews_table.c.author,
    ).where(
        (reviews_table.c.tenant == tenant)
        & sa.or_(
            reviews_table.c.state.in_(REVIEW_STATES) & _planned_near(span),
            reviews_table.c.post.in_(in_span),
        )
    )  # fmt: skip
    for row in db.execute(reviews):
        steps = [step for step in _json(row.steps) or [] if isinstance(step, dict)]
        by_role = role is not None and row.state in REVIEW_STATES and row.author not in named
        if any(named.intersection(step.get("users") or ()) for step in steps) or (
            by_role and any(role in (step.get("roles") or ()) for step in steps)
        ):
            followed.add(row.post)
    return followed


def _drafts(
    db: sa.Connection, tenant: str, caller: str, span: Span, filters: Filters,
    found: dict[str, Any],
) -> Iterator[Entry]:  # fmt: skip
    """The caller's drafts that name a time, on each channel they name, at that time read
    in the channel's zone (or the caller's, for a draft without a channel)."""
    if not caller:
        return
    mine = (drafts_table.c.tenant == tenant) & (drafts_table.c.author == caller)
    for row in db.execute(sa.select(drafts_table.c.id, drafts_table.c.body).where(mine)):
        body = _json(row.body) or {}
        at, text = body.get("at"), str(body.get("text") or "")
        if not isinstance(at, str) or not at.strip():
            continue
        named = [c for c in body.get("channels") or () if c in found] or [None]
        for channel in named:
            zone = found[channel].time_zone if channel else span.zone
            moment = _draft_moment(at, zone)
            shown = moment is not None and span.holds(moment)
            if shown and moment is not None and filters.lets("draft", channel, caller, ()):
                yield Entry("draft", row.id, None, None, channel, "draft", moment,
                                caller, excerpt(text))  # fmt: skip


def _draft_moment(at: str, zone: str) -> int | None:
    """A draft's time as scheduling would read it; None when it is no time (a draft may
    hold anything the person typed)."""
    try:
        return _moment(at, zone_of(zone), "at")
    except Invalid:
        return None


def _moment(text: str, zone: ZoneInfo, name: str) -> int:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Invalid(
            f"{name}: {text!r} is not a time: use 2026-10-19T00:00 (or with an offset)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return int(moment.timestamp() * SECOND_US)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _tags(value: Any) -> tuple[str, ...]:
    found = _json(value)
    return tuple(str(tag) for tag in found) if isinstance(found, list) else ()
