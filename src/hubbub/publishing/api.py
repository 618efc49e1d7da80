"""`/v1/channels`, `/v1/media`, `/v1/posts`, `/v1/jobs`, `/v1/series` and `/v1/drafts`: a
tenant's accounts on the networks and their queues, the images its posts show, the posts
it schedules to them (once, or recurring as a series), the publish jobs that carry each
post to each channel, with their history, and the drafts its people are writing.

The tenant is the one the gateway names (`X-Hubbub-Tenant`, signed); another tenant's
channel, post, job or series is answered 404, as one that does not exist. A draft is its
author's (the key or session the gateway names, `X-Hubbub-Key`): another's is a 404 too.
A channel's credentials are taken in and sealed, and never answered back.
"""

# No `from __future__ import annotations` here: the routes' dependency on the service
# is a closure (`Service`), which FastAPI can only see in annotations evaluated at once.
import asyncio
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from hubbub.kernel.signing import KEY, TENANT_HEADER
from hubbub.kernel.signing import role_of as signed_role
from hubbub.kernel.validation import PlainText
from hubbub.publishing.logins import OUT_OF_BAND, MastodonLogins
from hubbub.publishing.ports import (
    Actor,
    Attachment,
    Change,
    Channel,
    Draft,
    Forbidden,
    Invalid,
    Job,
    Media,
    NotFound,
    Post,
    Review,
    Series,
    Step,
    Workflow,
)
from hubbub.publishing.review import approvals_of, eligible, waiting_on
from hubbub.publishing.service import MAX_PARTS, Publishing, channel_view
from hubbub.publishing.slots import WeeklySlots, upcoming, zone_of

ALT_LENGTH: Final = 1500
"""The longest alt text (Mastodon's `description_limit`)."""
MEDIA_PER_PART: Final = 20
MediaId = Annotated[str, Field(max_length=32)]
DRAFT_ID: Final = r"^[0-9a-f]{16}$"
DRAFT_TEXT: Final = 100_000
"""The longest text a draft keeps (a post's)."""
UPCOMING: Final = 5
"""Queue slots shown ahead."""
UPLOAD: Final = {
    "requestBody": {
        "required": True,
        "description": "The image (PNG, JPEG, WebP or GIF, as its bytes say): a form's"
        " `file`, with its `alt` text; or the body itself, with `alt` in the query.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "alt": {"type": "string", "maxLength": ALT_LENGTH},
                    },
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def tenant_of(request: Request) -> str:
    tenant = request.headers.get(TENANT_HEADER)
    if not tenant:
        raise HTTPException(401, f"no tenant: call through the gateway ({TENANT_HEADER} unset)")
    return tenant


Tenant = Annotated[str, Depends(tenant_of)]
DraftId = Annotated[str, Path(pattern=DRAFT_ID, description="16 hex digits, the client's.")]


def author_of(request: Request) -> str:
    """Who is calling, as the gateway names them: the key or the person's session."""
    return request.headers.get(KEY.decode(), "")


def role_of(request: Request) -> str:
    """The caller's role, as the gateway names it (signed): owner, admin, editor, viewer."""
    return signed_role(request.headers)


def actor_of(request: Request) -> Actor:
    return Actor(author_of(request), role_of(request))


def review_of(
    review: Review | None, request: Request, left: Collection[str] = ()
) -> dict[str, Any] | None:
    return None if review is None else review_view(review, actor_of(request), left)


def iso(us: int | None) -> str | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, UTC).isoformat()


def workflow_view(workflow: Workflow) -> dict[str, Any]:
    return {
        "id": workflow.id, "name": workflow.name,
        "steps": [_step_view(step) for step in workflow.steps],
        "channels": list(workflow.channels), "roles": list(workflow.roles),
    }  # fmt: skip


def _step_view(step: Step) -> dict[str, Any]:
    return {"name": step.name, "users": list(step.users), "roles": list(step.roles),
            "mode": step.mode, "external": step.external}  # fmt: skip


