"""The web app's listening pages: a tenant's streams (saved searches) as columns side by
side, each a live column of the posts it matches (`/listening`); one stream's stored
matches, searched, filtered and paged (`/listening/{id}`); and the inbox of what mentions
or answers the tenant's channels (`/inbox`), its unread count kept live.

Like every page, they are made from the public API, asked through the gateway with the
person's session (`/v1/streams`, `/v1/inbox`, `/v1/people`): what a person sees and
changes is what the API lets them, so another tenant's stream is a 404 here as there.
Every form carries the page's CSRF token.

The live columns are the platform's own streams (`GET /v1/streams/{id}/live`), one per
column, merged by the web app into one stream for the page (`/listening/live`): a browser
holds six connections to a site, and a board has more columns than that. Each event it
passes on has, as its id, the position of every column's stream (`Positions`), which the
browser sends back as `Last-Event-ID` when it reconnects; each stream resumes after its
own position, so a match is neither lost nor shown twice. The web app keeps nothing.
"""

# No `from __future__ import annotations` here: the routes' dependencies are closures,
# which FastAPI can only see in annotations evaluated at definition.
import asyncio
import codecs
import json
import re
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from hubbub.ui import csrf, formatting
from hubbub.ui.api import SESSION, Access, Person, _templates
from hubbub.ui.notifications import EventStreams, StreamAnswer
from hubbub.ui.ports import Answer, PlatformApi, Unreachable
from hubbub.ui.service import KnownPeople, Problem

ID: Final = re.compile(r"[0-9A-Za-z_-]{1,64}")
"""A stream's or an inbox item's id, as a path segment may carry it."""
POSITION: Final = re.compile(r"[0-9]{1,20}")
LANGUAGE: Final = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z]{2,8}){0,2}")
"""A language the matches are filtered by: a code such as en or pt-BR."""
COLUMN_SHOWN: Final = 20
"""Stored matches a column starts with (the newest); live ones are put on top."""
PAGE_SHOWN: Final = 50
MOST_COLUMNS: Final = 50
"""Streams one page's live stream merges, at most."""
TEST_HOURS: Final = 1
RETRY_MS: Final = 2000


class QueryProblem(Problem):
    """The API could not parse a search: what it said, where (a 0-based character offset
    in the query) and what it expected there."""

    def __init__(self, message: str, position: int, expected: str) -> None:
        super().__init__(400, message)
        self.position = position
        self.expected = expected

    def shown(self, query: str) -> dict[str, Any]:
        """The error as the form shows it beside the query: the query cut at the position,
        the character there marked."""
        at = max(0, min(self.position, len(query)))
        return {
            "message": str(self), "position": at, "expected": self.expected,
            "before": query[:at], "at": query[at : at + 1], "after": query[at + 1 :],
        }  # fmt: skip


def answered(answer: Answer) -> Any:
    """The body of an answer of the API; `QueryProblem` for a query it could not parse,
    `Problem` for any other refusal."""
    if answer.ok:
        return answer.json()
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if answer.status == 400 and isinstance(detail, dict) and "position" in detail:
        return _raise_query_problem(detail)
    raise Problem(answer.status, answer.detail())


def _raise_query_problem(detail: Mapping[str, Any]) -> Any:
    raise QueryProblem(
        str(detail.get("message") or "this query does not parse"),
        int(detail.get("position") or 0),
        str(detail.get("expected") or ""),
    )


def _part(value: str) -> str:
    """An id as one path segment, or a 404: what a person sent never reaches another
    route."""
    if not ID.fullmatch(value):
        raise Problem(404, "not found")
    return quote(value, safe="")


