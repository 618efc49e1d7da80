"""The web app's content calendar: a week or a month of a workspace's posts in the
person's own time zone (their profile's), filtered by channel, author, state and tag;
each channel's queue slots, its pause, and "add to queue"; a heat map of the best times
to post on a channel; and moving a scheduled post to another time by dragging it, or by
the keyboard (`static/calendar.js`), which asks the API to reschedule it.

Like every page, it is made from the public API, asked through the gateway with the
person's session (`/v1/calendar`, `/v1/best-times`, `/v1/posts/{id}/reschedule`,
`/v1/channels/{id}/pause` and `/resume`, `/v1/calendar/feed`): what a person sees and
changes is what the API lets them. Every POST carries the page's CSRF token.
"""

# No `from __future__ import annotations` here: the routes' dependencies are closures,
# which FastAPI can only see in annotations evaluated at once.
import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from hubbub.ui.ports import Answer, PlatformApi
from hubbub.ui.service import Problem

View = Literal["week", "month"]
HALF_HOURS: Final = 48
STATES: Final = {
    "scheduled": "Scheduled", "held": "Held (queue paused)", "published": "Published",
    "missed": "Missed", "failed": "Failed", "unknown": "Unknown outcome",
    "in_review": "In review", "changes_requested": "Changes requested",
    "rejected": "Rejected", "draft": "Draft",
}  # fmt: skip
"""Every state an entry may have, as the page names it."""
MOVABLE: Final = ("scheduled", "held", "in_review", "changes_requested")
"""States of a post that may be moved to another time."""
HEAT_LEVELS: Final = 4
POST_ID: Final = r"^[0-9A-Za-z_-]{1,32}$"
WALL_TIME: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$"
DONE: Final = {
    "paused": "The channel's queue is paused: its posts are held until it resumes.",
    "resumed": "The channel's queue resumed: its held posts go out again.",
    "best-on": "Add to queue now takes the channel's best times to post (read each day).",
    "best-off": "Add to queue takes the channel's own slots again.",
    "queued": "Added to the queue.",
}
Person = Any
"""The web app's `Person` (its session, `zone`, `csrf`), as `hubbub.ui.api` makes it."""
Render = Callable[..., HTMLResponse]


def _answered(answer: Answer) -> Any:
    if not answer.ok:
        raise Problem(answer.status, answer.detail())
    return answer.json()


@dataclass(frozen=True)
class CalendarApi:
    """What the calendar page asks of the platform, with the person's session."""

    api: PlatformApi

    async def calendar(
        self, token: str, start: date, end: date, zone: str, filters: dict[str, list[str]]
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat(),
                                  "zone": zone, **filters}  # fmt: skip
        found: dict[str, Any] = _answered(
            await self.api.call("GET", "/v1/calendar", token=token, params=params)
        )
        return found

    async def best_times(self, token: str, channel: dict[str, Any], zone: str) -> list[Any]:
        path = f"/v1/calendar/channels/{quote(channel['id'], safe='')}/language"
        language = _answered(await self.api.call("GET", path, token=token))["language"]
        params = {"channel": channel["id"], "zone": zone, "network": channel["network"],
                  "language": language}  # fmt: skip
        answer = await self.api.call("GET", "/v1/best-times", token=token, params=params)
        return list(_answered(answer)["slots"])

    async def channels(self, token: str) -> list[Any]:
        return list(_answered(await self.api.call("GET", "/v1/channels", token=token)))

    async def people(self, token: str) -> list[Any]:
        """The workspace's people (ids and emails); none when they cannot be asked."""
        answer = await self.api.call("GET", "/v1/people", token=token)
        return list(answer.json()) if answer.ok else []

    async def reschedule(self, token: str, post: str, at: str, channel: str | None) -> Any:
        body = {"at": at, **({"channel": channel} if channel else {})}
        path = f"/v1/posts/{quote(post, safe='')}/reschedule"
        return _answered(await self.api.call("POST", path, token=token, json=body))

    async def pause(self, token: str, channel: str, action: str) -> Any:
        path = f"/v1/channels/{quote(channel, safe='')}/{action}"
        return _answered(await self.api.call("POST", path, token=token))

    async def best_times_queue(self, token: str, channel: str, on: bool) -> Any:
        """Whether the channel's "add to queue" takes its best times to post."""
        path = f"/v1/channels/{quote(channel, safe='')}/queue"
        kept = _answered(await self.api.call("GET", path, token=token))
        body = {"slots": kept.get("slots"), "best_times": on}
        return _answered(await self.api.call("PUT", path, token=token, json=body))

    async def add_to_queue(self, token: str, channel: str, text: str) -> Any:
        body = {"text": text, "channels": [channel], "queue": True}
        return _answered(await self.api.call("POST", "/v1/posts", token=token, json=body))

    async def feed(self, token: str) -> dict[str, Any]:
        found: dict[str, Any] = _answered(
            await self.api.call("POST", "/v1/calendar/feed", token=token)
        )
        return found


