"""The web app's pages: server-rendered (Jinja2, autoescaped), htmx for partial updates,
served by the `web` role behind the gateway at `/`.

Sessions: signing in asks the platform's API for a session token, kept in an HttpOnly,
SameSite=Lax cookie (Secure when the request came over TLS). Every page asks the API
with it, so what one tenant's person sees is what its API answers, and nothing else.
A session that the API no longer accepts (expired, signed out everywhere) sends the
person back to the sign-in page. Every form carries a CSRF token (`hubbub.ui.csrf`); a
POST without the right one is refused (403) before anything is done.

Pages answer with a Content-Security-Policy that allows scripts, styles and everything
else only from the app itself: no inline script, nothing from another site.
"""

# No `from __future__ import annotations` here: the routes' dependencies are closures
# (`Who`, `Posting`), which FastAPI can only see in annotations evaluated at definition.
import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubbub.kernel.clock import Clock
from hubbub.ui import calendar as calendar_pages
from hubbub.ui import csrf, formatting, review
from hubbub.ui.ports import PlatformApi, Unreachable
from hubbub.ui.service import (
    BUCKETS,
    REPORTS,
    SERIES,
    Composed,
    Console,
    KnownPeople,
    Problem,
    Window,
)

if TYPE_CHECKING:
    from hubbub.ui.notifications import EventStreams

SESSION = "hubbub_session"
DRAFT_ID = re.compile(r"[0-9a-f]{16}")
MAX_IMAGE_BYTES = 16 * 1024 * 1024
"""The largest image the web app takes in; each channel's own limit is the API's to say."""
LIVE_EVERY_S = 2.0
LIVE_FOR_S = 60.0
"""A live stream ends after this; the page's htmx reconnects at once. No stream outlives
a page that went away unnoticed (behind a proxy) by more than this."""
ROLES = ("viewer", "editor", "admin", "owner")
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}

Visibility = Literal["public", "unlisted", "private", "direct"]
"""Who sees a Mastodon post."""


@dataclass(frozen=True)
class Person:
    """Who a page is for: their session and what the API says about them."""

    session: str
    me: dict[str, Any]
    csrf: str

    @property
    def zone(self) -> str:
        return str(self.me.get("time_zone") or "UTC")

    @property
    def locale(self) -> str:
        return str(self.me.get("locale") or "en")

    @property
    def operator(self) -> bool:
        return bool(self.me.get("operator"))


class SignInFirst(Exception):
    """No valid session: the person is sent to the sign-in page."""


class OperatorHome(Exception):
    """The operator asked for a workspace's page: it has none; its pages are elsewhere."""


@dataclass(frozen=True)
class Access:
    """Who asks for a workspace's page, for the routers of the pages (`member`); and,
    for a POST, that its CSRF token is the one the person's pages carry (`posting`)."""

    people: KnownPeople
    key: csrf.CsrfKey

    async def member(self, request: Request) -> Person:
        """A workspace's person; no session is sent to sign in, the operator home."""
        session = request.cookies.get(SESSION)
        me = await self.people.of(session) if session else None
        if session is None or me is None:
            raise SignInFirst
        who = Person(session, me, self.key.for_session(session))
        if who.operator:
            raise OperatorHome
        return who

    async def posting(self, request: Request) -> Person:
        who = await self.member(request)
        form = await request.form()
        sent = request.headers.get(csrf.HEADER) or str(form.get(csrf.FIELD) or "")
        if not self.key.valid(who.session, sent, None):
            raise HTTPException(403, "this form is stale or forged: reload the page")
        return who