@dataclass(frozen=True)
class ListeningApi:
    """What the listening pages ask of the platform, with the person's session."""

    api: PlatformApi

    async def streams(self, token: str) -> list[dict[str, Any]]:
        return list(answered(await self.api.call("GET", "/v1/streams", token=token))["streams"])

    async def stream(self, token: str, stream: str) -> dict[str, Any]:
        path = f"/v1/streams/{_part(stream)}"
        found: dict[str, Any] = answered(await self.api.call("GET", path, token=token))
        return found

    async def save(self, token: str, stream: str | None, name: str, query: str) -> Any:
        """A new stream (`stream` None) or a change to one."""
        body = {"name": name, "query": query}
        if stream is None:
            return answered(await self.api.call("POST", "/v1/streams", token=token, json=body))
        path = f"/v1/streams/{_part(stream)}"
        return answered(await self.api.call("PUT", path, token=token, json=body))

    async def remove(self, token: str, stream: str) -> None:
        path = f"/v1/streams/{_part(stream)}"
        answered(await self.api.call("DELETE", path, token=token))

    async def test(self, token: str, query: str) -> dict[str, Any]:
        """What `query` would have matched in the last hour."""
        body = {"query": query, "hours": TEST_HOURS, "limit": PAGE_SHOWN}
        answer = await self.api.call("POST", "/v1/streams/test", token=token, json=body)
        found: dict[str, Any] = answered(answer)
        return found

    async def matches(self, token: str, stream: str, params: Mapping[str, Any]) -> dict[str, Any]:
        path = f"/v1/streams/{_part(stream)}/matches"
        answer = await self.api.call("GET", path, token=token, params=dict(params))
        found: dict[str, Any] = answered(answer)
        return found

    async def inbox(self, token: str, params: Mapping[str, Any]) -> dict[str, Any]:
        answer = await self.api.call("GET", "/v1/inbox", token=token, params=dict(params))
        found: dict[str, Any] = answered(answer)
        return found

    async def change(self, token: str, item: str, body: Mapping[str, Any]) -> Any:
        path = f"/v1/inbox/{_part(item)}"
        return answered(await self.api.call("PATCH", path, token=token, json=dict(body)))

    async def reply(self, token: str, item: str, text: str) -> Any:
        path = f"/v1/inbox/{_part(item)}/reply"
        return answered(await self.api.call("POST", path, token=token, json={"text": text}))

    async def people(self, token: str) -> list[dict[str, Any]]:
        """The workspace's people (ids and emails); none when they cannot be asked."""
        answer = await self.api.call("GET", "/v1/people", token=token)
        return list(answer.json()) if answer.ok else []


# ------------------------------------------------------------------ what pages show


def web_link(url: object) -> str | None:
    """A post's address when it is one a browser may follow (http or https), else None:
    a `javascript:` link in a post never becomes a link on a page."""
    if isinstance(url, str) and re.match(r"https?://[^\s/]", url, re.IGNORECASE):
        return url
    return None


def shown_match(match: Mapping[str, Any]) -> dict[str, Any]:
    """A match (or an inbox item) as a page shows it: its time as an instant, its
    languages as words, its link only when a browser may follow it."""
    created = int(match.get("created_at") or 0)
    return {
        **match, "created": datetime.fromtimestamp(created / 1e6, UTC),
        "languages": ", ".join(str(lang) for lang in match.get("langs") or ()),
        "link": web_link(match.get("url")),
    }  # fmt: skip


def day_range(since: date | None, until: date | None, zone: str) -> dict[str, int]:
    """Whole days in the person's zone, `since` to `until` inclusive, as the matches API
    takes them: microseconds, `until` the start of the day after."""

    def start_of(day: date) -> int:
        return int(datetime.combine(day, time(), ZoneInfo(zone)).timestamp() * 1_000_000)

    found = {}
    if since is not None:
        found["since"] = start_of(since)
    if until is not None:
        found["until"] = start_of(until + timedelta(days=1))
    return found


def day_of(typed: str) -> date | None:
    """A day as a date field sends it (YYYY-MM-DD); None when empty or not a day."""
    try:
        return date.fromisoformat(typed) if len(typed) == 10 else None
    except ValueError:
        return None


def tags_of(typed: str) -> list[str]:
    """Tags typed apart by commas: trimmed, the empty ones left out, each once."""
    return list(dict.fromkeys(t.strip() for t in typed.split(",") if t.strip()))[:20]


