"""The web app's side of approvals: each post's review (its steps, who decided what and
why, who it waits on), its comments, its audit trail and the links made for external
reviewers; the approvals inbox (`/approvals`); the tenant's workflows
(`/settings/workflows`, admins and owners); and the external reviewer's page
(`/review/<token>`), which needs no account.

Everything is asked of the platform's API through the gateway (`PlatformApi`), with the
person's session; the external reviewer's page asks the gateway's public path
(`/v1/public/reviews/<token>`) with no session at all, the token being its only
credential. Its forms are protected from cross-site forgery like the sign-in form's (a
random token both in a cookie and in the form), since there is no session to derive one
from.

`routes` is called by `hubbub.ui.api.build_router`, which hands it what every page shares
(`PageKit`): how a page is rendered, and the dependencies that name the person.
"""

# No `from __future__ import annotations` here: the routes' dependencies are closures
# (`Who`, `Posting`), which FastAPI can only see in annotations evaluated at definition.
import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, Protocol
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from hubbub.ui.ports import Answer, PlatformApi
from hubbub.ui.service import Problem

MAX_STEPS: Final = 12
"""The most steps a workflow's form carries."""
BLANK_STEPS: Final = 2
"""Empty steps offered after a workflow's own, to add to it."""
NEW_WORKFLOW_STEPS: Final = 3
ROLES: Final = ("viewer", "editor", "admin", "owner")
LINK_HOURS: Final = 72
DECISIONS: Final = {"approve", "reject", "request_changes"}
EXTERNAL_DECISIONS: Final = {"approve", "request_changes"}
ACTIONS: Final = {
    "created": "created", "edited": "edited (a new version)", "submitted": "sent for approval",
    "approved": "approved", "rejected": "rejected", "changes_requested": "asked for changes",
    "commented": "commented", "rescheduled": "rescheduled", "scheduled": "scheduled",
    "published": "published", "failed": "failed", "missed": "missed",
    "cancelled": "cancelled", "link_created": "made an external reviewer's link",
}  # fmt: skip
"""Each audit trail action, as a person reads it."""
STATES: Final = {
    "in_review": "in review", "changes_requested": "changes requested",
    "rejected": "rejected", "approved": "approved",
}  # fmt: skip

Decision = Literal["approve", "reject", "request_changes"]


class Someone(Protocol):
    """A signed-in person, as `hubbub.ui.api` names them."""

    @property
    def session(self) -> str: ...

    @property
    def me(self) -> dict[str, Any]: ...

    @property
    def csrf(self) -> str: ...


@dataclass(frozen=True)
class PageKit:
    """What the approval pages share with every page of the web app.

    `render(request, template, person, **context)` renders a page for a person (a
    `status` in the context is the answer's); `signed_out(request, template, **context)`
    renders a page for nobody signed in, with a fresh double-submit CSRF token
    (`csrf_token`); `member` and `posting` are the dependencies naming the person of a
    page and of a form (the latter with its CSRF token checked); `signed_out_form` checks
    a signed-out form's token; `public_base(request)` is the app's own address."""

    render: Callable[..., HTMLResponse]
    signed_out: Callable[..., HTMLResponse]
    member: Callable[[Request], Awaitable[Any]]
    posting: Callable[[Request], Awaitable[Any]]
    signed_out_form: Callable[[Request], Awaitable[None]]
    public_base: Callable[[Request], str]


def _part(value: str) -> str:
    """`value` as one path segment: what a person sent never reaches another route."""
    if value in ("", ".", ".."):
        raise Problem(404, "not found")
    return quote(value, safe="")


def _checked(answer: Answer) -> Any:
    if not answer.ok:
        raise Problem(answer.status, answer.detail())
    return answer.json()


