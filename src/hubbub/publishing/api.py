"""`/v1/channels`, `/v1/media`, `/v1/posts` and `/v1/jobs`: a tenant's accounts on the
networks, the images its posts show, the posts it schedules to them, and the publish
jobs that carry each post to each channel.

The tenant is the one the gateway names (`X-Hubbub-Tenant`, signed); another tenant's
channel, post or job is answered 404, as one that does not exist. A channel's
credentials are taken in and sealed, and never answered back.
"""

# No `from __future__ import annotations` here: the routes' dependency on the service
# is a closure (`Service`), which FastAPI can only see in annotations evaluated at once.
import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from hubbub.kernel.signing import KEY, TENANT_HEADER
from hubbub.kernel.validation import PlainText
from hubbub.publishing.logins import OUT_OF_BAND, MastodonLogins
from hubbub.publishing.ports import Invalid, Job, Media, NotFound
from hubbub.publishing.service import MAX_PARTS, Publishing, channel_view

ALT_LENGTH: Final = 1500
"""The longest alt text (Mastodon's `description_limit`)."""
MEDIA_PER_PART: Final = 20
MediaId = Annotated[str, Field(max_length=32)]
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


def job_view(job: Job) -> dict[str, Any]:
    return {
        "id": job.id, "post": job.post, "version": job.version, "channel": job.channel,
        "due_us": job.due_us, "state": job.state, "attempts": job.attempts,
        "remote_id": job.remote_id, "url": job.remote_url, "error": job.error,
        "idempotency_key": job.idempotency_key,
    }  # fmt: skip


@contextmanager
def answering() -> Iterator[None]:
    """The store's and the service's refusals, as HTTP answers."""
    try:
        yield
    except NotFound as error:
        raise HTTPException(404, str(error)) from error
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
            await asyncio.to_thread(publishing.remove_channel, tenant, channel)

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
        author = request.headers.get(KEY.decode(), "")
        thread = [(part.text, part.media) for part in body.thread]
        with answering():
            post, jobs = await publishing.schedule(
                tenant, author, body.text, body.channels, at=body.at, variants=body.variants,
                language=body.language, spoiler=body.spoiler, visibility=body.visibility,
                media=body.media, thread=thread,
            )  # fmt: skip
        return {"post": post.id, "jobs": [job_view(job) for job in jobs]}

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
    async def retry(tenant: Tenant, publishing: Service, job: str) -> dict[str, Any]:
        """Schedule a failed, missed or cancelled job again, now. It keeps its key: a
        post that reached the network before is found there, not sent twice."""
        with answering():
            return job_view(await publishing.retry(tenant, job))

    @router.post("/v1/jobs/{job}/cancel")
    async def cancel(tenant: Tenant, publishing: Service, job: str) -> dict[str, Any]:
        """Cancel a scheduled job."""
        with answering():
            return job_view(await publishing.cancel(tenant, job))

    return router
