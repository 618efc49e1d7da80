"""`/v1/workflows`, `/v1/reviews`, and a post's review, comments, audit trail and review
links (`/v1/posts/{post}/…`); and, for an external reviewer without an account,
`/v1/public/reviews/{token}`.

Who acts is who the gateway names, signed: the key (`X-Hubbub-Key`: `user:<id>` for a
person signed in) and its role (`X-Hubbub-Role`). Only admins and owners manage
workflows; nobody decides on their own post; a step is decided only by the people it
names (or of the roles it names).

The public routes trust nothing but the token in their path: the gateway forwards
`/v1/public/*` without an account, and a forged, tampered or expired token is a 404, as
one that never was. A link shows one post, and lets its reviewer comment and decide the
post's external step, nothing else.
"""

# No `from __future__ import annotations` here: the routes' dependency on the service
# is a closure (`Service`), which FastAPI can only see in annotations evaluated at once.
import asyncio
import csv
import io
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from hubbub.publishing.api import (
    actor_of,
    answering,
    post_view,
    review_view,
    tenant_of,
    workflow_view,
)
from hubbub.publishing.api import iso as _iso
from hubbub.publishing.ports import (
    Actor,
    AuditEntry,
    Comment,
    DecisionKind,
    Post,
    Review,
    Step,
)
from hubbub.publishing.service import MAX_COMMENT, MAX_LINK_HOURS, Publishing

TOKEN: Final = r"^[A-Za-z0-9_=-]{40,1024}$"
AUDIT_COLUMNS: Final = ("at", "action", "actor", "version", "detail")
Tenant = Annotated[str, Depends(tenant_of)]
Token = Annotated[str, Path(pattern=TOKEN, description="The link's token, as it was given.")]


PUBLIC_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"description": "The gateway's: a public path is plain segments (no odd escapes)."},
    404: {"description": "No such link: its token was not made here, was changed, or ended."},
    429: {"description": "The gateway's: too many requests from this address; wait."},
}
Caller = Annotated[Actor, Depends(actor_of)]
WorkflowId = Annotated[str, Path(max_length=32, description="As the workflow was answered.")]
Name = Annotated[str, Field(min_length=1, max_length=80)]


class StepBody(BaseModel):
    name: Name
    users: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=50)
    roles: list[Literal["owner", "admin", "editor", "viewer"]] = Field(default_factory=list)
    mode: Literal["any", "all"] = "any"
    external: bool = Field(False, description="Approved (also) by an external reviewer's link.")


class WorkflowBody(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    steps: list[StepBody] = Field(min_length=1, max_length=10)
    channels: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list, max_length=100, description="It applies to posts to these."
    )
    roles: list[Literal["owner", "admin", "editor", "viewer"]] = Field(
        default_factory=list, description="It applies to every post of authors of these roles."
    )


class DecisionBody(BaseModel):
    decision: Literal["approve", "reject", "request_changes"]
    reason: str | None = Field(None, max_length=2000)
    version: int | None = Field(None, ge=1, description="The version decided on: 409 if stale.")


class CommentBody(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_COMMENT)
    parent: str | None = Field(None, max_length=32, description="The comment it answers.")


class LinkBody(BaseModel):
    name: Name = Field(description="The reviewer's name, shown with what they do.")
    hours: float = Field(72, gt=0, le=MAX_LINK_HOURS)


KINDS: Final[dict[str, DecisionKind]] = {
    "approve": "approved", "reject": "rejected", "request_changes": "changes_requested"
}  # fmt: skip


def public_review_view(review: Review) -> dict[str, Any]:
    """A review as an external reviewer sees it: where it stands, and what external
    reviewers decided; never the team's people, roles, reasons or channels."""
    return {
        "post": review.post, "version": review.version, "state": review.state,
        "step": review.steps[review.step].name,
        "decisions": [
            {"who": d.who, "decision": d.decision, "reason": d.reason, "at": _iso(d.at_us)}
            for d in review.decisions if d.who.startswith("link:")
        ],
    }  # fmt: skip


def public_post_view(post: Post) -> dict[str, Any]:
    """A post as an external reviewer sees it: what it says and shows, not who wrote
    it nor its per-channel variants."""
    view = post_view(post)
    return {key: view[key] for key in ("id", "version", "text", "media", "thread", "language",
                                       "spoiler", "visibility")}  # fmt: skip


