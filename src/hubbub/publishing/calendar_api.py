"""`/v1/calendar`: the content calendar of the caller's tenant (`publishing.calendar`), and
each person's iCalendar feed of the posts they write or approve.

`GET /v1/calendar` is the tenant's the gateway names (`X-Hubbub-Tenant`, signed), like
every publishing route. `POST /v1/calendar/feed` answers a path under `/v1/public/`, which
the gateway forwards without a key: what that path grants is only what its token says
(the tenant, the person it was made for and their role then, the generation of their
feed, and until when), sealed with the deployment's key (`SecretBox`, as
`publishing.logins` seals its state), so it can be neither read nor forged; the tenant
the gateway names on it is never looked at. A token that does not open, or whose time is
over, is a 404, as a feed that does not exist; so is one of an earlier generation (asking
for a new address ends the old one), and one of a person who has left the tenant. A
person the log has told publishing of (`PersonChanged`, folded by the publishing worker)
is read with the role they have now, not the one the token names.

A feed is a person's (`user:<id>`, signed in): an API key asking for one is refused, and
a token made for anything but a person opens as no feed. A key is revoked apart from
publishing, which could not end a year-long address made with it.
"""

# No `from __future__ import annotations` here: the routes' dependencies are closures,
# which FastAPI can only see in annotations evaluated at once.
import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, NamedTuple

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from icalendar import Calendar as ICalendar
from icalendar import Event

from hubbub.kernel.sealing import PREFIX, SealError, SecretBox
from hubbub.kernel.signing import LEAST_ROLE
from hubbub.publishing.api import author_of, role_of, tenant_of
from hubbub.publishing.best_times import channel_language
from hubbub.publishing.calendar import (
    MAX_ENTRIES,
    SECOND_US,
    Calendar,
    CalendarPage,
    ChannelDay,
    Entry,
    Filters,
    Span,
    TooMuch,
    wall_time,
)
from hubbub.publishing.ports import FeedStore, Invalid, NotFound
from hubbub.publishing.service import Publishing
from hubbub.publishing.slots import zone_of

FEED_DAYS: Final = 365
"""How long a feed's address works; asking again gives a new one and ends it."""
FEED_PAST_DAYS: Final = 31
FEED_AHEAD_DAYS: Final = 184
"""A feed holds the posts of the last month and the next six."""
FEED_PATH: Final = "/v1/public/calendar/{token}.ics"
PERSON: Final = "user:"
"""How the gateway names a signed-in person; anything else is a key."""
NOT_A_PERSON: Final = "a calendar feed is a person's: sign in to make one"
EVENT_MINUTES: Final = 15
"""How long a post's event lasts in a person's calendar: a post is a moment."""
FEED_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "The feed (RFC 5545).",
          "content": {"text/calendar": {"schema": {"type": "string"}}}},
    404: {"description": "No such feed: its token was not made here, was changed, ended, or"
                         " was replaced by a newer address; or its person left the tenant."},
    400: {"description": "The gateway's: a public path is sent as it is (no percent-escapes)."},
}  # fmt: skip
TimeText = Annotated[
    str, Query(max_length=64, description="ISO 8601; without an offset, in `zone`.")
]
Many = Annotated[list[str] | None, Query(max_length=50)]


class FeedToken(NamedTuple):
    tenant: str
    person: str
    role: str
    """The person's role when the token was made."""
    generation: int
    """The generation of the person's feed it was made for (0: made before feeds had)."""