def _templates() -> Jinja2Templates:
    env = Environment(
        loader=PackageLoader("hubbub.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    return Jinja2Templates(env=env)


def _public_base(request: Request) -> str:
    """Where people reach the app: the gateway's scheme and host, as it forwarded them."""
    host = request.headers.get("x-forwarded-host") or request.url.netloc
    scheme = request.headers.get("x-forwarded-proto") or request.url.scheme
    return f"{scheme}://{host}"


def _secure(request: Request) -> bool:
    return request.headers.get("x-forwarded-proto", request.url.scheme) == "https"


def _set_session(response: Response, request: Request, token: str, max_age_s: int) -> None:
    response.set_cookie(
        SESSION, token, max_age=max_age_s, httponly=True, samesite="lax", secure=_secure(request),
        path="/",
    )  # fmt: skip


def build_router(
    console: Console,
    people: KnownPeople,
    key: csrf.CsrfKey,
    session_max_age_s: int,
    operator_max_age_s: int,
) -> APIRouter:
    router = APIRouter()
    templates = _templates()

    def page(request: Request, name: str, person: Person | None, **context: Any) -> HTMLResponse:
        zone = person.zone if person else "UTC"
        locale = person.locale if person else "en"
        status = context.pop("status", 200)
        return templates.TemplateResponse(
            request,
            name,
            {
                "person": person,
                "number": lambda n: formatting.number(n, locale),
                "moment": formatting.Moments(zone, locale),  # one a page: rows share days
                **context,
            },
            status_code=status,
        )

    async def person(request: Request) -> Person:
        session = request.cookies.get(SESSION)
        if not session:
            raise SignInFirst
        me = await people.of(session)
        if me is None:
            raise SignInFirst
        return Person(session, me, key.for_session(session))

    async def member(request: Request) -> Person:
        """A workspace's person (the operator is sent to its own pages)."""
        who = await person(request)
        if who.operator:
            raise OperatorHome
        return who

    async def the_operator(request: Request) -> Person:
        """The operator; anyone else is answered as if the page did not exist."""
        who = await person(request)
        if not who.operator:
            raise HTTPException(404, "not found")
        return who

    async def checked(request: Request) -> Person:
        """The person, for a POST: its CSRF token must be the one its pages carry."""
        who = await person(request)
        form = await request.form()
        sent = request.headers.get(csrf.HEADER) or str(form.get(csrf.FIELD) or "")
        if not key.valid(who.session, sent, None):
            raise HTTPException(403, "this form is stale or forged: reload the page")
        return who

    async def signed_out_form(request: Request) -> None:
        """The double-submit check of the forms shown before signing in."""
        form = await request.form()
        if not key.valid(None, str(form.get(csrf.FIELD) or ""), request.cookies.get(csrf.COOKIE)):
            raise HTTPException(403, "this form is stale or forged: reload the page")

    def with_fresh_csrf(request: Request, name: str, **context: Any) -> HTMLResponse:
        token = request.cookies.get(csrf.COOKIE) or csrf.fresh()
        response = page(request, name, None, csrf_token=token, **context)
        response.set_cookie(
            csrf.COOKIE, token, httponly=True, samesite="strict", secure=_secure(request)
        )
        return response

    async def operator_posting(request: Request) -> Person:
        who = await checked(request)
        if not who.operator:
            raise HTTPException(404, "not found")
        return who

    Who = Annotated[Person, Depends(member)]
    Posting = Annotated[Person, Depends(checked)]
    Operator = Annotated[Person, Depends(the_operator)]
    OperatorPosting = Annotated[Person, Depends(operator_posting)]
    router.include_router(
        review.routes(console.api, review.PageKit(
            page, with_fresh_csrf, member, checked, signed_out_form, _public_base))
    )  # fmt: skip
    router.include_router(calendar_pages.build_router(console.api, member, checked, page))

    @router.get("/signin", response_class=HTMLResponse)
    async def signin_page(request: Request) -> HTMLResponse:
        return with_fresh_csrf(request, "signin.html")

    @router.post("/signin", dependencies=[Depends(signed_out_form)])
    async def signin(
        request: Request, email: Annotated[str, Form()], password: Annotated[str, Form()]
    ) -> Response:
        try:
            token = await console.sign_in(email, password)
        except Problem as problem:
            status = problem.status if problem.status in (401, 422, 429) else 400
            return with_fresh_csrf(
                request, "signin.html", error=str(problem), email=email, status=status
            )
        response = RedirectResponse("/", status_code=303)
        _set_session(response, request, token, session_max_age_s)
        return response

    @router.post("/signout")
    async def signout(request: Request, who: Posting) -> Response:
        people.forget(who.session)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION, path="/")
        return response

    @router.post("/signout/everywhere")
    async def signout_everywhere(request: Request, who: Posting) -> Response:
        await console.sign_out_everywhere(who.session)
        people.forget(who.session)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION, path="/")
        return response

    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request, who: Who) -> HTMLResponse:
        today = datetime.now(UTC).date()
        window = Window.last_days(1, who.zone, today)

        async def top() -> tuple[list[Any], str | None]:
            try:
                return await console.top(who.session, "hashtags", window, 10), None
            except Problem as error:
                return [], str(error)

        async def watched_pages() -> list[dict[str, Any]]:
            watched = [w["target"] for w in await console.watches(who.session)
                       if w["kind"] == "page"][:20]  # fmt: skip
            return list(
                await asyncio.gather(
                    *(console.page_summary(who.session, p, window) for p in watched)
                )
            )

        # The page's API calls at once: it takes as long as the slowest, not their sum.
        tenant, progress, alerts, pages, (hashtags, problem) = await asyncio.gather(
            console.tenant(who.session), console.status(who.session),
            console.alerts(who.session, 5),
            watched_pages(), top(),
        )  # fmt: skip
        return page(
            request, "overview.html", who, tenant=tenant, hashtags=hashtags, problem=problem,
            window=window, progress=progress, alerts=alerts, pages=pages,
        )  # fmt: skip

    @router.get("/live")
    async def live(request: Request, who: Who) -> StreamingResponse:
        """Server-sent events for the overview: the ingest rate and the roles' health and
        lag, and the alerts, every `LIVE_EVERY_S`, as HTML fragments (autoescaped, like
        every page), until the page goes away."""
        health_html = templates.env.get_template("health.html")
        alerts_html = templates.env.get_template("alerts_list.html")
        zone, locale = who.zone, who.locale

        moment = formatting.Moments(zone, locale)

        def number(value: float | int) -> str:
            return formatting.number(value, locale)

        async def events() -> AsyncIterator[str]:
            ends = asyncio.get_running_loop().time() + LIVE_FOR_S
            while asyncio.get_running_loop().time() < ends and not await request.is_disconnected():
                progress = await console.status(who.session)
                try:
                    alerts = await console.alerts(who.session)
                except (Unreachable, Problem):
                    alerts = []
                for name, html in (
                    ("health", health_html.render(progress=progress, number=number)),
                    ("alerts", alerts_html.render(alerts=alerts, moment=moment)),
                ):
                    yield f"event: {name}\ndata: {html.replace(chr(10), '')}\n\n"
                await asyncio.sleep(LIVE_EVERY_S)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-store"}
        )

    async def alerts_page(request: Request, who: Person, **context: Any) -> HTMLResponse:
        watches, alerts, webhooks, deliveries = await asyncio.gather(
            console.watches(who.session), console.alerts(who.session),
            console.webhooks(who.session), console.deliveries(who.session),
        )  # fmt: skip
        return page(
            request, "alerts.html", who, watches=watches, alerts=alerts, webhooks=webhooks,
            deliveries=deliveries, **context,
        )  # fmt: skip

    async def on_alerts(request: Request, who: Person, act: Awaitable[Any]) -> Response:
        """Do `act`, then back to the alerts page; or that page with why it failed."""
        try:
            await act
        except Problem as problem:
            return await alerts_page(request, who, error=str(problem), status=problem.status)
        return RedirectResponse("/alerts", status_code=303)

    @router.get("/alerts", response_class=HTMLResponse)
    async def alerts(request: Request, who: Who) -> HTMLResponse:
        return await alerts_page(request, who)

    @router.post("/alerts/watches", response_class=HTMLResponse)
    async def add_watch(
        request: Request,
        who: Posting,
        kind: Annotated[str, Form()],
        target: Annotated[str, Form()],
        sensitivity: Annotated[str, Form()] = "medium",
    ) -> Response:
        return await on_alerts(
            request, who, console.add_watch(who.session, kind, target, sensitivity)
        )

    @router.post("/alerts/watches/{watch}/sensitivity", response_class=HTMLResponse)
    async def change_watch(
        request: Request, who: Posting, watch: str, sensitivity: Annotated[str, Form()]
    ) -> Response:
        return await on_alerts(request, who, console.change_watch(who.session, watch, sensitivity))

    @router.post("/alerts/watches/{watch}/remove", response_class=HTMLResponse)
    async def remove_watch(request: Request, who: Posting, watch: str) -> Response:
        return await on_alerts(request, who, console.remove_watch(who.session, watch))

    @router.post("/alerts/webhooks", response_class=HTMLResponse)
    async def add_webhook(
        request: Request, who: Posting, url: Annotated[str, Form(max_length=2048)]
    ) -> Response:
        try:
            made = await console.add_webhook(who.session, url)
        except Problem as problem:
            return await alerts_page(request, who, error=str(problem), status=problem.status)
        return await alerts_page(request, who, new_webhook=made)

    @router.post("/alerts/webhooks/{webhook}/remove", response_class=HTMLResponse)
    async def remove_webhook(request: Request, who: Posting, webhook: str) -> Response:
        return await on_alerts(request, who, console.remove_webhook(who.session, webhook))

    async def publish_page(request: Request, who: Person, **context: Any) -> HTMLResponse:
        channels, jobs, drafts = await asyncio.gather(
            console.channels(who.session), console.jobs(who.session), drafts_of(who.session)
        )
        for job in jobs:
            job["due"] = _instant(job["due_us"])
        for draft in drafts:
            draft["updated"] = _instant(draft.get("updated_us") or 0)
        names = {c["id"]: f"{c['account']} ({c['network']})" for c in channels}
        context.setdefault("chosen", [c["id"] for c in channels][:1])
        context.setdefault("draft_id", secrets.token_hex(8))
        return page(
            request, "publish.html", who, channels=channels, jobs=jobs, names=names,
            drafts=drafts, **context,
        )  # fmt: skip

    async def drafts_of(session: str) -> list[dict[str, Any]]:
        """The person's drafts; none when they cannot be asked (the page still composes)."""
        try:
            return [dict(d) for d in await console.drafts(session)]
        except Problem:
            return []

    async def reopened(session: str, draft: str) -> dict[str, Any]:
        """What the composer shows for a draft: its text, parts, images, channels, time."""
        found = await console.draft(session, _draft_id(draft))
        images = await asyncio.gather(*(image_of(session, m) for m in found.get("media") or []))
        return {
            "text": found.get("text") or "", "thread": list(found.get("thread") or []),
            "images": images, "at": found.get("at") or "", "draft_id": found["id"],
            "draft_kept": True, "chosen": list(found.get("channels") or []),
            "language": found.get("language") or "", "spoiler": found.get("spoiler") or "",
            "visibility": found.get("visibility") or "public",
        }  # fmt: skip

    async def image_of(session: str, media: str) -> dict[str, Any]:
        try:
            return await console.media(session, media)
        except Problem:
            return {"id": media, "alt": None, "missing": True}

    @router.get("/publish", response_class=HTMLResponse)
    async def publish(
        request: Request,
        who: Who,
        scheduled: Annotated[int | None, Query(ge=0, le=100)] = None,
        done: Annotated[str | None, Query()] = None,
        draft: Annotated[str | None, Query(max_length=16)] = None,
    ) -> HTMLResponse:
        changed = {"retry": "The post was scheduled again, now.",
                   "cancel": "The post was cancelled.",
                   "discard": "The draft was discarded."}.get(done or "")  # fmt: skip
        if draft is None:
            return await publish_page(request, who, scheduled=scheduled, changed=changed)
        try:
            composed = await reopened(who.session, draft)
        except Problem as problem:
            return await publish_page(request, who, error=str(problem), status=problem.status)
        return await publish_page(request, who, **composed)

    @router.post("/publish", response_class=HTMLResponse)
    async def schedule(
        request: Request,
        who: Posting,
        text: Annotated[str, Form(max_length=10_000)],
        channel: Annotated[list[str] | None, Form()] = None,
        at: Annotated[str, Form(max_length=40)] = "",
        thread: Annotated[list[str] | None, Form(max_length=25)] = None,
        media: Annotated[list[str] | None, Form(max_length=20)] = None,
        draft: Annotated[str, Form(max_length=16)] = "",
        language: Annotated[str, Form(max_length=16)] = "",
        spoiler: Annotated[str, Form(max_length=1000)] = "",
        visibility: Annotated[Visibility, Form()] = "public",
    ) -> Response:
        post = Composed(
            text, channel or [], at or None, thread or [], media or [], draft or None,
            language.strip() or None, spoiler.strip() or None, visibility,
        )  # fmt: skip
        try:
            if not post.channels:
                raise Problem(422, "Choose at least one channel.")
            made = await console.schedule(who.session, post)
        except Problem as problem:
            images = await asyncio.gather(*(image_of(who.session, m) for m in post.media))
            return await publish_page(
                request, who, error=str(problem), status=problem.status, text=text,
                chosen=post.channels, at=at, thread=post.thread, images=images,
                draft_id=draft or secrets.token_hex(8), draft_kept=bool(draft),
                language=language, spoiler=spoiler, visibility=visibility,
            )  # fmt: skip
        # Post/Redirect/Get: reloading the page it lands on schedules nothing again.
        if made.get("review"):  # under a workflow: to the post, where its review is
            return RedirectResponse(review.post_page(made["post"]), status_code=303)
        return RedirectResponse(f"/publish?scheduled={len(made['jobs'])}", status_code=303)

    @router.put("/publish/drafts/{draft}")
    async def save_draft(request: Request, who: Posting, draft: str, body: DraftBody) -> Response:
        """The composer keeps what is typed as it is typed (the page's script, with the
        CSRF token in its header); answers the API's answer, as JSON."""
        return await as_json(console.save_draft(who.session, _draft_id(draft), body.sent()))

    @router.post("/publish/drafts/{draft}/discard")
    async def discard_draft(request: Request, who: Posting, draft: str) -> Response:
        try:
            await console.discard_draft(who.session, _draft_id(draft))
        except Problem as problem:
            return await publish_page(request, who, error=str(problem), status=problem.status)
        return RedirectResponse("/publish?done=discard", status_code=303)

    @router.post("/publish/media")
    async def upload_media(request: Request, who: Posting) -> Response:
        """An image for the post, from the composer's script (a form: `file`, `alt`):
        kept by the API, which answers its id."""
        form = await request.form()  # parsed already, for its CSRF token
        image, alt = form.get("file"), form.get("alt")
        if not isinstance(image, UploadFile):
            return JSONResponse({"detail": "choose an image"}, status_code=422)
        try:
            data = await image.read(MAX_IMAGE_BYTES + 1)
        finally:
            await form.close()
        if len(data) > MAX_IMAGE_BYTES:
            detail = f"an image is at most {MAX_IMAGE_BYTES:,} bytes"
            return JSONResponse({"detail": detail}, status_code=413)
        said = alt.strip() if isinstance(alt, str) else ""
        return await as_json(console.add_media(who.session, data, said or None), 201)

    @router.get("/publish/posts/{post}", response_class=HTMLResponse)
    async def post_history(request: Request, who: Who, post: str) -> HTMLResponse:
        """A post: what it says (each part, its images and their alt text), where it
        goes, and each of its jobs' changes of state, oldest first."""
        found, history, channels = await asyncio.gather(
            console.post(who.session, post), console.history(who.session, post),
            console.channels(who.session),
        )  # fmt: skip
        names = {c["id"]: f"{c['account']} ({c['network']})" for c in channels}
        for change in history:
            change["when"] = _instant(change["at_us"])
        return page(
            request, "post.html", who, post=found, history=history, names=names,
        )  # fmt: skip

    @router.post("/publish/jobs/{job}/{action}", response_class=HTMLResponse)
    async def job_action(request: Request, who: Posting, job: str, action: str) -> Response:
        if action not in ("retry", "cancel"):
            raise HTTPException(404, "not found")
        try:
            await console.job_action(who.session, job, action)
        except Problem as problem:
            return await publish_page(request, who, error=str(problem), status=problem.status)
        return RedirectResponse(f"/publish?done={action}", status_code=303)

    @router.get("/mentions", response_class=HTMLResponse)
    async def mentions(request: Request, who: Who) -> HTMLResponse:
        return page(request, "mentions.html", who)

    @router.get("/mentions/suggest")
    async def suggest(
        request: Request, q: Annotated[str, Query(min_length=1, max_length=100)]
    ) -> Response:
        """Asked at each keystroke: straight to the API with the session, which the
        gateway checks (no `/v1/me` first: one hop less on the path that must be fast)."""
        session = request.cookies.get(SESSION)
        if not session:
            raise HTTPException(401, "sign in first")
        try:
            body = await console.suggest(session, q)
        except Problem as problem:
            raise HTTPException(problem.status, str(problem)) from problem
        return Response(body, media_type="application/json")

    def report_window(who: Person, start: date | None, end: date | None) -> Window:
        today = datetime.now(UTC).date()
        default = Window.last_days(7, who.zone, today)
        return Window(start or default.start, end or default.end, who.zone)

    @router.get("/reports", response_class=HTMLResponse)
    async def reports(
        request: Request,
        who: Who,
        what: Annotated[str, Query()] = "hashtags",
        start: Annotated[date | None, Query()] = None,
        end: Annotated[date | None, Query()] = None,
    ) -> HTMLResponse:
        if what not in REPORTS:
            what = "hashtags"
        window = report_window(who, start, end)
        try:
            rows, problem = await console.top(who.session, what, window), None
        except Problem as error:
            rows, problem = [], str(error)
        return page(
            request, "reports.html", who, reports=REPORTS, what=what, window=window, rows=rows,
            problem=problem,
        )  # fmt: skip

    @router.get("/reports/series", response_class=HTMLResponse)
    async def series(
        request: Request,
        who: Who,
        kind: Annotated[str, Query()] = "hashtag",
        key: Annotated[str, Query(max_length=300)] = "",
        bucket: Annotated[str, Query()] = "hour",
        start: Annotated[date | None, Query()] = None,
        end: Annotated[date | None, Query()] = None,
    ) -> HTMLResponse:
        kind = kind if kind in SERIES else "hashtag"
        bucket = bucket if bucket in BUCKETS else "hour"
        window = report_window(who, start, end)
        points: list[Any] = []
        problem = None
        if key:
            try:
                points = await console.series(who.session, kind, key, bucket, window)
            except Problem as error:
                problem = str(error)
        chart = {
            "zone": who.zone,
            "label": f"{kind} {key}",
            "x": [datetime.fromisoformat(p["bucket"]).timestamp() for p in points],
            "y": [p["value"] for p in points],
        }
        return page(
            request, "series.html", who, kinds=SERIES, buckets=BUCKETS, kind=kind, key=key,
            bucket=bucket, window=window, points=points, chart=chart, problem=problem,
        )  # fmt: skip

    @router.get("/reports/series.csv")
    async def series_csv(
        who: Who,
        kind: Annotated[str, Query()],
        key: Annotated[str, Query(min_length=1, max_length=300)],
        bucket: Annotated[str, Query()] = "hour",
        start: Annotated[date | None, Query()] = None,
        end: Annotated[date | None, Query()] = None,
    ) -> Response:
        if kind not in SERIES or bucket not in BUCKETS:
            raise HTTPException(404, "no such series")
        window = report_window(who, start, end)
        try:
            body = await console.series(who.session, kind, key, bucket, window, csv=True)
        except Problem as problem:
            raise HTTPException(problem.status, str(problem)) from problem
        name = f"series-{kind}-{window.start}-{window.end}.csv"
        return _csv(body, name)

    @router.get("/reports/page", response_class=HTMLResponse)
    async def page_report(
        request: Request,
        who: Who,
        page_id: Annotated[str, Query(alias="page", max_length=300)] = "",
        start: Annotated[date | None, Query()] = None,
        end: Annotated[date | None, Query()] = None,
    ) -> HTMLResponse:
        window = report_window(who, start, end)
        summary, problem = None, None
        if page_id:
            try:
                summary = await console.page_summary(who.session, page_id, window)
            except Problem as error:
                problem = str(error)
        return page(
            request, "page_summary.html", who, page_id=page_id, window=window, summary=summary,
            problem=problem,
        )  # fmt: skip

    @router.get("/reports/page.csv")
    async def page_report_csv(
        who: Who,
        page_id: Annotated[str, Query(alias="page", min_length=1, max_length=300)],
        start: Annotated[date | None, Query()] = None,
        end: Annotated[date | None, Query()] = None,
    ) -> Response:
        window = report_window(who, start, end)
        try:
            body = await console.page_summary_csv(who.session, page_id, window)
        except Problem as problem:
            raise HTTPException(problem.status, str(problem)) from problem
        return _csv(body, f"page-{window.start}-{window.end}.csv")

    @router.get("/reports/export.csv")
    async def export(
        who: Who,
        what: Annotated[str, Query()] = "hashtags",
        start: Annotated[date | None, Query()] = None,
        end: Annotated[date | None, Query()] = None,
    ) -> Response:
        if what not in REPORTS:
            raise HTTPException(404, f"no report {what!r}")
        window = report_window(who, start, end)
        try:
            body = await console.top_csv(who.session, what, window)
        except Problem as problem:
            raise HTTPException(problem.status, str(problem)) from problem
        name = f"top-{what}-{window.start}-{window.end}.csv"
        return _csv(body, name)

    async def settings_page(request: Request, who: Person, **context: Any) -> HTMLResponse:
        admin = who.me.get("role") in ("admin", "owner")

        async def none() -> list[Any]:
            return []

        token = who.session
        users, invites, keys, connectors, flags = await asyncio.gather(
            console.users(token) if admin else none(),
            console.invites(token) if admin else none(),
            console.keys(token) if admin else none(),
            console.connectors(token) if admin else none(),
            console.flags(token),
        )
        return page(
            request, "settings.html", who, admin=admin, users=users, invites=invites, keys=keys,
            connectors=connectors, flags=flags, roles=ROLES, **context,
        )  # fmt: skip

    @router.get("/settings", response_class=HTMLResponse)
    async def settings(request: Request, who: Who) -> HTMLResponse:
        return await settings_page(request, who)

    async def acting(
        request: Request, who: Person, act: Callable[[], Awaitable[dict[str, Any]]],
        shown: Callable[..., Awaitable[HTMLResponse]] = settings_page,
    ) -> HTMLResponse:  # fmt: skip
        """Do `act`, then show the page (`shown`) with what it did, or with why it failed."""
        try:
            done = await act()
        except Problem as problem:
            return await shown(request, who, error=str(problem), status=problem.status)
        return await shown(request, who, **done)

    @router.post("/settings/invites", response_class=HTMLResponse)
    async def invite(
        request: Request,
        who: Posting,
        email: Annotated[str, Form()],
        role: Annotated[str, Form()] = "viewer",
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            made = await console.invite(who.session, email, role)
            link = f"{_public_base(request)}/invite/{made['token']}"
            return {"invited": made, "link": link}

        return await acting(request, who, act)

    @router.post("/settings/users/{user}/role", response_class=HTMLResponse)
    async def set_role(
        request: Request, who: Posting, user: str, role: Annotated[str, Form()]
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            return {"role_set": await console.set_role(who.session, user, role)}

        return await acting(request, who, act)

    @router.post("/settings/users/{user}/remove", response_class=HTMLResponse)
    async def remove_user(request: Request, who: Posting, user: str) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            return {"removed": await console.remove_user(who.session, user)}

        return await acting(request, who, act)

    @router.post("/settings/keys", response_class=HTMLResponse)
    async def create_key(
        request: Request,
        who: Posting,
        name: Annotated[str, Form()],
        role: Annotated[str, Form()] = "viewer",
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            return {"new_key": await console.create_key(who.session, name, role)}

        return await acting(request, who, act)

    @router.post("/settings/keys/{key_id}/revoke", response_class=HTMLResponse)
    async def revoke_key(request: Request, who: Posting, key_id: str) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            await console.revoke_key(who.session, key_id)
            return {"revoked": key_id}

        return await acting(request, who, act)

    @router.post("/settings/connectors", response_class=HTMLResponse)
    async def keep_connector_token(
        request: Request,
        who: Posting,
        account: Annotated[str, Form(max_length=255)],
        token: Annotated[str, Form(max_length=4096)],
        connector: Annotated[str, Form()] = "mastodon",
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            await console.keep_connector_token(who.session, connector, account, token)
            return {"kept": f"{connector} {account}"}

        return await acting(request, who, act)

    @router.post("/settings/connectors/{connector}/{account}/forget", response_class=HTMLResponse)
    async def forget_connector_token(
        request: Request, who: Posting, connector: str, account: str
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            await console.forget_connector_token(who.session, connector, account)
            return {"forgotten": f"{connector} {account}"}

        return await acting(request, who, act)

    @router.post("/settings/flags", response_class=HTMLResponse)
    async def set_flag(
        request: Request,
        who: Posting,
        name: Annotated[str, Form(max_length=100)],
        percent: Annotated[float, Form(ge=0, le=100)] = 100.0,
        description: Annotated[str, Form(max_length=1000)] = "",
        enabled: Annotated[str | None, Form()] = None,
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            await console.set_flag(who.session, name, enabled is not None, percent, description)
            return {"flag_set": name}

        return await acting(request, who, act)

    @router.post("/settings/flags/{name}/remove", response_class=HTMLResponse)
    async def remove_flag(request: Request, who: Posting, name: str) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            await console.remove_flag(who.session, name)
            return {"flag_removed": name}

        return await acting(request, who, act)

    @router.post("/settings/profile", response_class=HTMLResponse)
    async def profile(
        request: Request,
        who: Posting,
        time_zone: Annotated[str, Form()],
        locale: Annotated[str, Form()],
    ) -> Response:
        try:
            await console.set_profile(who.session, time_zone, locale)
        except Problem as problem:
            return await settings_page(request, who, error=str(problem), status=problem.status)
        people.forget(who.session)
        return RedirectResponse("/settings", status_code=303)

    @router.get("/invite/{link}", response_class=HTMLResponse)
    async def invitation(request: Request, link: str) -> HTMLResponse:
        try:
            found = await console.invitation(link)
        except Problem as problem:
            return page(request, "error.html", None, message=str(problem), status=404)
        return with_fresh_csrf(request, "invite.html", invitation=found, link=link)

    @router.post("/invite/{link}", dependencies=[Depends(signed_out_form)])
    async def accept(request: Request, link: str, password: Annotated[str, Form()]) -> Response:
        try:
            token = await console.accept(link, password)
        except Problem as problem:
            try:
                found = await console.invitation(link)
            except Problem:
                return page(request, "error.html", None, message=str(problem), status=404)
            return with_fresh_csrf(
                request, "invite.html", invitation=found, link=link, error=str(problem),
                status=problem.status,
            )  # fmt: skip
        response = RedirectResponse("/", status_code=303)
        _set_session(response, request, token, session_max_age_s)
        return response

    @router.get("/signin/operator", response_class=HTMLResponse)
    async def operator_signin_page(request: Request) -> HTMLResponse:
        return with_fresh_csrf(request, "operator_signin.html")

    @router.post("/signin/operator", dependencies=[Depends(signed_out_form)])
    async def operator_signin(request: Request, token: Annotated[str, Form()]) -> Response:
        try:
            session = await console.sign_in_operator(token)
        except Problem as problem:
            status = problem.status if problem.status in (401, 422, 429) else 400
            return with_fresh_csrf(
                request, "operator_signin.html", error=str(problem), status=status
            )
        response = RedirectResponse("/operator", status_code=303)
        _set_session(response, request, session, operator_max_age_s)
        return response

    async def operator_page(request: Request, who: Person, **context: Any) -> HTMLResponse:
        token = who.session
        tenants, flags, routes, progress = await asyncio.gather(
            console.tenants(token), console.flags(token, platform=True), console.routes(token),
            console.status(token),
        )  # fmt: skip
        return page(
            request, "operator.html", who, tenants=tenants, flags=flags, routes=routes,
            progress=progress, **context,
        )  # fmt: skip

    @router.get("/operator", response_class=HTMLResponse)
    async def operator_home(request: Request, who: Operator) -> HTMLResponse:
        return await operator_page(request, who)

    async def operating(
        request: Request, who: Person, act: Callable[[], Awaitable[dict[str, Any]]]
    ) -> HTMLResponse:
        return await acting(request, who, act, operator_page)

    @router.post("/operator/tenants", response_class=HTMLResponse)
    async def create_tenant(
        request: Request, who: OperatorPosting, name: Annotated[str, Form(max_length=100)]
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            return {"new_tenant": await console.create_tenant(who.session, name)}

        return await operating(request, who, act)

    @router.post("/operator/flags", response_class=HTMLResponse)
    async def set_platform_flag(
        request: Request,
        who: OperatorPosting,
        name: Annotated[str, Form(max_length=100)],
        percent: Annotated[float, Form(ge=0, le=100)] = 100.0,
        description: Annotated[str, Form(max_length=1000)] = "",
        enabled: Annotated[str | None, Form()] = None,
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            on = enabled is not None
            await console.set_flag(who.session, name, on, percent, description, platform=True)
            return {"flag_set": name}

        return await operating(request, who, act)

    @router.post("/operator/flags/{name}/remove", response_class=HTMLResponse)
    async def remove_platform_flag(
        request: Request, who: OperatorPosting, name: str
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            await console.remove_flag(who.session, name, platform=True)
            return {"flag_removed": name}

        return await operating(request, who, act)

    @router.post("/operator/routes", response_class=HTMLResponse)
    async def set_route(
        request: Request,
        who: OperatorPosting,
        prefix: Annotated[str, Form(max_length=200)],
        target: Annotated[str, Form()],
        percent: Annotated[float, Form(ge=0, le=100)] = 0.0,
        shadow: Annotated[str | None, Form()] = None,
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            await console.set_route(who.session, prefix, target, percent, shadow is not None)
            return {"route_set": prefix}

        return await operating(request, who, act)

    @router.post("/operator/routes/remove", response_class=HTMLResponse)
    async def remove_route(
        request: Request, who: OperatorPosting, prefix: Annotated[str, Form(max_length=200)]
    ) -> HTMLResponse:
        async def act() -> dict[str, Any]:
            await console.remove_route(who.session, prefix)
            return {"route_removed": prefix}

        return await operating(request, who, act)

    return router


def _instant(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


def _draft_id(draft: str) -> str:
    """A draft's id as the composer chooses it (16 lowercase hex digits), or a 404."""
    if not DRAFT_ID.fullmatch(draft):
        raise HTTPException(404, "no such draft")
    return draft


async def as_json(act: Awaitable[Any], status: int = 200) -> Response:
    """What the API answered, for a page's script: JSON, or `{"detail"}` and its status."""
    try:
        return JSONResponse(await act, status_code=status)
    except Problem as problem:
        return JSONResponse({"detail": str(problem)}, status_code=problem.status)


class DraftBody(BaseModel):
    """What the composer holds, as it saves it."""

    text: str = Field("", max_length=10_000)
    channels: list[str] = Field(default_factory=list, max_length=50)
    thread: list[Annotated[str, Field(max_length=10_000)]] = Field(
        default_factory=list, max_length=25
    )
    media: list[Annotated[str, Field(max_length=32)]] = Field(default_factory=list, max_length=20)
    at: str | None = Field(None, max_length=40)
    language: str | None = Field(None, max_length=16)
    spoiler: str | None = Field(None, max_length=1000)
    visibility: Visibility = "public"

    def sent(self) -> dict[str, Any]:
        return self.model_dump()


def _csv(body: bytes, name: str) -> Response:
    """A CSV download, named `name`."""
    headers = {"content-disposition": f'attachment; filename="{name}"'}
    return Response(body, media_type="text/csv", headers=headers)


class SecurityHeaders:
    """Every answer of the web app gets `SECURITY_HEADERS`."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self._headers]
            await send(message)

        await self._app(scope, receive, with_headers)


def create_app(
    api: PlatformApi,
    secret: bytes,
    *,
    clock: Clock,
    session_max_age_s: int,
    operator_max_age_s: int,
    person_ttl_s: float,
    streams: "EventStreams | None" = None,
) -> ASGIApp:
    """The web app: its pages, its static files, and the answers to errors; with
    `streams`, the notifications' pages and their live stream too."""
    console = Console(api)
    app = FastAPI(title="Hubbub web app", docs_url=None, redoc_url=None, openapi_url=None)
    people = KnownPeople(console, clock, person_ttl_s)
    app.include_router(
        build_router(console, people, csrf.CsrfKey(secret), session_max_age_s, operator_max_age_s)
    )
    if streams is not None:
        from hubbub.ui import listening, notifications  # they build on this module's sessions

        csrf_key = csrf.CsrfKey(secret)
        app.include_router(notifications.build_router(api, streams, people, csrf_key))
        app.include_router(listening.build_router(api, streams, people, csrf_key))
    static = resources.files("hubbub.ui") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    templates = _templates()

    @app.exception_handler(OperatorHome)
    async def operator_home(request: Request, _: OperatorHome) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"hx-redirect": "/operator"})
        return RedirectResponse("/operator", status_code=303)

    @app.exception_handler(SignInFirst)
    async def sign_in_first(request: Request, _: SignInFirst) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"hx-redirect": "/signin"})
        return RedirectResponse("/signin", status_code=303)

    @app.exception_handler(Unreachable)
    async def unreachable(request: Request, error: Unreachable) -> Response:
        return templates.TemplateResponse(
            request, "error.html", {"person": None, "message": "The platform is not answering;"
                                     " try again in a moment."}, status_code=503,
        )  # fmt: skip

    @app.exception_handler(Problem)
    async def problem(request: Request, error: Problem) -> Response:
        if error.status == 401:  # the session ended since its person was last asked
            return await sign_in_first(request, SignInFirst())
        return templates.TemplateResponse(
            request, "error.html", {"person": None, "message": str(error)},
            status_code=error.status if 400 <= error.status < 600 else 502,
        )  # fmt: skip

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus exposition: the process's own series (memory, CPU, open files), so
        the role is watched like every other (the gateway answers `/metrics` itself, so
        this is reached on the role's own port only)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return SecurityHeaders(app)
