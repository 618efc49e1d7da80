"""Publishing's use cases: channels connected, posts checked and scheduled, jobs listed,
retried and cancelled. Each tenant sees and changes only its own (another's is
`NotFound`, as one that does not exist).

A time to publish is either a moment (an ISO 8601 time with its offset) or a wall-clock
time without one, read in each channel's own IANA zone: "09:00" is 9:00 where the
channel's audience is, whatever the offset that day. A wall-clock time that a DST change
skips (02:30 on the night clocks go forward) is the moment an hour later; one it repeats
is its first occurrence.

A post's images are uploaded first (`add_media`: what an image is, is read from its bytes,
never taken from what the uploader claims) and named by the post; each part of a thread
has its own text and its own images. Everything is checked against every channel before
anything is scheduled: each part's length, how many images it has and how large each is,
and, where the tenant requires it (`require_alt`), that each image has alt text.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hubbub.kernel.clock import Clock
from hubbub.kernel.destinations import Network as IpNetwork
from hubbub.kernel.destinations import check_url
from hubbub.kernel.sealing import SecretBox
from hubbub.publishing.journal import Journal
from hubbub.publishing.ports import (
    NETWORKS,
    Attachment,
    Channel,
    Invalid,
    Job,
    JobStore,
    Limits,
    Media,
    NetworkName,
    OutcomeUnknown,
    Part,
    Permanent,
    Post,
    Transient,
    Visibility,
)
from hubbub.publishing.text import BLUESKY_GRAPHEMES, graphemes, mastodon_length

BLUESKY_LIMITS: Final = Limits(characters=BLUESKY_GRAPHEMES, media=4, image_bytes=1_000_000,
                               url_length=0)  # fmt: skip
"""What the protocol allows (app.bsky.feed.post: 300 graphemes; images: 4, 1 MB each)."""
HINT: Final = "a channel's service must be on a public address (HUBBUB_PUBLISH_ALLOWED_NETWORKS)"
LimitsOf = Callable[[NetworkName, str], Awaitable[Limits]]
"""What a network's service accepts: read from it where it says (Mastodon's instance)."""
MAX_MEDIA_BYTES: Final = 16 * 1024 * 1024
"""The largest image kept (Mastodon's default limit); each channel may take less."""
MAX_PARTS: Final = 25
"""The most parts a thread may have."""
_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(data: bytes) -> str | None:
    """The content type of an image, read from its first bytes (its "magic number"):
    PNG, JPEG, GIF or WebP; None for anything else."""
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {name!r}: use one such as Europe/Paris") from None


def length(channel: Channel, text: str) -> int:
    """`text`'s length in the unit the channel's network counts."""
    if channel.network == "bluesky":
        return graphemes(text)
    return mastodon_length(text, channel.limits.url_length)


def problems(post: Post, channels: Sequence[Channel], require_alt: bool = False) -> list[str]:
    """What keeps `post` from being published on each channel: which channel, which
    limit, and by how much (and in which part of a thread, and which image)."""
    found = []
    for channel in channels:
        parts = post.parts_for(channel.id)
        for number, part in enumerate(parts, 1):
            where = f"{channel.account} ({channel.network})"
            if len(parts) > 1:
                where += f", part {number}"
            found += [f"{where}: {problem}" for problem in _part_problems(channel, part)]
            if require_alt:
                found += [
                    f"{where}: image {image.id} has no alt text, which this workspace requires"
                    for image in part.media
                    if not (image.alt or "").strip()
                ]
        if channel.network == "bluesky" and (post.spoiler or post.visibility != "public"):
            found.append(
                f"{channel.account} (bluesky): Bluesky posts are public and have no content"
                " warning; leave them out for this channel"
            )
    return found


def _part_problems(channel: Channel, part: Part) -> list[str]:
    """What one part exceeds of `channel`'s limits: its length, its images' count and
    each image's size."""
    limits, found = channel.limits, []
    unit = "graphemes" if channel.network == "bluesky" else "characters"
    used = length(channel, part.text)
    if not part.text.strip() and not part.media:
        found.append("the text is empty")
    elif used > limits.characters:
        found.append(
            f"{used} {unit}, {used - limits.characters} over its limit of {limits.characters}"
        )
    if len(part.media) > limits.media:
        found.append(
            f"{len(part.media)} images, {len(part.media) - limits.media} over its limit of"
            f" {limits.media}"
        )
    for image in part.media:
        if image.size > limits.image_bytes:
            found.append(
                f"image {image.id} is {image.size:,} bytes, {image.size - limits.image_bytes:,}"
                f" over its limit of {limits.image_bytes:,}"
            )
    return found


def due_us(at: str | None, channel: Channel, now_us: int) -> int:
    """When a post for `channel` falls due: now, a moment, or a wall-clock time in the
    channel's zone."""
    if at is None:
        return now_us
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise Invalid(f"{at!r} is not a time: use 2026-12-24T09:00 (or with an offset)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(channel.time_zone))
    return int(moment.timestamp() * 1_000_000)


@dataclass(frozen=True)
class Publishing:
    store: JobStore
    box: SecretBox
    clock: Clock
    limits_of: LimitsOf
    allowed: Sequence[IpNetwork] = ()
    """Networks a channel's service may be on although not public (the tests' loopback)."""
    journal: Journal | None = None
    """Where each job's changes go as events (`PublishChanged`)."""
    require_alt: bool = False
    """Whether every image must have alt text (`HUBBUB_PUBLISH_REQUIRE_ALT`)."""

    async def _record(self, jobs: Sequence[Job]) -> None:
        if self.journal is not None and jobs:
            channels = await asyncio.to_thread(self.store.channels, jobs[0].tenant)
            networks = {c.id: c.network for c in channels}
            await self.journal.record(jobs, {j.channel: networks.get(j.channel, "") for j in jobs})

    async def add_channel(
        self, tenant: str, network: NetworkName, account: str, service: str,
        credentials: dict[str, str], time_zone: str = "UTC",
    ) -> Channel:  # fmt: skip
        """Connect an account: its limits read from its network, its credentials sealed."""
        if network not in NETWORKS:
            raise Invalid(f"unknown network {network!r}: use {', '.join(NETWORKS)}")
        zone(time_zone)
        service = service.rstrip("/")
        try:
            check_url(service, self.allowed, HINT)
        except ValueError as error:
            raise Invalid(f"{service!r}: {error}") from error
        try:
            limits = await self.limits_of(network, service)
        except (Permanent, Transient, OutcomeUnknown) as error:
            raise Invalid(f"could not read what {service} accepts: {error}") from error
        channel = Channel(
            id=secrets.token_hex(8), tenant=tenant, network=network, account=account,
            service=service, time_zone=time_zone, limits=limits,
            sealed_credentials=self.box.seal(json.dumps(credentials)),
        )  # fmt: skip
        return self.store.add_channel(channel)

    def channels(self, tenant: str) -> list[Channel]:
        return self.store.channels(tenant)

    async def add_media(self, tenant: str, data: bytes, alt: str | None = None) -> Media:
        """Keep an image for a post to name: PNG, JPEG, WebP or GIF as its bytes say, at
        most `MAX_MEDIA_BYTES` (each channel checks its own limit when a post names it)."""
        content_type = image_type(data)
        if content_type is None:
            raise Invalid("not an image this platform publishes: use PNG, JPEG, WebP or GIF")
        if len(data) > MAX_MEDIA_BYTES:
            raise Invalid(
                f"the image is {len(data):,} bytes, {len(data) - MAX_MEDIA_BYTES:,} over the"
                f" limit of {MAX_MEDIA_BYTES:,}"
            )
        media = Media(
            id=secrets.token_hex(8), tenant=tenant, content_type=content_type,
            size=len(data), alt=(alt or "").strip() or None, created_us=self.clock.now_us(),
        )  # fmt: skip
        return await asyncio.to_thread(self.store.add_media, media, data)

    def media(self, tenant: str, media: str) -> Media:
        return self.store.media(tenant, media)

    def _attachments(self, tenant: str, media: Sequence[str]) -> tuple[Attachment, ...]:
        if len(set(media)) < len(media):
            raise Invalid("an image is named twice: upload it again to show it twice")
        found = [self.store.media(tenant, one) for one in media]
        return tuple(Attachment(m.id, m.content_type, m.size, m.alt) for m in found)

    def remove_channel(self, tenant: str, channel: str) -> None:
        self.store.remove_channel(tenant, channel, self.clock.now_us())

    async def schedule(
        self,
        tenant: str,
        author: str,
        text: str,
        channels: Sequence[str],
        *,
        at: str | None = None,
        variants: dict[str, str] | None = None,
        language: str | None = None,
        spoiler: str | None = None,
        visibility: Visibility = "public",
        media: Sequence[str] = (),
        thread: Sequence[tuple[str, Sequence[str]]] = (),
    ) -> tuple[Post, list[Job]]:
        """Check the post against every channel's limits, then make one job per channel,
        due now or `at`; `Invalid` naming every problem, and nothing made, otherwise.
        `media` names the first part's images (`add_media`); `thread`, the parts after
        it, each a text and its images."""
        if not channels:
            raise Invalid("name at least one channel to publish to")
        if len(thread) + 1 > MAX_PARTS:
            raise Invalid(f"a thread has at most {MAX_PARTS} parts, not {len(thread) + 1}")
        named = [*media, *(one for _, images in thread for one in images)]

        def read() -> tuple[list[Channel], dict[str, Attachment]]:
            found = [self.store.channel(tenant, channel) for channel in dict.fromkeys(channels)]
            return found, {a.id: a for a in self._attachments(tenant, named)}

        chosen, images = await asyncio.to_thread(read)
        post = Post(
            id=secrets.token_hex(8), tenant=tenant, author=author, text=text,
            variants=dict(variants or {}), language=language, spoiler=spoiler,
            visibility=visibility, media=tuple(images[one] for one in media),
            thread=tuple(
                Part(part, tuple(images[one] for one in ones)) for part, ones in thread
            ),
        )  # fmt: skip
        if found := problems(post, chosen, self.require_alt):
            raise Invalid("; ".join(found))
        now = self.clock.now_us()
        dues = {channel.id: due_us(at, channel, now) for channel in chosen}
        jobs = await asyncio.to_thread(self.store.schedule, post, dues)
        networks = {channel.id: channel.network for channel in chosen}
        if self.journal is not None:
            await self.journal.record(jobs, networks)
        return post, jobs

    def jobs(self, tenant: str, limit: int = 100) -> list[Job]:
        return self.store.jobs(tenant, limit)

    def job(self, tenant: str, job: str) -> Job:
        return self.store.job(tenant, job)

    async def retry(self, tenant: str, job: str) -> Job:
        changed = await asyncio.to_thread(self.store.retry, tenant, job, self.clock.now_us())
        await self._record([changed])
        return changed

    async def cancel(self, tenant: str, job: str) -> Job:
        changed = await asyncio.to_thread(self.store.cancel, tenant, job, self.clock.now_us())
        await self._record([changed])
        return changed


def channel_view(channel: Channel) -> dict[str, Any]:
    """A channel as people may see it: never its credentials."""
    return {
        "id": channel.id, "network": channel.network, "account": channel.account,
        "service": channel.service, "time_zone": channel.time_zone,
        "limits": vars(channel.limits),
    }  # fmt: skip