@dataclass(frozen=True)
class Reviews:
    """What the approval pages ask of the platform. `token` is the person's session;
    the external reviewer's calls take the link's token instead, and no session."""

    api: PlatformApi

    async def review(self, token: str, post: str) -> dict[str, Any] | None:
        """The post's review; None when no workflow applies to it."""
        answer = await self.api.call("GET", f"/v1/posts/{_part(post)}/review", token=token)
        if answer.status == 404:
            return None
        return dict(_checked(answer))

    async def post(self, token: str, post: str) -> dict[str, Any]:
        return dict(_checked(await self.api.call("GET", f"/v1/posts/{_part(post)}", token=token)))

    async def decide(
        self, token: str, post: str, decision: Decision, reason: str, version: int | None
    ) -> dict[str, Any]:
        body = {"decision": decision, "reason": reason or None, "version": version}
        path = f"/v1/posts/{_part(post)}/review"
        return dict(_checked(await self.api.call("POST", path, token=token, json=body)))

    async def edit(self, token: str, post: str, body: dict[str, Any]) -> dict[str, Any]:
        """Save `body` as the post's new version."""
        path = f"/v1/posts/{_part(post)}"
        return dict(_checked(await self.api.call("PUT", path, token=token, json=body)))

    async def comments(self, token: str, post: str) -> list[Any]:
        path = f"/v1/posts/{_part(post)}/comments"
        return list(_checked(await self.api.call("GET", path, token=token)))

    async def comment(self, token: str, post: str, text: str, parent: str | None) -> None:
        path = f"/v1/posts/{_part(post)}/comments"
        body = {"text": text, "parent": parent}
        _checked(await self.api.call("POST", path, token=token, json=body))

    async def audit(self, token: str, post: str) -> list[Any]:
        path = f"/v1/posts/{_part(post)}/audit"
        return list(_checked(await self.api.call("GET", path, token=token)))

    async def audit_csv(self, token: str, post: str) -> bytes:
        answer = await self.api.call("GET", f"/v1/posts/{_part(post)}/audit.csv", token=token)
        if not answer.ok:
            raise Problem(answer.status, answer.detail())
        return answer.body

    async def make_link(self, token: str, post: str, name: str, hours: int) -> dict[str, Any]:
        """A link for an external reviewer: its token, path and end."""
        path = f"/v1/posts/{_part(post)}/links"
        body = {"name": name, "hours": hours}
        return dict(_checked(await self.api.call("POST", path, token=token, json=body)))

    async def end_links(self, token: str, post: str) -> None:
        """End every link made to the post so far."""
        _checked(await self.api.call("DELETE", f"/v1/posts/{_part(post)}/links", token=token))

    async def waiting(self, token: str, mine: bool) -> list[Any]:
        """The reviews waiting on the caller (`mine`), or all the tenant's open ones."""
        params = {"waiting": "me"} if mine else None
        return list(_checked(await self.api.call("GET", "/v1/reviews", token=token, params=params)))

    async def workflows(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/workflows", token=token)))

    async def save_workflow(
        self, token: str, workflow: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Make a workflow (`workflow` None), or replace one."""
        if workflow is None:
            answer = await self.api.call("POST", "/v1/workflows", token=token, json=body)
        else:
            path = f"/v1/workflows/{_part(workflow)}"
            answer = await self.api.call("PUT", path, token=token, json=body)
        return dict(_checked(answer))

    async def remove_workflow(self, token: str, workflow: str) -> None:
        path = f"/v1/workflows/{_part(workflow)}"
        _checked(await self.api.call("DELETE", path, token=token))

    async def people(self, token: str) -> list[Any]:
        """The tenant's people (id, email, role), which every member may read; none when
        the platform does not answer them."""
        answer = await self.api.call("GET", "/v1/people", token=token)
        return list(answer.json()) if answer.ok else []

    async def channels(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/channels", token=token)))

    async def shared(self, link: str) -> dict[str, Any]:
        """What an external reviewer's link shows: its post, review and comments."""
        return dict(_checked(await self.api.call("GET", f"/v1/public/reviews/{_part(link)}")))

    async def decide_shared(
        self, link: str, decision: Decision, reason: str, version: int | None
    ) -> None:
        body = {"decision": decision, "reason": reason or None, "version": version}
        path = f"/v1/public/reviews/{_part(link)}"
        _checked(await self.api.call("POST", path, json=body))

    async def comment_shared(self, link: str, text: str) -> None:
        path = f"/v1/public/reviews/{_part(link)}/comments"
        _checked(await self.api.call("POST", path, json={"text": text}))


class FormValues(Protocol):
    """A submitted form (starlette's `FormData`)."""

    def getlist(self, key: str) -> list[Any]: ...


def _text(form: FormValues, key: str) -> str:
    found = form.getlist(key)
    return found[0].strip() if found and isinstance(found[0], str) else ""


def _texts(form: FormValues, key: str) -> list[str]:
    return [v.strip() for v in form.getlist(key) if isinstance(v, str) and v.strip()]


def workflow_from_form(form: FormValues) -> dict[str, Any]:
    """A workflow as `POST /v1/workflows` takes it, from the workflow form's fields:
    `name`; `channel` and `role` (the channels and author roles it applies to); and for
    each step `i` in order, `step-i-name`, `step-i-users`, `step-i-roles`, `step-i-mode`
    (`any` or `all`) and `step-i-external`. A step left wholly blank is no step; one with
    approvers but no name, or a workflow with no name or no step, is a `Problem` (422)."""
    name = _text(form, "name")
    if not name:
        raise Problem(422, "Name the workflow.")
    steps = [step for i in range(MAX_STEPS) if (step := _step_from_form(form, i)) is not None]
    if not steps:
        raise Problem(422, "A workflow needs at least one step: name it and say who approves.")
    return {
        "name": name, "steps": steps, "channels": _texts(form, "channel"),
        "roles": [r for r in _texts(form, "role") if r in ROLES],
    }  # fmt: skip


def _step_from_form(form: FormValues, index: int) -> dict[str, Any] | None:
    prefix = f"step-{index}-"
    name = _text(form, prefix + "name")
    users = _texts(form, prefix + "users")
    roles = [r for r in _texts(form, prefix + "roles") if r in ROLES]
    external = bool(_text(form, prefix + "external"))
    if not (name or users or roles or external):
        return None
    if not name:
        raise Problem(422, f"Step {index + 1} needs a name.")
    if not (users or roles or external):
        raise Problem(422, f"Step {index + 1} ({name}) needs someone to approve it.")
    mode = "all" if _text(form, prefix + "mode") == "all" else "any"
    return {"name": name, "users": users, "roles": roles, "mode": mode, "external": external}


def edited(post: Mapping[str, Any], text: str, parts: Sequence[str]) -> dict[str, Any]:
    """The body of `PUT /v1/posts/{id}` that saves `post` with a new `text` and thread
    `parts`, keeping everything else as it is: its images, per-channel variants,
    language, content warning, visibility and tags. A part left blank is removed (with
    its images); a part's images stay with it."""
    thread = list(post.get("thread") or [])
    kept = [
        {"text": said, "media": _media_ids(thread[i].get("media") if i < len(thread) else [])}
        for i, said in enumerate(parts)
        if said.strip()
    ]
    body = {
        "text": text, "thread": kept, "media": _media_ids(post.get("media")),
        "variants": post.get("variants") or {}, "language": post.get("language"),
        "spoiler": post.get("spoiler"), "visibility": post.get("visibility") or "public",
    }  # fmt: skip
    if post.get("tags") is not None:
        body["tags"] = list(post["tags"])
    return body


def _media_ids(media: Any) -> list[str]:
    return [m["id"] if isinstance(m, dict) else str(m) for m in media or []]


def names_of(people: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """How the pages name each person: their email, by user id."""
    return {str(p["id"]): str(p["email"]) for p in people if "id" in p and "email" in p}


def who_is(key: str | None, names: Mapping[str, str], me: str | None = None) -> str:
    """A person, role or reviewer named in a review, as a person reads it: `user:<id>`
    or a bare user id by their email ("you" for `me`; a teammate and the start of their id
    when their email is not known), `role:<name>` as anyone with the
    role, `link:<name>` and `external` as an external reviewer; nobody (the platform's
    own doing) as Hubbub."""
    if not key:
        return "Hubbub"  # the platform itself: a job made or sent
    if key.startswith("role:"):
        return f"anyone who is {key.removeprefix('role:')}"
    if key == "external":
        return "an external reviewer (by link)"
    if key.startswith("link:"):
        return f"{key.removeprefix('link:')} (external reviewer)"
    user = key.removeprefix("user:")
    if me is not None and user == me:
        return "you"
    # Someone no longer of the tenant is named by the start of their id.
    return names.get(user) or (f"teammate {user[:8]}" if key.startswith("user:") else key)


def inbox_entry(review: Mapping[str, Any]) -> dict[str, Any]:
    """An approvals inbox row from a review of `GET /v1/reviews`: its post's id and the
    start of its text (which the API answers as `excerpt` or `text`, or with the post
    itself under `post`), its state, the step it is at, its author and when it is due."""
    post = review.get("post")
    if isinstance(post, Mapping):
        post_id, text = str(post.get("id") or ""), str(post.get("text") or "")
    else:
        post_id, text = str(post or ""), ""
    text = str(review.get("excerpt") or review.get("text") or text)
    steps = list(review.get("steps") or [])
    at = review.get("step")
    step = steps[at] if isinstance(at, int) and 0 <= at < len(steps) else {}
    return {
        "post": post_id, "excerpt": text if len(text) <= 140 else text[:139] + "…",
        "state": review.get("state"), "step": step.get("name"), "author": review.get("author"),
        "due": review.get("due"), "version": review.get("version"),
    }  # fmt: skip


def approvers_of(step: Mapping[str, Any], names: Mapping[str, str], me: str) -> list[str]:
    """Who may approve a step, as a person reads it."""
    found = [who_is(f"user:{user}", names, me) for user in step.get("users") or []]
    found += [who_is(f"role:{role}", names) for role in step.get("roles") or []]
    if step.get("external"):
        found.append(who_is("external", names))
    return found


def _hours(value: str) -> int:
    try:
        hours = int(value)
    except ValueError:
        raise Problem(422, "Say for how many hours the link works (1 to 720).") from None
    if not 1 <= hours <= 720:
        raise Problem(422, "A link works for 1 to 720 hours.")
    return hours


def _decision(value: str, allowed: set[str]) -> Decision:
    if value not in allowed:
        raise HTTPException(422, "no such decision")
    return value  # type: ignore[return-value]


def _reason_needed(decision: Decision, reason: str) -> None:
    if decision != "approve" and not reason.strip():
        raise Problem(422, "Say why: a reason is needed to reject or to ask for changes.")


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request")) and not request.headers.get("hx-boosted")


def post_page(post: str) -> str:
    """The address of the post's page."""
    return f"/publish/posts/{_part(post)}"


def routes(api: PlatformApi, kit: PageKit) -> APIRouter:
    """The approval pages' routes."""
    router = APIRouter()
    reviews = Reviews(api)
    Who = Annotated[Any, Depends(kit.member)]
    Posting = Annotated[Any, Depends(kit.posting)]

    async def panel(request: Request, who: Someone, post: str, **context: Any) -> HTMLResponse:
        """The post's review panel: alone when the post's page asks for it (htmx), or
        as a page of its own."""
        shown = await _panel_context(reviews, who, post)
        shown["link_hours"] = LINK_HOURS
        template = "review_panel.html" if _is_htmx(request) else "review_page.html"
        return kit.render(request, template, who, **shown, **context)

    async def acting(
        request: Request, who: Someone, post: str, act: Callable[[], Awaitable[Any]]
    ) -> Response:
        """Do `act`, then back to the post's page; or the panel, with why it failed."""
        try:
            await act()
        except Problem as problem:
            return await panel(request, who, post, error=str(problem), status=problem.status)
        return RedirectResponse(f"{post_page(post)}#review", status_code=303)

    @router.get("/publish/posts/{post}/review", response_class=HTMLResponse)
    async def review_panel(request: Request, who: Who, post: str) -> HTMLResponse:
        return await panel(request, who, post)

    @router.post("/publish/posts/{post}/review", response_class=HTMLResponse)
    async def decide(
        request: Request,
        who: Posting,
        post: str,
        decision: Annotated[str, Form()],
        reason: Annotated[str, Form(max_length=2000)] = "",
        version: Annotated[int | None, Form()] = None,
    ) -> Response:
        chosen = _decision(decision, DECISIONS)

        async def act() -> None:
            _reason_needed(chosen, reason)
            await reviews.decide(who.session, post, chosen, reason.strip(), version)

        return await acting(request, who, post, act)

    @router.post("/publish/posts/{post}/edit", response_class=HTMLResponse)
    async def edit(
        request: Request,
        who: Posting,
        post: str,
        text: Annotated[str, Form(max_length=10_000)],
        part: Annotated[list[str] | None, Form(max_length=25)] = None,
    ) -> Response:
        async def act() -> None:
            if not text.strip():
                raise Problem(422, "A post needs its text.")
            found = await reviews.post(who.session, post)
            await reviews.edit(who.session, post, edited(found, text, part or []))

        return await acting(request, who, post, act)

    @router.post("/publish/posts/{post}/comments", response_class=HTMLResponse)
    async def comment(
        request: Request,
        who: Posting,
        post: str,
        text: Annotated[str, Form(max_length=5000)],
        parent: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        async def act() -> None:
            if not text.strip():
                raise Problem(422, "Write the comment first.")
            await reviews.comment(who.session, post, text.strip(), parent or None)

        return await acting(request, who, post, act)

    @router.post("/publish/posts/{post}/links", response_class=HTMLResponse)
    async def make_link(
        request: Request,
        who: Posting,
        post: str,
        name: Annotated[str, Form(max_length=200)],
        hours: Annotated[str, Form(max_length=8)] = str(LINK_HOURS),
    ) -> HTMLResponse:
        try:
            if not name.strip():
                raise Problem(422, "Name the reviewer the link is for.")
            made = await reviews.make_link(who.session, post, name.strip(), _hours(hours))
        except Problem as problem:
            return await panel(request, who, post, error=str(problem), status=problem.status)
        link = f"{kit.public_base(request)}/review/{_part(str(made['token']))}"
        return await panel(request, who, post, link=link, link_made=made, reviewer=name.strip())

    @router.post("/publish/posts/{post}/links/end", response_class=HTMLResponse)
    async def end_links(request: Request, who: Posting, post: str) -> HTMLResponse:
        """End every link made to the post so far: each then shows that it does not work."""
        try:
            await reviews.end_links(who.session, post)
        except Problem as problem:
            return await panel(request, who, post, error=str(problem), status=problem.status)
        return await panel(request, who, post, links_ended=True)

    @router.get("/publish/posts/{post}/audit.csv")
    async def audit_csv(who: Who, post: str) -> Response:
        try:
            body = await reviews.audit_csv(who.session, post)
        except Problem as problem:
            raise HTTPException(problem.status, str(problem)) from problem
        name = f"audit-{quote(post, safe='')[:64]}.csv"
        headers = {"content-disposition": f'attachment; filename="{name}"'}
        return Response(body, media_type="text/csv", headers=headers)

    @router.get("/approvals", response_class=HTMLResponse)
    async def approvals(request: Request, who: Who) -> HTMLResponse:
        mine, everyone, people = await asyncio.gather(
            reviews.waiting(who.session, mine=True), reviews.waiting(who.session, mine=False),
            reviews.people(who.session),
        )  # fmt: skip
        names = names_of(people)
        return kit.render(
            request, "approvals.html", who, states=STATES, mine=[inbox_entry(r) for r in mine],
            everyone=[inbox_entry(r) for r in everyone],
            who_is=lambda key: who_is(key, names, str(who.me.get("id"))),
        )  # fmt: skip

    _workflow_routes(router, reviews, kit)
    _shared_routes(router, reviews, kit)
    return router


async def _panel_context(reviews: Reviews, who: Someone, post: str) -> dict[str, Any]:
    """All the review panel shows: the post, its review (None without a workflow), its
    comments, its audit trail, and how to name the people in them."""
    found, review, comments, audit, people = await asyncio.gather(
        reviews.post(who.session, post), reviews.review(who.session, post),
        reviews.comments(who.session, post), reviews.audit(who.session, post),
        reviews.people(who.session),
    )  # fmt: skip
    names = names_of(people)
    me = str(who.me.get("id") or "")
    if review is not None:
        review["waiting"] = [
            who_is(_waiting(key), names, me) for key in review.get("waiting_on") or []
        ]
        for step in review.get("steps") or []:
            step["approvers"] = approvers_of(step, names, me)
    return {
        "post": found, "post_id": post, "review": review, "comments": comments,
        "audit": audit, "actions": ACTIONS, "states": STATES,
        "who_is": lambda key: who_is(key, names, me),
        "mine": bool(review) and str(review.get("author")) == f"user:{me}",
    }  # fmt: skip


def _waiting(key: Any) -> str:
    """Whom a review waits on, as `who_is` names them: user ids come bare."""
    said = str(key)
    return said if said == "external" or ":" in said else f"user:{said}"


def _admin(who: Someone) -> bool:
    return who.me.get("role") in ("admin", "owner")


def _workflow_routes(router: APIRouter, reviews: Reviews, kit: PageKit) -> None:
    """`/settings/workflows`: the tenant's approval workflows (admins and owners)."""
    Who = Annotated[Any, Depends(kit.member)]
    Posting = Annotated[Any, Depends(kit.posting)]

    async def workflows_page(request: Request, who: Someone, **context: Any) -> HTMLResponse:
        if not _admin(who):
            return kit.render(
                request, "error.html", who, status=403,
                message="Only the workspace's admins and owners manage its workflows.",
            )  # fmt: skip
        workflows, people, channels = await asyncio.gather(
            reviews.workflows(who.session), reviews.people(who.session),
            reviews.channels(who.session),
        )  # fmt: skip
        names = names_of(people)
        return kit.render(
            request, "workflows.html", who, workflows=workflows, people=people,
            approvers=lambda step: approvers_of(step, names, ""),
            channels=channels, roles=ROLES, blank_steps=BLANK_STEPS,
            new_steps=NEW_WORKFLOW_STEPS, **context,
        )  # fmt: skip

    async def saving(request: Request, who: Someone, act: Callable[[], Awaitable[Any]]) -> Response:
        try:
            await act()
        except Problem as problem:
            return await workflows_page(request, who, error=str(problem), status=problem.status)
        return RedirectResponse("/settings/workflows", status_code=303)

    @router.get("/settings/workflows", response_class=HTMLResponse)
    async def workflows(request: Request, who: Who) -> HTMLResponse:
        return await workflows_page(request, who)

    @router.post("/settings/workflows", response_class=HTMLResponse)
    async def create(request: Request, who: Posting) -> Response:
        form = await request.form()

        async def act() -> None:
            await reviews.save_workflow(who.session, None, workflow_from_form(form))

        return await saving(request, who, act)

    @router.post("/settings/workflows/{workflow}", response_class=HTMLResponse)
    async def update(request: Request, who: Posting, workflow: str) -> Response:
        form = await request.form()

        async def act() -> None:
            await reviews.save_workflow(who.session, workflow, workflow_from_form(form))

        return await saving(request, who, act)

    @router.post("/settings/workflows/{workflow}/delete", response_class=HTMLResponse)
    async def delete(request: Request, who: Posting, workflow: str) -> Response:
        return await saving(request, who, lambda: reviews.remove_workflow(who.session, workflow))


def _shared_routes(router: APIRouter, reviews: Reviews, kit: PageKit) -> None:
    """`/review/<token>`: an external reviewer's page, signed out. The token is the only
    credential; a forged, tampered or expired one shows that the link does not work."""

    async def shared_page(request: Request, link: str, **context: Any) -> HTMLResponse:
        try:
            found = await reviews.shared(link)
        except Problem:
            return kit.render(
                request, "error.html", None, status=404,
                message="This review link does not work: it may have expired. Ask for a new one.",
            )  # fmt: skip
        return kit.signed_out(
            request, "external_review.html", link=link, shared=found, states=STATES,
            actions=ACTIONS, **context,
        )  # fmt: skip

    async def acting(request: Request, link: str, done: str, act: Awaitable[None]) -> Response:
        try:
            await act
        except Problem as problem:
            if problem.status == 404:
                return await shared_page(request, link)
            return await shared_page(request, link, error=str(problem), status=problem.status)
        return RedirectResponse(f"/review/{_part(link)}?done={done}", status_code=303)

    @router.get("/review/{link}", response_class=HTMLResponse)
    async def shared(request: Request, link: str, done: str = "") -> HTMLResponse:
        said = {"approve": "Thank you: your approval is recorded.",
                "request_changes": "Thank you: the team is asked for changes.",
                "comment": "Your comment is posted."}.get(done)  # fmt: skip
        return await shared_page(request, link, done=said)

    @router.post("/review/{link}", dependencies=[Depends(kit.signed_out_form)])
    async def decide(
        request: Request,
        link: str,
        decision: Annotated[str, Form()],
        reason: Annotated[str, Form(max_length=2000)] = "",
        version: Annotated[int | None, Form()] = None,
    ) -> Response:
        chosen = _decision(decision, EXTERNAL_DECISIONS)

        async def act() -> None:
            _reason_needed(chosen, reason)
            await reviews.decide_shared(link, chosen, reason.strip(), version)

        return await acting(request, link, chosen, act())

    @router.post("/review/{link}/comments", dependencies=[Depends(kit.signed_out_form)])
    async def comment(
        request: Request, link: str, text: Annotated[str, Form(max_length=5000)]
    ) -> Response:
        async def act() -> None:
            if not text.strip():
                raise Problem(422, "Write the comment first.")
            await reviews.comment_shared(link, text.strip())

        return await acting(request, link, "comment", act())