# ------------------------------------------------------------------ the page's shape


def days_shown(view: View, day: date) -> tuple[date, date]:
    """The first day shown and the day after the last: a week from its Monday; a month
    as whole weeks, Monday to Sunday, from the one its first day is in."""
    if view == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first - timedelta(days=first.weekday()), following + timedelta(
        days=(7 - following.weekday()) % 7
    )


def moved_by(view: View, day: date, steps: int) -> date:
    """The day a week or a month `steps` away."""
    if view == "week":
        return day + timedelta(days=7 * steps)
    month = day.month - 1 + steps
    return date(day.year + month // 12, month % 12 + 1, 1)


def local_parts(local: str) -> tuple[date, int, str]:
    """A wall-clock time the API answered (ISO, with its offset): its day, its half-hour
    of the day, and its HH:MM."""
    moment = datetime.fromisoformat(local)
    return moment.date(), (moment.hour * 60 + moment.minute) // 30, moment.strftime("%H:%M")


@dataclass(frozen=True)
class People:
    """How the page names authors: `user:<id>` by their email, "you" for the caller, and
    an API key as the API names it."""

    people: Sequence[dict[str, Any]] = ()
    me: str = ""

    def name_of(self, key: str) -> str:
        user = key.removeprefix("user:")
        if key.startswith("user:") and user == self.me:
            return "you"
        emails = {str(p.get("id")): str(p.get("email")) for p in self.people}
        return emails.get(user, key) if key.startswith("user:") else key

    def key_of(self, typed: str) -> str:
        """The author key a person typed: an email of the workspace, "you", or a key."""
        if typed == "you" and self.me:
            return f"user:{self.me}"
        found = next((p for p in self.people if p.get("email") == typed), None)
        return f"user:{found['id']}" if found else typed


def shown_entry(entry: dict[str, Any], names: People | None = None) -> dict[str, Any]:
    day, _, time = local_parts(entry["local"])
    movable = entry["state"] in MOVABLE and entry["kind"] != "draft" and bool(entry["channel"])
    return {
        **entry, "day": day, "time": time, "at": f"{day.isoformat()}T{time}",
        "label": STATES.get(entry["state"], entry["state"]), "movable": movable,
        "where": entry["account"] or "a removed channel",
        "by": (names or People()).name_of(entry["author"]),
    }  # fmt: skip


def heat_levels(slots: Sequence[dict[str, Any]]) -> dict[tuple[int, int], tuple[int, float]]:
    """(weekday, half-hour) → (level 0 to `HEAT_LEVELS`, score), from `/v1/best-times`."""
    best = max((slot["score"] for slot in slots), default=0.0)
    found = {}
    for slot in slots:
        hours, minutes = (int(part) for part in slot["time"].split(":"))
        level = math.ceil(HEAT_LEVELS * slot["score"] / best) if best > 0 else 0
        found[(slot["day"], (hours * 60 + minutes) // 30)] = (level, slot["score"])
    return found


@dataclass(frozen=True)
class Grid:
    """Where each entry and queue slot goes on the page."""

    view: View
    first: date
    after: date
    entries: list[dict[str, Any]]
    slots: list[dict[str, Any]]
    heat: dict[tuple[int, int], tuple[int, float]]

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.after - self.first).days)]

    def week_rows(self) -> list[dict[str, Any]]:
        """A row per half-hour of the day, a cell per day."""
        cells: dict[tuple[date, int], dict[str, list[Any]]] = {}
        for kind, items in (("entries", self.entries), ("slots", self.slots)):
            for item in items:
                day, half, _ = local_parts(item["local"])
                cells.setdefault((day, half), {"entries": [], "slots": []})[kind].append(item)
        return [
            {
                "time": f"{half // 2:02d}:{half % 2 * 30:02d}",
                "cells": [self._cell(day, half, cells.get((day, half))) for day in self.days],
            }
            for half in range(HALF_HOURS)
        ]

    def _cell(self, day: date, half: int, held: dict[str, list[Any]] | None) -> dict[str, Any]:
        level, score = self.heat.get((day.weekday(), half), (None, None))
        return {
            "day": day, "at": f"{day.isoformat()}T{half // 2:02d}:{half % 2 * 30:02d}",
            "entries": (held or {}).get("entries", []), "slots": (held or {}).get("slots", []),
            "heat": level, "score": score,
        }  # fmt: skip

    def month_weeks(self, month: int) -> list[list[dict[str, Any]]]:
        """A row per week, a cell per day, with its entries and free slots."""
        by_day: dict[date, dict[str, list[Any]]] = {}
        for kind, items in (("entries", self.entries), ("slots", self.slots)):
            for item in items:
                day, _, _ = local_parts(item["local"])
                by_day.setdefault(day, {"entries": [], "slots": []})[kind].append(item)
        empty: dict[str, list[Any]] = {"entries": [], "slots": []}
        days = [
            {"day": day, "in_month": day.month == month, **by_day.get(day, empty)}
            for day in self.days
        ]
        return [days[n : n + 7] for n in range(0, len(days), 7)]