def newest_positions(columns: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each column's stream and where its live stream resumes: where the platform's
    stored matches end (what was matched since, stored or not yet, is then sent live),
    else the position of its newest match shown."""
    found = {}
    for column in columns:
        positions = [int(m["position"]) for m in column["matches"] if m.get("position") is not None]
        if POSITION.fullmatch(str(column.get("live_from", ""))):
            positions.append(int(column["live_from"]))
        if positions:
            found[str(column["stream"]["id"])] = str(max(positions))
    return found


class Positions:
    """Where each stream of a merged live stream is: `stream:position,stream:position`,
    the id of each event the page is sent, which its browser sends back to resume."""

    @staticmethod
    def read(text: str | None) -> dict[str, str]:
        """The positions in `text`; what is not a stream's id and a position is left out."""
        found: dict[str, str] = {}
        for part in (text or "").split(",")[:MOST_COLUMNS]:
            stream, _, position = part.partition(":")
            if ID.fullmatch(stream) and POSITION.fullmatch(position):
                found[stream] = position
        return found

    @staticmethod
    def write(positions: Mapping[str, str]) -> str:
        return ",".join(f"{stream}:{position}" for stream, position in positions.items())


@dataclass(frozen=True)
class SentEvent:
    """One server-sent event: its id (if it had one), its name and data; `comment` for a
    block of comments only (a heartbeat)."""

    id: str | None
    event: str
    data: str
    comment: bool = False


@dataclass
class EventReader:
    """Server-sent events read out of a stream's chunks, as the HTML standard reads them
    (lines end with LF or CRLF, `data` lines joined by LF, a blank line ends an event)."""

    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )
    _pending: str = ""
    _fields: dict[str, list[str]] = field(default_factory=dict)
    _commented: bool = False

    def feed(self, chunk: bytes) -> list[SentEvent]:
        lines = (self._pending + self._decoder.decode(chunk)).split("\n")
        self._pending = lines.pop()
        found = []
        for line in lines:
            event = self._line(line.removesuffix("\r"))
            if event is not None:
                found.append(event)
        return found

    def _line(self, line: str) -> SentEvent | None:
        if line == "":
            return self._dispatched()
        if line.startswith(":"):
            self._commented = True
            return None
        name, _, value = line.partition(":")
        self._fields.setdefault(name, []).append(value.removeprefix(" "))
        return None

    def _dispatched(self) -> SentEvent | None:
        fields, commented = self._fields, self._commented
        self._fields, self._commented = {}, False
        ids = fields.get("id")
        if not ids and "data" not in fields:  # `retry`, comments: nothing to pass on
            return SentEvent(None, "", "", comment=True) if commented else None
        event = (fields.get("event") or ["message"])[-1]
        return SentEvent(ids[-1] if ids else None, event, "\n".join(fields.get("data", [])))