def review_view(
    review: Review, actor: Actor | None = None, left: Collection[str] = ()
) -> dict[str, Any]:
    """A review as people see it; `can_decide` says whether `actor` may decide it now;
    `left`: the people its current step names who left (`Publishing.departed`)."""
    steps = []
    for number, step in enumerate(review.steps):
        decided = [d for d in review.decisions if d.step == number]
        steps.append({
            **_step_view(step),
            "done": number < review.step or review.state == "approved",
            "decisions": [
                {"who": d.who, "role": d.role, "decision": d.decision, "reason": d.reason,
                 "at": iso(d.at_us)}
                for d in decided
            ],
        })  # fmt: skip
    current = review.steps[review.step]
    can = (
        actor is not None and review.state == "in_review"
        and not {actor.key, actor.via} & {review.author, review.submitted_by}
        and eligible(current, actor, left)
        and not any(d.who == actor.key and d.decision == "approved" for d in review.decisions)
    )  # fmt: skip
    plan = review.plan
    return {
        "post": review.post, "version": review.version, "state": review.state,
        "step": review.step, "author": review.author,
        "plan": {"channels": list(plan.channels), "at": plan.at, "queue": plan.queue,
                 "repeat": plan.repeat},
        "due": iso(review.due_us), "steps": steps, "can_decide": can,
        "waiting_on": waiting_on(current, approvals_of(review, review.step), left)
        if review.state == "in_review" else [],
        "overdue": review.flagged_us is not None,
    }  # fmt: skip


class ChannelCreate(BaseModel):
    network: Literal["bluesky", "mastodon"]
    account: Annotated[str, PlainText] = Field(
        min_length=1, max_length=255, description="A Bluesky handle, or user@instance."
    )
    service: str = Field(
        max_length=2048, description="The PDS (https://bsky.social) or the Mastodon instance."
    )
    time_zone: str = Field("UTC", max_length=64, description="An IANA zone, as Europe/Paris.")
    app_password: str | None = Field(
        None, max_length=256, description="Bluesky: an app password of the account."
    )
    access_token: str | None = Field(
        None, max_length=4096, description="Mastodon: an access token with write:statuses."
    )


class MastodonAuthorize(BaseModel):
    service: str = Field(max_length=2048, description="The instance, https://mastodon.social.")
    time_zone: str = Field("UTC", max_length=64, description="The channel's IANA zone.")
    redirect_uri: str = Field(
        OUT_OF_BAND, max_length=2048, pattern=r"^(https?://\S+|urn:ietf:wg:oauth:2\.0:oob)$",
        description="Where the instance sends the owner back with the code (the web app's"
        " callback); by default the instance shows the code to copy.",
    )  # fmt: skip


class MastodonConnect(BaseModel):
    state: str = Field(max_length=4096, description="As `/authorize` answered it.")
    code: str = Field(min_length=1, max_length=512, description="What the instance gave.")


class PartCreate(BaseModel):
    text: str = Field(max_length=100_000)
    media: list[MediaId] = Field(
        default_factory=list, max_length=MEDIA_PER_PART, description="Ids from POST /v1/media."
    )