class FeedTokens:
    """Feed tokens: the tenant, the person, their feed's generation and the end of the
    token, sealed."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    def make(self, tenant: str, person: str, role: str, now_us: int, generation: int = 0) -> str:
        until_s = now_us // SECOND_US + FEED_DAYS * 86_400
        said = {"tenant": tenant, "person": person, "role": role, "until": until_s,
                "generation": generation}  # fmt: skip
        return self._box.seal(json.dumps(said)).removeprefix(PREFIX)

    def open(self, token: str, now_us: int) -> FeedToken | None:
        """What a token made here and still in its time says; None otherwise."""
        try:
            said = json.loads(self._box.open(PREFIX + token))
        except (SealError, ValueError):
            return None
        if not isinstance(said, dict) or not isinstance(said.get("until"), int):
            return None
        if said["until"] * SECOND_US <= now_us:
            return None
        generation = said.get("generation", 0)
        return FeedToken(
            str(said["tenant"]), str(said["person"]), str(said.get("role") or LEAST_ROLE),
            generation if isinstance(generation, int) else -1,
        )  # fmt: skip

    def read(self, token: str, now_us: int) -> tuple[str, str, str] | None:
        """(tenant, person, role) of a token made here and still in its time; None
        otherwise."""
        opened = self.open(token, now_us)
        return None if opened is None else (opened.tenant, opened.person, opened.role)


def feed_role(store: FeedStore, token: FeedToken) -> str | None:
    """The role a feed is read with: the person's now, as the log last told it (the
    token's when it has not named them yet); None when the feed does not work (a newer
    address was made, its person left the tenant, or it was made for no person)."""
    if not token.person.startswith(PERSON):
        return None
    if store.feed_generation(token.tenant, token.person) != token.generation:
        return None
    member = store.member(token.tenant, token.person.removeprefix(PERSON))
    if member is None:
        return token.role
    return member.role if member.active else None


def entry_view(entry: Entry, zone: Any, channels: dict[str, Any]) -> dict[str, Any]:
    channel = channels.get(entry.channel or "")
    return {
        "kind": entry.kind, "id": entry.id, "post": entry.post, "version": entry.version,
        "channel": entry.channel,
        "account": channel.account if channel else None,
        "network": channel.network if channel else None,
        "state": entry.state, "due_us": entry.due_us,
        "due": wall_time(entry.due_us, UTC).isoformat(),
        "local": wall_time(entry.due_us, zone).isoformat(),
        "author": entry.author, "excerpt": entry.excerpt, "tags": list(entry.tags),
    }  # fmt: skip


def channel_day_view(channel: ChannelDay, zone: Any) -> dict[str, Any]:
    return {
        "id": channel.id, "network": channel.network, "account": channel.account,
        "time_zone": channel.time_zone, "queue": channel.queue, "paused": channel.paused,
        "best_times": channel.best_queue,
        "slots": [
            {"due_us": moment, "local": wall_time(moment, zone).isoformat(), "taken": taken}
            for moment, taken in channel.slots
        ],
    }  # fmt: skip


def page_view(page: CalendarPage) -> dict[str, Any]:
    zone = zone_of(page.span.zone)
    by_id = {channel.id: channel for channel in page.channels}
    return {
        "zone": page.span.zone,
        "start": wall_time(page.span.start_us, zone).isoformat(),
        "end": wall_time(page.span.end_us, zone).isoformat(),
        "entries": [entry_view(entry, zone, by_id) for entry in page.entries],
        "channels": [channel_day_view(channel, zone) for channel in page.channels],
    }


def feed_body(entries: Sequence[Entry], channels: dict[str, Any], now_us: int) -> bytes:
    """The entries as an iCalendar (RFC 5545) feed: an event each, in UTC. An event's UID
    is its post's on its channel (and occurrence, for a recurring post), so a post moved,
    edited or approved is the same event moved in a person's calendar, not a new one;
    of two versions at once, the newer is shown."""
    feed = ICalendar()
    feed.add("prodid", "-//Hubbub//Content calendar//EN")
    feed.add("version", "2.0")
    feed.add("x-wr-calname", "Hubbub posts")
    stamp = wall_time(now_us, UTC)
    newest: dict[str, Entry] = {}
    for entry in entries:
        kept = newest.get(_uid(entry))
        if kept is None or (entry.version or 0) >= (kept.version or 0):
            newest[_uid(entry)] = entry
    for entry in sorted(newest.values(), key=lambda one: (one.due_us, _uid(one))):
        feed.add_component(_event(entry, channels.get(entry.channel or ""), stamp))
    body: bytes = feed.to_ical()
    return body


def _event(entry: Entry, channel: Any, stamp: datetime) -> Event:
    where = f"{channel.account} ({channel.network})" if channel else "a removed channel"
    start = wall_time(entry.due_us, UTC)
    event = Event()
    event.add("uid", f"{_uid(entry)}@hubbub")
    event.add("dtstamp", stamp)
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=EVENT_MINUTES))
    event.add("summary", f"{entry.state.replace('_', ' ')}: {entry.excerpt}")
    event.add("description", f"On {where}, by {entry.author}.\n\n{entry.excerpt}")
    event.add("location", where)
    event.add("categories", [entry.state, *entry.tags])
    return event


def _uid(entry: Entry) -> str:
    return f"post-{entry.post}-{entry.channel}-{entry.occurrence_us}"


def build_router(
    service_of: Callable[[], Any], relational_url: str, limit: int = MAX_ENTRIES
) -> APIRouter:
    """The calendar's routes; `service_of()` answers (awaitably) the started `Publishing`
    (its store made, its tables migrated), and the calendar reads `relational_url`."""
    router = APIRouter(tags=["publishing"])
    opened: list[Calendar] = []

    async def service() -> Publishing:
        found: Publishing = await service_of()
        return found

    async def calendar() -> Calendar:
        await service()  # the tables exist once publishing has started
        if not opened:
            opened.append(Calendar(_engine(relational_url), limit))
        return opened[0]

    Service = Annotated[Publishing, Depends(service)]
    Reader = Annotated[Calendar, Depends(calendar)]
    Tenant = Annotated[str, Depends(tenant_of)]

    @router.get("/v1/calendar")
    async def read(
        request: Request,
        tenant: Tenant,
        reader: Reader,
        publishing: Service,
        start: TimeText,
        end: TimeText,
        zone: Annotated[
            str, Query(max_length=64, description="The IANA zone of the times.")
        ] = "UTC",
        channel: Many = None,
        author: Many = None,
        state: Many = None,
        tag: Many = None,
    ) -> dict[str, Any]:
        """Every post in [start, end) on the tenant's channels: publish jobs (scheduled,
        published, missed, failed, unknown), posts waiting for approval, and the caller's
        drafts that name a time; each with its moment in UTC and in `zone`. And each
        channel's queue slots to come in the span, and whether its queue is paused. At most 62
        days; a 422 asks for a narrower span past the most entries answered at once
        (2,000). Filters repeat (`channel=a&channel=b`)."""
        try:
            span = Span.parse(start, end, zone)
            filters = Filters(*(frozenset(v or ()) for v in (channel, author, state, tag)))
            page = await asyncio.to_thread(
                reader.read, tenant, author_of(request), span, filters, publishing.clock.now_us()
            )
        except (Invalid, TooMuch) as error:
            raise HTTPException(422, str(error)) from error
        return page_view(page)

    @router.get("/v1/calendar/channels/{channel}/language")
    async def language(tenant: Tenant, channel: str, publishing: Service) -> dict[str, str]:
        """The language the channel's best times to post fall back on when it has too
        few posts of its own: the one most of its recent posts were written in (the
        firehose's posts in it score the week), as its queue reads them."""
        try:
            found = await asyncio.to_thread(publishing.channel, tenant, channel)
        except NotFound as error:
            raise HTTPException(404, str(error)) from error
        said = await asyncio.to_thread(
            channel_language, publishing.store, found, publishing.best_language
        )
        return {"channel": channel, "language": said}

    @router.post(
        "/v1/calendar/feed", status_code=201,
        responses={403: {"description": "Called with an API key: " + NOT_A_PERSON + "."}},
    )  # fmt: skip
    async def make_feed(request: Request, tenant: Tenant, publishing: Service) -> dict[str, Any]:
        """The caller's own iCalendar feed: the posts they write, and those they are
        asked to approve or decided on. Only a signed-in person has one: an API key is
        refused (403). Answers its `path` (under `/v1/public/`, which
        needs no key: keep it as a password) and when it stops working (a year on, or
        when the caller asks for a new one: the path given before no longer works)."""
        person = author_of(request)
        if not person.startswith(PERSON):
            raise HTTPException(403, NOT_A_PERSON)
        now_us = publishing.clock.now_us()
        generation = await asyncio.to_thread(publishing.store.new_feed, tenant, person)
        token = FeedTokens(publishing.box).make(
            tenant, person, role_of(request), now_us, generation
        )
        until = wall_time(now_us + FEED_DAYS * 86_400 * SECOND_US, UTC)
        return {"path": FEED_PATH.format(token=token), "until": until.isoformat()}

    @router.get(FEED_PATH, response_class=Response, responses=FEED_ANSWERS)
    async def feed(token: str, publishing: Service, reader: Reader) -> Response:
        """A person's iCalendar feed, by the token `POST /v1/calendar/feed` made last
        for them, while they are in the tenant; a 404 for any other."""
        now_us = publishing.clock.now_us()
        said = FeedTokens(publishing.box).open(token, now_us)
        role = None if said is None else await asyncio.to_thread(feed_role, publishing.store, said)
        if said is None or role is None:
            raise HTTPException(404, "no such calendar")
        tenant, person = said.tenant, said.person
        day_us = 86_400 * SECOND_US
        span = Span(now_us - FEED_PAST_DAYS * day_us, now_us + FEED_AHEAD_DAYS * day_us, "UTC")
        entries, channels = await asyncio.to_thread(reader.feed, tenant, person, span, role)
        return Response(
            feed_body(entries, channels, now_us),
            media_type="text/calendar; charset=utf-8",
            headers={"cache-control": "private, max-age=300"},
        )

    return router


def _engine(url: str) -> sa.Engine:
    """An engine on publishing's store, for reading; on SQLite it waits for a writer
    rather than failing."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        def wait_for_writers(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        sa.event.listen(engine, "connect", wait_for_writers)
    return engine