def sent(name: str, data: Any, id_: str | None = None) -> str:
    """An event as the page's stream sends it (its data one line of JSON)."""
    head = f"id: {id_}\n" if id_ is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Merged:
    """Several streams' live matches as one stream for a page (see the module's
    docstring). `open` asks the platform for each; `events` passes on what each sends,
    its stream named, until one of them ends (the page then reconnects, every stream
    resuming where it was). A stream the platform refuses (removed, another tenant's)
    is told to the page once, as `gone`, and left out."""

    def __init__(
        self, streams: EventStreams, token: str, ids: Sequence[str], positions: dict[str, str]
    ) -> None:
        self._streams, self._token, self._ids = streams, token, list(ids)
        self.positions = {s: p for s, p in positions.items() if s in self._ids}
        self._exits = AsyncExitStack()
        self._answers: dict[str, StreamAnswer] = {}
        self.gone: dict[str, int] = {}

    @property
    def live(self) -> bool:
        return bool(self._answers)

    async def open(self) -> None:
        """Open every stream at once; `Unreachable` (each one opened closed again) when
        the platform cannot be reached."""
        opened = await asyncio.gather(*(self._open(s) for s in self._ids), return_exceptions=True)
        failures = [o for o in opened if isinstance(o, BaseException)]
        if failures:
            await self.close()
            raise failures[0]

    async def _open(self, stream: str) -> None:
        position = self.positions.get(stream)
        opening: AbstractAsyncContextManager[StreamAnswer] = self._streams.open(
            f"/v1/streams/{quote(stream, safe='')}/live", token=self._token, params={},
            headers={"last-event-id": position} if position else {},
        )  # fmt: skip
        answer = await opening.__aenter__()
        self._exits.push_async_exit(opening.__aexit__)
        if answer.status_code == 200:
            self._answers[stream] = answer
        else:
            self.gone[stream] = answer.status_code

    async def close(self) -> None:
        await self._exits.aclose()

    async def events(self) -> AsyncIterator[str]:
        arrived: asyncio.Queue[tuple[str, SentEvent | None]] = asyncio.Queue(maxsize=1000)
        readers = [
            asyncio.create_task(self._read(stream, answer, arrived))
            for stream, answer in self._answers.items()
        ]
        try:
            yield f"retry: {RETRY_MS}\n\n"
            for stream, status in self.gone.items():
                yield sent("gone", {"stream": stream, "status": status})
            while True:
                stream, event = await arrived.get()
                if event is None:
                    return
                said = self.relayed(stream, event)
                if said:
                    yield said
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await self.close()

    @staticmethod
    async def _read(
        stream: str, answer: StreamAnswer, arrived: asyncio.Queue[tuple[str, SentEvent | None]]
    ) -> None:
        reader = EventReader()
        try:
            async for chunk in answer.aiter_bytes():
                for event in reader.feed(chunk):
                    await arrived.put((stream, event))
        except Unreachable:
            pass
        await arrived.put((stream, None))

    def relayed(self, stream: str, event: SentEvent) -> str:
        """What the page is sent for one event of `stream`: a match or a withdrawal, its
        stream named, with every stream's position as its id; a heartbeat; or nothing."""
        if event.comment:
            return ": heartbeat\n\n"
        moved = event.id is not None and POSITION.fullmatch(event.id)
        if moved:
            self.positions[stream] = str(event.id)
        where = Positions.write(self.positions) if self.positions else None
        try:
            data = json.loads(event.data) if event.data else None
        except ValueError:
            data = None
        if event.event == "match" and isinstance(data, dict):
            return sent("match", {"stream": stream, "match": data}, where)
        if event.event == "withdrawn" and isinstance(data, dict):
            return sent("withdrawn", {"stream": stream, "post": data.get("post")}, where)
        return f"id: {where}\n\n" if moved else ""


async def passed_on(streams: EventStreams, token: str, path: str, last: str) -> Response:
    """The platform's stream at `path`, passed on as it comes (resuming after `last`);
    204, which tells an `EventSource` to stop, when the platform does not stream it."""
    headers = {"last-event-id": last} if POSITION.fullmatch(last) else {}
    opened = streams.open(path, token=token, params={}, headers=headers)
    try:
        answer = await opened.__aenter__()
    except Unreachable:
        return Response(status_code=204)
    if answer.status_code != 200:
        await opened.__aexit__(None, None, None)
        return Response(status_code=204)

    async def relayed() -> AsyncIterator[bytes]:
        try:
            async for chunk in answer.aiter_bytes():
                yield chunk
        except Unreachable:
            return
        finally:
            await opened.__aexit__(None, None, None)

    return StreamingResponse(relayed(), media_type="text/event-stream", headers=STREAM_HEADERS)


STREAM_HEADERS: Final = {"cache-control": "no-store", "x-accel-buffering": "no"}


# -------------------------------------------------------------------------- routes

Text = Annotated[str, Form(max_length=2000)]