class PostCreate(BaseModel):
    text: str = Field(max_length=100_000)
    media: list[MediaId] = Field(
        default_factory=list,
        max_length=MEDIA_PER_PART,
        description="Images of the post (of its first part, in a thread): ids from"
        " POST /v1/media. Each channel's limits apply (how many, how large).",
    )
    thread: list[PartCreate] = Field(
        default_factory=list,
        max_length=MAX_PARTS - 1,
        description="Makes the post a thread: the parts after the first (`text`, `media`),"
        " published in order, each in reply to the one before.",
    )
    channels: list[str] = Field(min_length=1, max_length=50)
    at: str | None = Field(
        None,
        description="When: an ISO 8601 time; without an offset, in each channel's zone."
        " Absent: now.",
    )
    variants: dict[str, str] = Field(default_factory=dict, description="Per channel id.")
    language: str | None = Field(None, max_length=16)
    spoiler: str | None = Field(None, max_length=1000, description="Mastodon's content warning.")
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    queue: bool = Field(
        False, description="Put it in each channel's next free queue slot (no `at`, no `repeat`)."
    )
    repeat: str | None = Field(
        None,
        max_length=512,
        description="Recur by an RFC 5545 RRULE, as FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0,"
        " from `at` (its first wall-clock time in each channel's zone): a series, one job per"
        " occurrence, made ahead as time passes; DELETE /v1/series/{id} stops it.",
    )
    draft: str | None = Field(
        None, pattern=DRAFT_ID, description="The caller's draft it was written in: deleted."
    )
    tags: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=20, description="The team's labels, for the calendar."
    )
    reply_to: str | None = Field(
        None,
        max_length=2048,
        description="Publish it in reply to this post, someone else's: an at:// URI on"
        " Bluesky, a status URL on Mastodon (any instance's).",
    )


class PostUpdate(BaseModel):
    """A new version of a post: what is left out stays as it was."""

    text: str | None = Field(None, max_length=100_000)
    media: list[MediaId] | None = Field(None, max_length=MEDIA_PER_PART)
    thread: list[PartCreate] | None = Field(None, max_length=MAX_PARTS - 1)
    variants: dict[str, str] | None = None
    language: str | None = Field(None, max_length=16)
    spoiler: str | None = Field(None, max_length=1000)
    visibility: Literal["public", "unlisted", "private", "direct"] | None = None
    tags: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=20)


class Reschedule(BaseModel):
    at: str = Field(
        max_length=64, description="ISO 8601; without an offset, in each channel's zone."
    )
    channel: str | None = Field(None, max_length=32, description="Move this channel's only.")


class QueueUpdate(BaseModel):
    slots: str | None = Field(
        max_length=2000,
        description="Weekly slots in the channel's zone, as 'mon-fri 09:00,13:30; sat 10:00';"
        " empty or null: no queue.",
    )
    best_times: bool | None = Field(
        None,
        description="Add to queue takes the channel's best times to post (its own posts'"
        " engagement, or its network's), read each day; its slots only until they are known."
        " Absent: as it was.",
    )


class DraftUpdate(BaseModel):
    """What the composer holds; every field but `text` may be left out."""

    text: str = Field(max_length=DRAFT_TEXT)
    channels: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list, max_length=50
    )
    thread: list[Annotated[str, Field(max_length=DRAFT_TEXT)]] = Field(
        default_factory=list, max_length=MAX_PARTS - 1
    )
    media: list[MediaId] = Field(default_factory=list, max_length=MEDIA_PER_PART)
    at: str | None = Field(None, max_length=64)
    language: str | None = Field(None, max_length=16)
    spoiler: str | None = Field(None, max_length=1000)
    visibility: Literal["public", "unlisted", "private", "direct"] | None = None


def draft_view(draft: Draft) -> dict[str, Any]:
    return {"id": draft.id, **draft.body, "updated_us": draft.updated_us}


def change_view(change: Change) -> dict[str, Any]:
    return {
        "job": change.job, "channel": change.channel, "state": change.state,
        "at_us": change.at_us, "error": change.error, "attempts": change.attempts,
    }  # fmt: skip


def series_view(series: list[Series]) -> dict[str, Any]:
    """A series as one: its rule, and per channel where it stands."""
    first = series[0]
    states = {one.state for one in series}
    return {
        "id": first.id, "post": first.post, "rule": first.rule,
        "state": "active" if "active" in states else min(states),
        "channels": [
            {"channel": one.channel, "start": one.start_wall, "time_zone": one.time_zone,
             "through_us": one.through_us, "state": one.state}
            for one in series
        ],
    }  # fmt: skip