def comments_view(comments: list[Comment]) -> list[dict[str, Any]]:
    """Comments as a thread: each with its replies, oldest first."""
    views: dict[str, dict[str, Any]] = {
        c.id: {"id": c.id, "parent": c.parent, "author": c.author, "text": c.text,
               "version": c.version, "created": _iso(c.created_us), "replies": []}
        for c in comments
    }  # fmt: skip
    top: list[dict[str, Any]] = []
    for comment in comments:
        parent = views.get(comment.parent or "")
        replies: list[dict[str, Any]] = parent["replies"] if parent else top
        replies.append(views[comment.id])
    return top


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    return {"at": _iso(entry.at_us), "action": entry.action, "actor": entry.actor,
            "version": entry.version, "detail": entry.detail}  # fmt: skip


def audit_csv(entries: list[AuditEntry]) -> str:
    """The audit trail as CSV; a cell that a spreadsheet would run as a formula is
    written as text (a leading quote)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(AUDIT_COLUMNS)
    for entry in entries:
        row = audit_view(entry)
        writer.writerow([_cell(row[column]) for column in AUDIT_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def build_router(service_of: Callable[[], Any]) -> APIRouter:
    """The routes; `service_of()` answers (awaitably) the started `Publishing`."""
    router = APIRouter(tags=["approvals"])

    async def service() -> Publishing:
        found: Publishing = await service_of()
        return found

    Service = Annotated[Publishing, Depends(service)]

    @router.get("/v1/workflows")
    async def workflows(tenant: Tenant, publishing: Service) -> list[dict[str, Any]]:
        """The tenant's approval workflows, by name."""
        found = await asyncio.to_thread(publishing.workflows, tenant)
        return [workflow_view(one) for one in found]

    @router.post("/v1/workflows", status_code=201)
    async def add_workflow(
        tenant: Tenant, actor: Caller, publishing: Service, body: WorkflowBody
    ) -> dict[str, Any]:
        """A workflow: named steps in order, each with its approvers (people, roles, or
        an external reviewer) and whether any one or all are needed; it applies to posts
        to its channels, and to every post of authors of its roles. Admins only."""
        with answering():
            made = await publishing.put_workflow(
                tenant, actor, body.name, _steps(body), body.channels, body.roles
            )
        return workflow_view(made)

    @router.put("/v1/workflows/{workflow}")
    async def put_workflow(
        tenant: Tenant, actor: Caller, publishing: Service, body: WorkflowBody, workflow: WorkflowId
    ) -> dict[str, Any]:
        """Replace a workflow; posts in review keep the steps they started with."""
        with answering():
            kept = await publishing.put_workflow(
                tenant, actor, body.name, _steps(body), body.channels, body.roles, workflow
            )
        return workflow_view(kept)

    @router.delete("/v1/workflows/{workflow}", status_code=204)
    async def delete_workflow(
        tenant: Tenant, actor: Caller, publishing: Service, workflow: WorkflowId
    ) -> Response:
        with answering():
            await publishing.delete_workflow(tenant, actor, workflow)
        return Response(status_code=204)

    @router.get("/v1/reviews")
    async def reviews(
        tenant: Tenant, actor: Caller, publishing: Service,
        waiting: Annotated[Literal["me"] | None, Query(description="Only those waiting on me.")]
        = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """The tenant's open reviews (in review, waiting for changes, rejected), newest
        first; `waiting=me`: those whose current step waits on the caller."""
        found = await asyncio.to_thread(
            publishing.reviews, tenant, actor if waiting == "me" else None
        )
        posts = await asyncio.gather(*(
            asyncio.to_thread(publishing.post, tenant, one.post) for one in found
        ))  # fmt: skip
        left = await asyncio.to_thread(lambda: [publishing.departed(one) for one in found])
        return [
            {**review_view(one, actor, gone), "text": post.text[:200], "tags": list(post.tags)}
            for one, post, gone in zip(found, posts, left, strict=True)
        ]

    @router.get("/v1/posts/{post}/review")
    async def review(
        tenant: Tenant, actor: Caller, publishing: Service, post: str
    ) -> dict[str, Any]:
        """The post's review: its steps, who decided what and why, who it waits on."""
        found = await asyncio.to_thread(publishing.review, tenant, post)
        if found is None:
            raise HTTPException(404, f"post {post!r} has no review")
        return review_view(found, actor, await asyncio.to_thread(publishing.departed, found))

    @router.post("/v1/posts/{post}/review")
    async def decide(
        tenant: Tenant, actor: Caller, publishing: Service, post: str, body: DecisionBody
    ) -> dict[str, Any]:
        """Approve, reject (with a reason) or ask for changes (with a reason) on the
        post's current step. The last approval schedules the approved version."""
        with answering():
            after = await publishing.decide(
                tenant,
                actor,
                post,
                KINDS[body.decision],
                body.reason,
                body.version,
            )
        return review_view(after, actor, await asyncio.to_thread(publishing.departed, after))

    @router.get("/v1/posts/{post}/comments")
    async def comments(tenant: Tenant, publishing: Service, post: str) -> list[dict[str, Any]]:
        """The team's comments on the post, as a thread."""
        with answering():
            found = await asyncio.to_thread(publishing.comments, tenant, post)
        return comments_view(found)

    @router.post("/v1/posts/{post}/comments", status_code=201)
    async def comment(
        tenant: Tenant, actor: Caller, publishing: Service, post: str, body: CommentBody
    ) -> dict[str, Any]:
        """Comment (or answer a comment): the post's author, the comment answered, and
        everyone named with @ are told."""
        with answering():
            made = await publishing.comment(tenant, actor, post, body.text, body.parent)
        return comments_view([made])[0]

    @router.get("/v1/posts/{post}/audit")
    async def audit(tenant: Tenant, publishing: Service, post: str) -> list[dict[str, Any]]:
        """Everything done to the post, oldest first, by whom and when."""
        with answering():
            found = await asyncio.to_thread(publishing.audit, tenant, post)
        return [audit_view(entry) for entry in found]

    @router.get("/v1/posts/{post}/audit.csv")
    async def audit_file(tenant: Tenant, publishing: Service, post: str) -> Response:
        with answering():
            found = await asyncio.to_thread(publishing.audit, tenant, post)
        return Response(
            audit_csv(found), media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="post-{post}-audit.csv"'},
        )  # fmt: skip

    @router.post("/v1/posts/{post}/links", status_code=201)
    async def link(
        tenant: Tenant, actor: Caller, publishing: Service, post: str, body: LinkBody
    ) -> dict[str, Any]:
        """A signed link that lets an external reviewer (a client) see this post only,
        comment on it and approve its external step, without an account, until it ends."""
        with answering():
            token, ends = await publishing.link(tenant, actor, post, body.name, body.hours)
        return {"token": token, "path": f"/review/{token}", "expires": _iso(ends)}

    async def linked(publishing: Publishing, token: str) -> tuple[str, str, Actor]:
        with answering():
            return await asyncio.to_thread(publishing.linked, token)

    @router.delete("/v1/posts/{post}/links", status_code=204)
    async def end_links(tenant: Tenant, actor: Caller, publishing: Service, post: str) -> Response:
        """End every link made to this post so far: each then answers 404."""
        with answering():
            await publishing.end_links(tenant, actor, post)
        return Response(status_code=204)

    @router.get("/v1/public/reviews/{token}", responses=PUBLIC_ANSWERS)
    async def public_review(publishing: Service, token: Token) -> dict[str, Any]:
        """What an external reviewer's link shows: the post, its review, and the
        comments of external reviewers (the team's own stay the team's)."""
        tenant, post, reviewer = await linked(publishing, token)
        with answering():
            found = await asyncio.to_thread(publishing.post, tenant, post)
            comments = await asyncio.to_thread(publishing.comments, tenant, post)
        review = await asyncio.to_thread(publishing.review, tenant, post)
        return {
            "reviewer": reviewer.key.removeprefix("link:"),
            "post": public_post_view(found),
            "review": public_review_view(review) if review else None,
            "can_approve": bool(
                review
                and review_view(
                    review, reviewer, await asyncio.to_thread(publishing.departed, review)
                )["can_decide"]
            ),
            "comments": comments_view([c for c in comments if c.author.startswith("link:")]),
        }

    @router.post("/v1/public/reviews/{token}", responses=PUBLIC_ANSWERS)
    async def public_decide(
        publishing: Service, token: Token, body: DecisionBody
    ) -> dict[str, Any]:
        """The external reviewer approves, rejects or asks for changes, on the version
        they were shown (`version`: a 409 when it changed meanwhile)."""
        if body.version is None:
            raise HTTPException(422, "say which version you decide on (`version`)")
        tenant, post, reviewer = await linked(publishing, token)
        with answering():
            after = await publishing.decide(
                tenant,
                reviewer,
                post,
                KINDS[body.decision],
                body.reason,
                body.version,
            )
        return public_review_view(after)

    @router.post("/v1/public/reviews/{token}/comments", status_code=201, responses=PUBLIC_ANSWERS)
    async def public_comment(
        publishing: Service, token: Token, body: CommentBody
    ) -> dict[str, Any]:
        tenant, post, reviewer = await linked(publishing, token)
        with answering():
            made = await publishing.comment(tenant, reviewer, post, body.text, body.parent)
        return comments_view([made])[0]

    return router


def _steps(body: WorkflowBody) -> list[Step]:
    return [
        Step(one.name.strip(), tuple(dict.fromkeys(one.users)), tuple(dict.fromkeys(one.roles)),
             one.mode, one.external)
        for one in body.steps
    ]  # fmt: skip