def build_router(
    api: PlatformApi, streams: EventStreams, people: KnownPeople, key: csrf.CsrfKey
) -> APIRouter:
    """The listening pages and the inbox, asking `api` (and `streams` for the live
    ones)."""
    router = APIRouter()
    templates = _templates()
    listening = ListeningApi(api)

    access = Access(people, key)

    Who = Annotated[Person, Depends(access.member)]
    Posting = Annotated[Person, Depends(access.posting)]

    def render(request: Request, name: str, who: Person, **context: Any) -> HTMLResponse:
        status = context.pop("status", 200)
        shown = {
            "person": who, "moment": formatting.Moments(who.zone, who.locale),
            "number": lambda n: formatting.number(n, who.locale), **context,
        }  # fmt: skip
        return templates.TemplateResponse(request, name, shown, status_code=status)

    async def column(who: Person, stream: dict[str, Any]) -> dict[str, Any]:
        try:
            found = await listening.matches(who.session, stream["id"], {"limit": COLUMN_SHOWN})
        except Problem as problem:
            return {"stream": stream, "matches": [], "problem": str(problem)}
        shown = [shown_match(m) for m in found["matches"]]
        return {"stream": stream, "matches": shown, "live_from": found.get("live_from")}

    async def board(request: Request, who: Person, **context: Any) -> HTMLResponse:
        """The streams as columns, each with its newest matches; with what a form said."""
        status = context.pop("status", 200)
        found = await listening.streams(who.session)
        columns = list(await asyncio.gather(*(column(who, s) for s in found)))
        after = Positions.write(newest_positions(columns))
        return render(request, "listening.html", who, active="listening", columns=columns,
                      after=after, status=status, **context)  # fmt: skip

    @router.get("/listening", response_class=HTMLResponse)
    async def show_board(request: Request, who: Who) -> HTMLResponse:
        return await board(request, who)

    @router.post("/listening/streams", response_class=HTMLResponse)
    async def add(request: Request, who: Posting, name: Text, query: Text) -> Response:
        return await saving(request, who, None, name, query)

    @router.post("/listening/streams/{stream}", response_class=HTMLResponse)
    async def change(
        request: Request, who: Posting, stream: str, name: Text, query: Text
    ) -> Response:
        return await saving(request, who, stream, name, query)

    async def saving(
        request: Request, who: Person, stream: str | None, name: str, query: str
    ) -> Response:
        """Save the stream, then back to the board; or the board with the form as it was
        sent and why the API refused it (a query's error where it is)."""
        try:
            await listening.save(who.session, stream, name, query)
        except QueryProblem as problem:
            form = {"stream": stream, "name": name, "query": query,
                    "query_error": problem.shown(query)}  # fmt: skip
            return await board(request, who, form=form, status=400)
        except Problem as problem:
            form = {"stream": stream, "name": name, "query": query, "error": str(problem)}
            return await board(request, who, form=form, status=problem.status)
        return RedirectResponse("/listening", status_code=303)

    @router.post("/listening/streams/{stream}/remove", response_class=HTMLResponse)
    async def remove(request: Request, who: Posting, stream: str) -> Response:
        try:
            await listening.remove(who.session, stream)
        except Problem as problem:
            return await board(request, who, error=str(problem), status=problem.status)
        return RedirectResponse("/listening", status_code=303)

    @router.post("/listening/test", response_class=HTMLResponse)
    async def test(
        request: Request,
        who: Posting,
        query: Text,
        name: Text = "",
        stream: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        """What the query would have matched in the last hour, under the form it came
        from (htmx swaps the results in; without scripts, the board is shown with them)."""
        form: dict[str, Any] = {"stream": stream or None, "name": name, "query": query}
        tested: dict[str, Any] = {"query": query}
        status = 200
        try:
            found = await listening.test(who.session, query)
            tested["matches"] = [shown_match(m) for m in found["matches"]]
            tested["scanned"] = found.get("scanned", 0)
        except QueryProblem as problem:
            form["query_error"] = problem.shown(query)
            tested["error"], status = str(problem), 400
        except Problem as problem:
            tested["error"], status = str(problem), problem.status
        if request.headers.get("hx-request"):
            status = 200  # htmx swaps in only what came with a 2xx
        return await board(request, who, form=form, tested=tested, status=status)

    @router.get("/listening/live")
    async def live(
        request: Request,
        stream: Annotated[list[str], Query(max_length=MOST_COLUMNS)],
        after: Annotated[str, Query(max_length=4000)] = "",
    ) -> Response:
        """The columns' streams, merged (no `/v1/me` first: the gateway checks the
        session with each, and refuses a void one); 204 when none streams."""
        session = request.cookies.get(SESSION)
        if not session:
            raise HTTPException(401, "sign in first")
        chosen = list(dict.fromkeys(s for s in stream if ID.fullmatch(s)))
        positions = Positions.read(after) | Positions.read(request.headers.get("last-event-id"))
        merged = Merged(streams, session, chosen, positions)
        try:
            await merged.open()
        except Unreachable:
            return Response(status_code=204)
        if not merged.live:
            await merged.close()
            return Response(status_code=204)
        return StreamingResponse(
            merged.events(), media_type="text/event-stream", headers=STREAM_HEADERS
        )

    @router.get("/listening/{stream}", response_class=HTMLResponse)
    async def matches(
        request: Request,
        who: Who,
        stream: str,
        q: Annotated[str, Query(max_length=200)] = "",
        lang: Annotated[str, Query(max_length=35)] = "",
        since_day: Annotated[str, Query(alias="since", max_length=10)] = "",
        until_day: Annotated[str, Query(alias="until", max_length=10)] = "",
        before: Annotated[str, Query(max_length=200)] = "",
    ) -> HTMLResponse:
        """One stream's stored matches, newest first: searched, filtered, a page at a
        time (`before` is the API's cursor to the next)."""
        found_stream = await listening.stream(who.session, stream)
        language = lang.strip() if LANGUAGE.fullmatch(lang.strip()) else ""
        since, until = day_of(since_day), day_of(until_day)
        chosen: dict[str, Any] = {
            "q": q.strip(), "lang": language, **day_range(since, until, who.zone),
            "before": before,
        }  # fmt: skip
        params = {k: v for k, v in chosen.items() if v not in ("", None)}
        found = await listening.matches(who.session, stream, {**params, "limit": PAGE_SHOWN})
        kept = {"q": q.strip(), "lang": language, "since": since or "", "until": until or ""}
        kept = {k: str(v) for k, v in kept.items() if v}
        older = urlencode({**kept, "before": found["next"]}) if found.get("next") else None
        return render(
            request, "listening_stream.html", who, active="listening", stream=found_stream,
            matches=[shown_match(m) for m in found["matches"]], q=q, lang=language,
            since=since, until=until, paged=bool(before), newest=urlencode(kept), older=older,
            bad_lang=bool(lang.strip()) and not language,
        )  # fmt: skip

    # ------------------------------------------------------------------ the inbox

    async def inbox_page(
        request: Request, who: Person, filters: Mapping[str, str], before: str = "",
        **context: Any,
    ) -> HTMLResponse:  # fmt: skip
        """The inbox's items, newest first, filtered, a page at a time; with what an
        action said (`said`) or why it failed (`error`)."""
        status = context.pop("status", 200)
        params = {k: v for k, v in {**filters, "before": before}.items() if v}
        found, team = await asyncio.gather(
            listening.inbox(who.session, {**params, "limit": PAGE_SHOWN}),
            listening.people(who.session),
        )
        kept = {k: v for k, v in filters.items() if v}
        older = urlencode({**kept, "before": found["next"]}) if found.get("next") else None
        return render(
            request, "listening_inbox.html", who, active="inbox", filters=filters,
            items=[shown_match(i) for i in found["items"]], unread=found.get("unread", 0),
            team=team, emails={str(p.get("id")): p.get("email") for p in team},
            back=urlencode(kept), older=older, states=INBOX_STATES, paged=bool(before),
            status=status, **context,
        )  # fmt: skip

    @router.get("/inbox", response_class=HTMLResponse)
    async def inbox(
        request: Request,
        who: Who,
        state: Annotated[InboxState, Query()] = "open",
        assignee: Annotated[str, Query(max_length=255)] = "",
        tag: Annotated[str, Query(max_length=100)] = "",
        before: Annotated[str, Query(max_length=20, pattern="^[0-9]*$")] = "",
        done: Annotated[str, Query(max_length=32)] = "",
    ) -> HTMLResponse:
        filters = {"state": state, "assignee": assignee, "tag": tag.strip()}
        return await inbox_page(request, who, filters, before, said=INBOX_DONE.get(done))

    async def acting(
        request: Request, who: Person, back: str, act: Awaitable[Any], said: str
    ) -> Response:
        """Do `act`, then back to the inbox as it was shown; or the inbox with why the
        API refused."""
        try:
            await act
        except Problem as problem:
            return await inbox_page(request, who, inbox_filters(back), error=str(problem),
                                    status=problem.status)  # fmt: skip
        return back_to_inbox(back, said)

    @router.post("/inbox/{item}/assign", response_class=HTMLResponse)
    async def assign(
        request: Request, who: Posting, item: str,
        assignee: Annotated[str, Form(max_length=255)] = "", back: Text = "",
    ) -> Response:  # fmt: skip
        change = listening.change(who.session, item, {"assignee": assignee or None})
        return await acting(request, who, back, change, "assigned")

    @router.post("/inbox/{item}/tags", response_class=HTMLResponse)
    async def tag_item(
        request: Request, who: Posting, item: str, tags: Text = "", back: Text = ""
    ) -> Response:
        change = listening.change(who.session, item, {"tags": tags_of(tags)})
        return await acting(request, who, back, change, "tagged")

    @router.post("/inbox/{item}/done", response_class=HTMLResponse)
    async def mark_done(
        request: Request, who: Posting, item: str, done: Annotated[bool, Form()] = True,
        back: Text = "",
    ) -> Response:  # fmt: skip
        change = listening.change(who.session, item, {"done": done, "read": True})
        return await acting(request, who, back, change, "done" if done else "reopened")

    @router.post("/inbox/{item}/read", response_class=HTMLResponse)
    async def mark_read(request: Request, who: Posting, item: str, back: Text = "") -> Response:
        change = listening.change(who.session, item, {"read": True})
        return await acting(request, who, back, change, "read")

    @router.post("/inbox/{item}/reply", response_class=HTMLResponse)
    async def reply(
        request: Request,
        who: Posting,
        item: str,
        text: Annotated[str, Form(min_length=1, max_length=10_000)],
        back: Text = "",
    ) -> Response:
        """A reply to the item's post, through publishing (and its approvals); the item
        is read then."""
        try:
            made = await listening.reply(who.session, item, text)
            await listening.change(who.session, item, {"read": True})
        except Problem as problem:
            kept = {"item": item, "text": text}  # the reply, as written, to send again
            return await inbox_page(request, who, inbox_filters(back), error=str(problem),
                                    status=problem.status, replying=kept)  # fmt: skip
        return back_to_inbox(back, "in-review" if made.get("in_review") else "replied")

    @router.get("/inbox/live")
    async def inbox_live(request: Request) -> Response:
        """The inbox's unread count and new items as they come: the platform's stream,
        passed on."""
        session = request.cookies.get(SESSION)
        if not session:
            raise HTTPException(401, "sign in first")
        last = request.headers.get("last-event-id", "")
        return await passed_on(streams, session, "/v1/inbox/live", last)

    return router


INBOX_DONE: Final = {
    "assigned": "Assigned.", "tagged": "Tags saved.", "done": "Marked done.",
    "reopened": "Opened again.", "read": "Marked read.",
    "replied": "Reply sent: publishing posts it as an answer to that post.",
    "in-review": "Reply written: it waits for approval before it goes out (see Approvals).",
}  # fmt: skip
"""What the inbox says after an action (`?done=`)."""
INBOX_STATES: Final = {"open": "Open", "done": "Done", "all": "All"}
InboxState = Literal["open", "done", "all"]


def inbox_filters(back: str) -> dict[str, str]:
    """The inbox's filters in the query it was shown with; the others left out."""
    found = {"state": "open", "assignee": "", "tag": ""}
    for name, value in parse_qsl(back)[:10]:
        if name in found and (name != "state" or value in INBOX_STATES):
            found[name] = value[:255]
    return found


def back_to_inbox(back: str, said: str) -> RedirectResponse:
    """The inbox with the filters it was shown with (only `/inbox`, never elsewhere)."""
    kept = [(k, v) for k, v in inbox_filters(back).items() if v]
    return RedirectResponse(f"/inbox?{urlencode([*kept, ('done', said)])}", status_code=303)