def queue_view(channel: Channel, now_us: int) -> dict[str, Any]:
    """A channel's queue: its slots, its best times when it takes them, and the next
    slots "add to queue" would take, as times in its zone."""
    best = channel.best_queue and channel.best_slots
    taken = channel.best_slots if best else channel.queue
    upcoming_ = []
    if taken:
        zone = zone_of(channel.time_zone)
        upcoming_ = [
            datetime.fromtimestamp(moment / 1e6, zone).isoformat()
            for moment in upcoming(WeeklySlots.parse(taken, channel.time_zone), now_us, UPCOMING)
        ]
    return {
        "channel": channel.id, "time_zone": channel.time_zone, "slots": channel.queue,
        "best_times": channel.best_queue, "best_slots": channel.best_slots,
        "paused": channel.paused, "upcoming": upcoming_,
    }  # fmt: skip


def media_view(media: Media) -> dict[str, Any]:
    return {
        "id": media.id, "content_type": media.content_type, "size": media.size,
        "alt": media.alt, "post": media.post,
    }  # fmt: skip


async def upload_of(request: Request, alt: str | None) -> tuple[bytes, str | None]:
    """The image and its alt text: from a multipart form (`file`, `alt`), or the body."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await request.body(), alt
    async with request.form(max_files=1, max_fields=10) as form:
        file, said = form.get("file"), form.get("alt")
        if not isinstance(file, UploadFile):
            raise HTTPException(422, "a form's image is its `file`")
        if said is not None and not isinstance(said, str):
            raise HTTPException(422, "`alt` is text")
        if said is not None and len(said) > ALT_LENGTH:
            raise HTTPException(422, f"alt text is at most {ALT_LENGTH} characters")
        return await file.read(), said if said is not None else alt


def post_view(post: Post) -> dict[str, Any]:
    def attached(media: tuple[Attachment, ...]) -> list[dict[str, Any]]:
        return [{"id": m.id, "content_type": m.content_type, "size": m.size, "alt": m.alt}
                for m in media]  # fmt: skip

    return {
        "id": post.id, "version": post.version, "author": post.author, "text": post.text,
        "variants": post.variants, "media": attached(post.media),
        "thread": [{"text": part.text, "media": attached(part.media)} for part in post.thread],
        "language": post.language, "spoiler": post.spoiler, "visibility": post.visibility,
        "tags": list(post.tags), "reply_to": post.reply_to,
    }  # fmt: skip


def job_view(job: Job) -> dict[str, Any]:
    return {
        "id": job.id, "post": job.post, "version": job.version, "channel": job.channel,
        "due_us": job.due_us, "state": job.state, "attempts": job.attempts,
        "remote_id": job.remote_id, "url": job.remote_url, "error": job.error,
        "idempotency_key": job.idempotency_key, "series": job.series,
    }  # fmt: skip


@contextmanager
def answering() -> Iterator[None]:
    """The store's and the service's refusals, as HTTP answers."""
    try:
        yield
    except NotFound as error:
        raise HTTPException(404, str(error)) from error
    except Forbidden as error:
        raise HTTPException(403, str(error)) from error
    except Invalid as error:
        raise HTTPException(422, str(error)) from error
    except ValueError as error:
        raise HTTPException(409, str(error)) from error


def build_router(
    service_of: Callable[[], Any], logins_of: Callable[[], Any] | None = None
) -> APIRouter:
    """The routes; `service_of()` answers (awaitably) the started `Publishing`, and
    `logins_of()` its `MastodonLogins` (without it, no OAuth routes)."""
    router = APIRouter(tags=["publishing"])

    async def service() -> Publishing:
        found: Publishing = await service_of()
        return found

    Service = Annotated[Publishing, Depends(service)]

    @router.get("/v1/channels")
    async def channels(tenant: Tenant, publishing: Service) -> list[dict[str, Any]]:
        """The tenant's connected accounts, with their limits; never their credentials."""
        found = await asyncio.to_thread(publishing.channels, tenant)
        return [channel_view(c) for c in found]

    @router.post("/v1/channels", status_code=201)
    async def add_channel(
        tenant: Tenant, publishing: Service, body: ChannelCreate
    ) -> dict[str, Any]:
        """Connect an account: its limits are read from its network where it says them."""
        if body.network == "bluesky":
            if not body.app_password:
                raise HTTPException(422, "a Bluesky channel needs an app password")
            credentials = {"identifier": body.account, "password": body.app_password}
        else:
            if not body.access_token:
                raise HTTPException(422, "a Mastodon channel needs an access token")
            credentials = {"access_token": body.access_token}
        with answering():
            made = await publishing.add_channel(
                tenant, body.network, body.account, body.service, credentials, body.time_zone
            )
        return channel_view(made)

    if logins_of is not None:

        @router.post("/v1/channels/mastodon/authorize")
        async def authorize_mastodon(tenant: Tenant, body: MastodonAuthorize) -> dict[str, str]:
            """Start connecting a Mastodon account by its owner's approval: Hubbub
            registers with the instance; the owner approves at `authorize_url`, and the
            code the instance gives back is sent to `/v1/channels/mastodon/connect` with
            `state` within 15 minutes."""
            logins: MastodonLogins = await logins_of()
            with answering():
                login = await logins.start(tenant, body.service, body.time_zone, body.redirect_uri)
            return {"authorize_url": login.authorize_url, "state": login.state}

        @router.post("/v1/channels/mastodon/connect", status_code=201)
        async def connect_mastodon(tenant: Tenant, body: MastodonConnect) -> dict[str, Any]:
            """Finish connecting: the owner's code is exchanged for the account's token
            (kept sealed), and the channel is added."""
            logins: MastodonLogins = await logins_of()
            with answering():
                made = await logins.finish(tenant, body.state, body.code)
            return channel_view(made)

    @router.delete("/v1/channels/{channel}", status_code=204, response_class=Response)
    async def remove_channel(tenant: Tenant, publishing: Service, channel: str) -> None:
        """Disconnect an account; the posts it had scheduled are cancelled."""
        with answering():
            await publishing.disconnect(tenant, channel)

    @router.post("/v1/media", status_code=201, openapi_extra=UPLOAD)
    async def add_media(
        request: Request,
        tenant: Tenant,
        publishing: Service,
        alt: Annotated[str | None, Query(max_length=ALT_LENGTH)] = None,
    ) -> dict[str, Any]:
        """Keep an image for a post to show, with its alt text; answers its id. What it
        is, is read from its bytes: PNG, JPEG, WebP or GIF; anything else is a 422. An
        image no post names within a day is dropped."""
        data, alt = await upload_of(request, alt)
        with answering():
            return media_view(await publishing.add_media(tenant, data, alt))

    @router.get("/v1/media/{media}")
    async def media(tenant: Tenant, publishing: Service, media: str) -> dict[str, Any]:
        """An image: its type, size, alt text and the post that shows it (null: none yet)."""
        with answering():
            return media_view(await asyncio.to_thread(publishing.media, tenant, media))

    @router.post("/v1/posts", status_code=201)
    async def schedule(
        request: Request, tenant: Tenant, publishing: Service, body: PostCreate
    ) -> dict[str, Any]:
        """Check a post against each channel's limits and schedule it to each: now, or
        `at`. A 422 names every channel it does not fit, the limit (length, images and
        their size, alt text where the workspace requires it), and by how much."""
        author = author_of(request)
        thread = [(part.text, part.media) for part in body.thread]
        with answering():
            post, jobs = await publishing.schedule(
                tenant, author, body.text, body.channels, at=body.at, variants=body.variants,
                language=body.language, spoiler=body.spoiler, visibility=body.visibility,
                media=body.media, thread=thread, queue=body.queue, repeat=body.repeat,
                draft=body.draft, tags=body.tags, role=role_of(request),
                reply_to=body.reply_to,
            )  # fmt: skip
        series = next((job.series for job in jobs if job.series), None)
        review = await asyncio.to_thread(publishing.review, tenant, post.id)
        return {"post": post.id, "version": post.version, "jobs": [job_view(job) for job in jobs],
                "series": series, "review": review_of(review, request)}  # fmt: skip

    @router.put("/v1/posts/{post}")
    async def revise(
        request: Request, tenant: Tenant, publishing: Service, post: str, body: PostUpdate
    ) -> dict[str, Any]:
        """Change a post: a new version, on the same channels at the same times. Its
        older version's waiting jobs are cancelled; under an approval workflow its review
        starts again from the first step, and otherwise the new version is scheduled at
        once. 409 when it is published already, or being sent."""
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        if "thread" in changes:
            changes["thread"] = [(part.text, part.media) for part in body.thread or ()]
        with answering():
            found, review, jobs = await publishing.revise(tenant, actor_of(request), post, changes)
        return {"post": found.id, "version": found.version,
                "jobs": [job_view(job) for job in jobs],
                "review": review_of(review, request)}  # fmt: skip

    @router.post("/v1/posts/{post}/reschedule")
    async def reschedule(
        request: Request, tenant: Tenant, publishing: Service, post: str, body: Reschedule
    ) -> dict[str, Any]:
        """Move a post to another time (on one channel, or all): a new version, checked
        and approved as any change is."""
        with answering():
            found, review, jobs = await publishing.reschedule(
                tenant, actor_of(request), post, body.at, body.channel
            )
        return {"post": found.id, "version": found.version,
                "jobs": [job_view(job) for job in jobs],
                "review": review_of(review, request)}  # fmt: skip

    @router.post("/v1/channels/{channel}/pause")
    async def pause(tenant: Tenant, publishing: Service, channel: str) -> dict[str, Any]:
        """Hold the channel's scheduled posts (none is published or missed) until it
        resumes."""
        with answering():
            return channel_view(await publishing.set_paused(tenant, channel, True))

    @router.post("/v1/channels/{channel}/resume")
    async def resume(tenant: Tenant, publishing: Service, channel: str) -> dict[str, Any]:
        """Publish the channel's posts again: one whose time passed while it was paused
        takes its next free queue slot (or goes now, without a queue)."""
        with answering():
            return channel_view(await publishing.set_paused(tenant, channel, False))

    @router.get("/v1/posts/{post}")
    async def post(
        request: Request, tenant: Tenant, publishing: Service, post: str
    ) -> dict[str, Any]:
        """The post as it was written (its newest version): its text, per-channel
        variants, images with their alt text, the parts of a thread, language, content
        warning and visibility, and the post it replies to (`reply_to`)."""
        with answering():
            found = await asyncio.to_thread(publishing.post, tenant, post)
        review = await asyncio.to_thread(publishing.review, tenant, post)
        left = await asyncio.to_thread(publishing.departed, review) if review else set()
        return {**post_view(found), "review": review_of(review, request, left)}

    @router.get("/v1/posts/{post}/history")
    async def history(tenant: Tenant, publishing: Service, post: str) -> list[dict[str, Any]]:
        """Every state each of the post's jobs went through, oldest first: scheduled,
        claimed, sending, published, or why not (failed, missed, cancelled, retried)."""
        with answering():
            found = await asyncio.to_thread(publishing.history, tenant, post)
        return [change_view(change) for change in found]

    @router.get("/v1/channels/{channel}/queue")
    async def queue(tenant: Tenant, publishing: Service, channel: str) -> dict[str, Any]:
        """The channel's queue: its weekly slots in its zone, and the next ones."""
        with answering():
            found = await asyncio.to_thread(publishing.channel, tenant, channel)
        return queue_view(found, publishing.clock.now_us())

    @router.put("/v1/channels/{channel}/queue")
    async def set_queue(
        tenant: Tenant, publishing: Service, channel: str, body: QueueUpdate
    ) -> dict[str, Any]:
        """Set the channel's weekly slots, in its zone ('mon-fri 09:00,13:30'): a post
        with `queue` takes the next one no open job of the channel has. A 422 says where
        the text is wrong."""
        with answering():
            found = await publishing.set_queue(tenant, channel, body.slots, body.best_times)
        return queue_view(found, publishing.clock.now_us())

    @router.get("/v1/series/{series}")
    async def series(tenant: Tenant, publishing: Service, series: str) -> dict[str, Any]:
        """A recurring post: its rule, and how far ahead each channel's jobs are made."""
        with answering():
            return series_view(await asyncio.to_thread(publishing.series, tenant, series))

    @router.delete("/v1/series/{series}", status_code=204, response_class=Response)
    async def cancel_series(tenant: Tenant, publishing: Service, series: str) -> None:
        """Stop a recurring post: no more occurrences; those scheduled are cancelled."""
        with answering():
            await publishing.cancel_series(tenant, series)

    @router.get("/v1/drafts")
    async def drafts(request: Request, tenant: Tenant, publishing: Service) -> list[dict[str, Any]]:
        """The caller's drafts, newest first."""
        found = await asyncio.to_thread(publishing.drafts, tenant, author_of(request))
        return [draft_view(draft) for draft in found]

    @router.get("/v1/drafts/{draft}")
    async def draft(
        request: Request, tenant: Tenant, publishing: Service, draft: DraftId
    ) -> dict[str, Any]:
        with answering():
            found = await asyncio.to_thread(publishing.draft, tenant, author_of(request), draft)
        return draft_view(found)

    @router.put("/v1/drafts/{draft}")
    async def put_draft(
        request: Request, tenant: Tenant, publishing: Service, draft: DraftId, body: DraftUpdate
    ) -> dict[str, Any]:
        """Keep a draft as it is typed: the id is the client's (16 hex digits), the same
        id replaces it. A 409 when the caller keeps the most drafts one may already."""
        with answering():
            kept = await asyncio.to_thread(
                publishing.put_draft, tenant, author_of(request), draft, body.model_dump()
            )
        return draft_view(kept)

    @router.delete("/v1/drafts/{draft}", status_code=204, response_class=Response)
    async def delete_draft(
        request: Request, tenant: Tenant, publishing: Service, draft: DraftId
    ) -> None:
        with answering():
            await asyncio.to_thread(publishing.delete_draft, tenant, author_of(request), draft)

    @router.get("/v1/jobs")
    async def jobs(
        tenant: Tenant, publishing: Service, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        """The tenant's publish jobs, latest due first."""
        return [job_view(j) for j in await asyncio.to_thread(publishing.jobs, tenant, limit)]

    @router.get("/v1/jobs/{job}")
    async def job(tenant: Tenant, publishing: Service, job: str) -> dict[str, Any]:
        with answering():
            return job_view(await asyncio.to_thread(publishing.job, tenant, job))

    @router.post("/v1/jobs/{job}/retry")
    async def retry(
        tenant: Tenant, publishing: Service, job: str, request: Request
    ) -> dict[str, Any]:
        """Schedule a failed, missed or cancelled job again, now. It keeps its key: a
        post that reached the network before is found there, not sent twice."""
        with answering():
            return job_view(await publishing.retry(tenant, job, author_of(request)))

    @router.post("/v1/jobs/{job}/cancel")
    async def cancel(
        tenant: Tenant, publishing: Service, job: str, request: Request
    ) -> dict[str, Any]:
        """Cancel a scheduled job."""
        with answering():
            return job_view(await publishing.cancel(tenant, job, author_of(request)))

    return router