def free_slots(channels: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each channel's queue slots no post takes, to show where "add to queue" goes."""
    return [
        {**slot, "channel": channel["id"], "account": channel["account"],
         "paused": channel["paused"], "time": local_parts(slot["local"])[2]}
        for channel in channels
        for slot in channel["slots"]
        if not slot["taken"]
    ]  # fmt: skip


def wall_time_in(at: str, person_zone: str, channel_zone: str) -> str:
    """`at` (a wall-clock time in the person's zone, as the page shows it) as the
    wall-clock time it is in the channel's zone, which the API reads it in. A time the
    clocks skip there (02:30 the night they go forward) is refused, saying so: read as
    the hour after, the post would land elsewhere than where it was dropped."""
    wall = datetime.fromisoformat(at)
    moment = wall.replace(tzinfo=ZoneInfo(person_zone))
    if moment.astimezone(UTC).astimezone(moment.tzinfo).replace(tzinfo=None) != wall:
        raise Problem(
            422,
            f"{wall:%a %d %b %H:%M} does not exist in {person_zone}: the clocks go forward"
            " that night and skip it. Choose a time before or after.",
        )
    return moment.astimezone(ZoneInfo(channel_zone)).replace(tzinfo=None).isoformat("T", "minutes")


def moved_message(answer: Any, at: str) -> str:
    """What the page says once the API moved a post: where to, and the review it went
    back to, when a workflow applies."""
    shown = datetime.fromisoformat(at).strftime("%a %d %b %H:%M")
    said = f"Rescheduled to {shown}."
    review = answer.get("review") if isinstance(answer, dict) else None
    if isinstance(review, dict) and review.get("state"):
        state = STATES.get(str(review["state"]), str(review["state"]))
        said += f" Version {answer.get('version')} goes through approval again: {state}."
    return said


def filters_of(
    channel: list[str] | None, author: list[str] | None, state: list[str] | None,
    tag: list[str] | None,
) -> dict[str, list[str]]:  # fmt: skip
    """The filters as the API takes them: authors and tags typed apart by commas."""

    def split(values: list[str] | None) -> list[str]:
        return [part.strip() for value in values or () for part in value.split(",") if part.strip()]

    return {
        "channel": [c for c in channel or () if c], "author": split(author),
        "state": [s for s in state or () if s in STATES], "tag": split(tag),
    }  # fmt: skip


def linking(filters: dict[str, list[str]], heat: str) -> Callable[[str, date], str]:
    """What makes the address of another view or day of the calendar, its filters kept."""
    kept = [(name, value) for name, values in filters.items() for value in values]
    kept += [("heat", heat)] if heat else []

    def link(view: str, day: date) -> str:
        return back_to(urlencode([("view", view), ("day", day.isoformat()), *kept]))

    return link


def back_to(query: str) -> str:
    """The calendar page with the query it was shown with (only `/calendar`, never
    elsewhere)."""
    return "/calendar" + (f"?{query}" if query else "")


class Move(BaseModel):
    """A post moved on the page: to `at`, a wall-clock time in the person's zone."""

    post: str = Field(pattern=POST_ID)
    channel: str = Field(pattern=POST_ID)
    at: str = Field(pattern=WALL_TIME)


# -------------------------------------------------------------------------- routes

Many = Annotated[list[str] | None, Query(max_length=50)]


def build_router(
    api: PlatformApi,
    who: Callable[[Request], Awaitable[Person]],
    posting: Callable[[Request], Awaitable[Person]],
    page: Render,
) -> APIRouter:
    """The calendar's routes. `who` answers the signed-in person of a workspace (or sends
    them to sign in), `posting` the same for a POST whose CSRF token it has checked,
    and `page` renders a template for a person, as every page of the app is rendered."""
    router = APIRouter()
    calendar = CalendarApi(api)
    Who = Annotated[Person, Depends(who)]
    Posting = Annotated[Person, Depends(posting)]

    @router.get("/calendar", response_class=HTMLResponse)
    async def show(
        request: Request,
        person: Who,
        view: Annotated[View, Query()] = "week",
        day: Annotated[date | None, Query()] = None,
        channel: Many = None,
        author: Many = None,
        state: Many = None,
        tag: Many = None,
        heat: Annotated[str, Query(max_length=32)] = "",
        done: Annotated[str, Query(max_length=16)] = "",
    ) -> HTMLResponse:
        today = datetime.now(UTC).astimezone(ZoneInfo(person.zone)).date()
        shown = day or today
        filters = filters_of(channel, author, state, tag)
        context: dict[str, Any] = {
            "view": view, "day": shown, "today": today, "filters": filters, "heat": heat,
            "states": STATES, "zone": person.zone, "done": DONE.get(done),
            "earlier": moved_by(view, shown, -1), "later": moved_by(view, shown, 1),
            "query": request.url.query, "link": linking(filters, heat),
        }  # fmt: skip
        try:
            shaped = await shape(person, view, shown, filters, heat)
        except Problem as problem:
            return page(request, "calendar.html", person, error=str(problem),
                        status=problem.status, grid=None, channels=[], **context)  # fmt: skip
        return page(request, "calendar.html", person, **shaped, **context)

    async def shape(
        person: Person, view: View, day: date, filters: dict[str, list[str]], heat: str
    ) -> dict[str, Any]:
        """What the page shows of the calendar the API answers: its grid, its channels
        (those shown, and all to filter by), and who wrote its posts."""
        first, after = days_shown(view, day)
        channels, people = await asyncio.gather(
            calendar.channels(person.session), calendar.people(person.session)
        )
        names = People(people, str(person.me.get("id") or ""))
        asked = {**filters, "author": [names.key_of(a) for a in filters["author"]]}
        found, (heated, heat_problem) = await asyncio.gather(
            calendar.calendar(person.session, first, after, person.zone, asked),
            heat_of(person, channels, heat),
        )
        entries = [shown_entry(entry, names) for entry in found["entries"]]
        return {
            "grid": Grid(view, first, after, entries, free_slots(found["channels"]), heated),
            "channels": found["channels"], "all_channels": channels,
            "heat_problem": heat_problem,
            "authors": sorted({names.name_of(e["author"]) for e in entries}),
        }  # fmt: skip

    async def heat_of(
        person: Person, channels: list[dict[str, Any]], heat: str
    ) -> tuple[dict[tuple[int, int], tuple[int, float]], str | None]:
        chosen = next((c for c in channels if c["id"] == heat), None)
        if chosen is None:
            return {}, None
        try:
            return heat_levels(await calendar.best_times(person.session, chosen, person.zone)), None
        except Problem as problem:
            return {}, f"No best times for {chosen['account']}: {problem}"

    @router.post("/calendar/reschedule")
    async def reschedule(person: Posting, body: Move) -> Response:
        """Move a post (from the page's script, JSON, with the CSRF token in its header);
        answers what the page says, or the API's refusal as `{"detail"}`."""
        try:
            channels = {c["id"]: c for c in await calendar.channels(person.session)}
            if body.channel not in channels:
                raise Problem(404, "no such channel")
            at = wall_time_in(body.at, person.zone, channels[body.channel]["time_zone"])
            answer = await calendar.reschedule(person.session, body.post, at, body.channel)
        except Problem as problem:
            return JSONResponse({"detail": str(problem)}, status_code=problem.status)
        review = answer.get("review") if isinstance(answer, dict) else None
        state = str(review["state"]) if isinstance(review, dict) and review.get("state") else ""
        return JSONResponse({"message": moved_message(answer, body.at), "post": answer,
                             "label": STATES.get(state, state)})  # fmt: skip

    @router.post("/calendar/channels/{channel}/{action}", response_class=HTMLResponse)
    async def pause(
        request: Request,
        person: Posting,
        channel: str,
        action: Literal["pause", "resume"],
        back: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        """Pause or resume a channel's queue, then back to the calendar as it was."""
        try:
            await calendar.pause(person.session, channel, action)
        except Problem as problem:
            return await failed(request, person, problem)
        return after(back, done="paused" if action == "pause" else "resumed")

    @router.post("/calendar/best-times/{channel}", response_class=HTMLResponse)
    async def best_times_queue(
        request: Request,
        person: Posting,
        channel: str,
        on: Annotated[bool, Form()],
        back: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        """Let the channel's queue take its best times to post, or its own slots again."""
        try:
            await calendar.best_times_queue(person.session, channel, on)
        except Problem as problem:
            return await failed(request, person, problem)
        return after(back, done="best-on" if on else "best-off")

    @router.post("/calendar/queue", response_class=HTMLResponse)
    async def add_to_queue(
        request: Request,
        person: Posting,
        channel: Annotated[str, Form(max_length=32)],
        text: Annotated[str, Form(min_length=1, max_length=10_000)],
        back: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        """A post into the channel's next free queue slot."""
        try:
            await calendar.add_to_queue(person.session, channel, text)
        except Problem as problem:
            return await failed(request, person, problem)
        return after(back, done="queued")

    @router.post("/calendar/feed", response_class=HTMLResponse)
    async def make_feed(
        request: Request, person: Posting, back: Annotated[str, Form(max_length=2000)] = ""
    ) -> Response:
        """The person's own iCalendar feed's address, shown on a page of its own (never
        put in an address of the app, where it would stay in the browser's history)."""
        try:
            made = await calendar.feed(person.session)
        except Problem as problem:
            return await failed(request, person, problem)
        url = f"{_public_base(request)}{made['path']}"
        return page(request, "calendar_feed.html", person, url=url, until=made["until"],
                    back=back_to(urlencode(_query_pairs(back))))  # fmt: skip

    async def failed(request: Request, person: Person, problem: Problem) -> HTMLResponse:
        return page(request, "calendar.html", person, error=str(problem), status=problem.status,
                    grid=None, channels=[], states=STATES, zone=person.zone, view="week",
                    filters={}, query="")  # fmt: skip

    def after(back: str, **said: str) -> RedirectResponse:
        kept = [(k, v) for k, v in _query_pairs(back) if k != "done"]
        return RedirectResponse(back_to(urlencode([*kept, *said.items()])), status_code=303)

    return router


def _public_base(request: Request) -> str:
    """Where people reach the app: the gateway's scheme and host, as it forwarded them."""
    host = request.headers.get("x-forwarded-host") or request.url.netloc
    scheme = request.headers.get("x-forwarded-proto") or request.url.scheme
    return f"{scheme}://{host}"


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=False)[:100]
