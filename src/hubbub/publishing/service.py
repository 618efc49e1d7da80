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
    Change,
    Channel,
    Draft,
    Invalid,
    Job,
    JobStore,
    Limits,
    Media,
    NetworkName,
    NotFound,
    OutcomeUnknown,
    Part,
    Permanent,
    Post,
    Series,
    Transient,
    Visibility,
)
from hubbub.publishing.slots import Recurrence, WeeklySlots, moment_us, next_free, occurrences
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
SERIES_AT_ONCE: Final = 400
"""The most occurrences of a series made at once (an hourly rule over 7 days is 168)."""
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
    drafts_per_author: int = 100
    """The most drafts one author keeps (`HUBBUB_PUBLISH_DRAFTS_PER_AUTHOR`)."""
    draft_bytes: int = 256 * 1024
    """The largest draft, as JSON (`HUBBUB_PUBLISH_DRAFT_BYTES`)."""
    series_horizon_s: float = 7 * 86_400.0
    """How far ahead a recurring post's jobs are made (`HUBBUB_PUBLISH_SERIES_HORIZON_DAYS`)."""

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
        queue: bool = False,
        repeat: str | None = None,
        draft: str | None = None,
    ) -> tuple[Post, list[Job]]:
        """Check the post against every channel's limits, then make one job per channel,
        due now, `at`, or in the channel's next free queue slot (`queue`); or, with
        `repeat` (an RRULE, from `at`), a series per channel and a job per occurrence
        within the horizon. `Invalid` naming every problem, and nothing made, otherwise.
        `media` names the first part's images (`add_media`); `thread`, the parts after
        it, each a text and its images. The author's `draft` it was written in goes."""
        if not channels:
            raise Invalid("name at least one channel to publish to")
        rule = _when(at, queue, repeat)
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
        if rule is not None:
            assert at is not None
            jobs = await self._start_series(post, chosen, rule, at, now)
        elif queue:
            queued = {channel.id: _chooser(channel, now) for channel in chosen}
            jobs = await asyncio.to_thread(self.store.schedule, post, {}, now, queued)
        else:
            dues = {channel.id: due_us(at, channel, now) for channel in chosen}
            jobs = await asyncio.to_thread(self.store.schedule, post, dues, now)
        if draft is not None:
            await asyncio.to_thread(self.store.delete_draft, tenant, author, draft)
        networks = {channel.id: channel.network for channel in chosen}
        if self.journal is not None:
            await self.journal.record(jobs, networks)
        return post, jobs

    async def _start_series(
        self, post: Post, chosen: Sequence[Channel], rule: Recurrence, at: str, now_us: int
    ) -> list[Job]:
        """A series per channel from `at` (its first wall-clock time there), and a job for
        each occurrence within the horizon and the first past it."""
        series_id, horizon_us = secrets.token_hex(8), now_us + int(self.series_horizon_s * 1e6)
        made, occurring = [], {}
        for channel in chosen:
            start = start_wall(at, channel)
            first = max(moment_us(start, zone(channel.time_zone)) - 1, now_us - 1)
            ahead = occurrences_ahead(rule, start, channel.time_zone, first, horizon_us)
            if not ahead:
                raise Invalid(f"{rule} has no occurrence from {at} on")
            occurring[channel.id] = ahead
            made.append(Series(
                id=series_id, tenant=post.tenant, post=post.id, version=post.version,
                channel=channel.id, rule=str(rule), start_wall=start.isoformat(),
                time_zone=channel.time_zone, through_us=ahead[-1], updated_us=now_us,
            ))  # fmt: skip
        return await asyncio.to_thread(self.store.start_series, post, made, occurring, now_us)

    async def set_queue(self, tenant: str, channel: str, slots: str | None) -> Channel:
        """Keep the channel's weekly queue slots, read in its zone ("mon-fri 09:00,13:30");
        blank: no queue. `Invalid` says where the text is wrong."""
        found = await asyncio.to_thread(self.store.channel, tenant, channel)
        kept = str(WeeklySlots.parse(slots, found.time_zone)) if slots and slots.strip() else None
        return await asyncio.to_thread(self.store.set_queue, tenant, channel, kept)

    def channel(self, tenant: str, channel: str) -> Channel:
        return self.store.channel(tenant, channel)

    def series(self, tenant: str, series: str) -> list[Series]:
        return self.store.series(tenant, series)

    async def cancel_series(self, tenant: str, series: str) -> list[Job]:
        """Stop a recurring post: no more occurrences, its scheduled ones cancelled."""
        cancelled = await asyncio.to_thread(
            self.store.cancel_series, tenant, series, self.clock.now_us()
        )
        await self._record(cancelled)
        return cancelled

    def history(self, tenant: str, post: str) -> list[Change]:
        return self.store.history(tenant, post)

    def post(self, tenant: str, post: str) -> Post:
        """The post's newest version; `NotFound` for another tenant's."""
        return self.store.post(tenant, post)

    def put_draft(self, tenant: str, author: str, draft: str, body: dict[str, Any]) -> Draft:
        """Keep what the author is writing, as the composer holds it; `Invalid` when it is
        larger than `draft_bytes`, `TooMany` past `drafts_per_author`."""
        size = len(json.dumps(body, ensure_ascii=False).encode())
        if size > self.draft_bytes:
            raise Invalid(f"the draft is {size:,} bytes, {size - self.draft_bytes:,} over the"
                          f" limit of {self.draft_bytes:,}")  # fmt: skip
        kept = Draft(draft, tenant, author, body, self.clock.now_us())
        return self.store.put_draft(kept, self.drafts_per_author)

    def drafts(self, tenant: str, author: str) -> list[Draft]:
        return self.store.drafts(tenant, author)

    def draft(self, tenant: str, author: str, draft: str) -> Draft:
        return self.store.draft(tenant, author, draft)

    def delete_draft(self, tenant: str, author: str, draft: str) -> None:
        if not self.store.delete_draft(tenant, author, draft):
            raise NotFound(f"no draft {draft!r}")

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


def _when(at: str | None, queue: bool, repeat: str | None) -> Recurrence | None:
    """The recurrence a post asks for, if any; `Invalid` when its times contradict."""
    if queue and (at is not None or repeat is not None):
        raise Invalid("a queued post takes its channels' next free slots: leave out at and repeat")
    if repeat is None:
        return None
    if at is None:
        raise Invalid("a recurring post needs `at`: its first time, as 2026-12-24T09:00")
    return Recurrence.parse(repeat)


def _chooser(channel: Channel, now_us: int) -> Callable[[set[int]], int]:
    """What picks `channel`'s next free queue slot, given the slots its open jobs take."""
    if not channel.queue:
        raise Invalid(
            f"{channel.account} ({channel.network}) has no queue: give it time slots first"
            f" (PUT /v1/channels/{channel.id}/queue, or `hubbub channels queue {channel.id}`)"
        )
    slots = WeeklySlots.parse(channel.queue, channel.time_zone)
    return lambda taken: next_free(slots, now_us, taken)


def start_wall(at: str, channel: Channel) -> datetime:
    """`at` as a wall-clock time in `channel`'s zone (a time with an offset, moved there)."""
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise Invalid(f"{at!r} is not a time: use 2026-12-24T09:00 (or with an offset)") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone(channel.time_zone)).replace(tzinfo=None)
    return moment.replace(second=0, microsecond=0)


def occurrences_ahead(
    rule: Recurrence, start: datetime, time_zone: str, after_us: int, horizon_us: int
) -> list[int]:
    """The rule's occurrences after `after_us` up to `horizon_us`, and the first one
    past it (none when the rule has ended): a series always has a job made beyond its
    horizon, so the sweeper tops it up only once time brings that one within it."""
    found = occurrences(rule, start, time_zone, after_us, SERIES_AT_ONCE)
    within = [moment for moment in found if moment <= horizon_us]
    return within + [moment for moment in found if moment > horizon_us][:1]


def extend_series(store: JobStore, now_us: int, horizon_us: int, limit: int = 500) -> list[Job]:
    """Top up every active series whose jobs run out before `now_us + horizon_us`: a job
    for each occurrence after its last one up to the horizon and the first past it, so a
    series is never more than a horizon and an occurrence ahead, and skips none however
    long the platform was down (an occurrence too late to publish is then marked missed)."""
    made: list[Job] = []
    for one in store.series_to_extend(now_us + horizon_us, limit):
        start = datetime.fromisoformat(one.start_wall)
        ahead = occurrences_ahead(
            Recurrence(one.rule), start, one.time_zone, one.through_us, now_us + horizon_us
        )
        made += store.extend_series(one, ahead, now_us)
    return made


def channel_view(channel: Channel) -> dict[str, Any]:
    """A channel as people may see it: never its credentials."""
    return {
        "id": channel.id, "network": channel.network, "account": channel.account,
        "service": channel.service, "time_zone": channel.time_zone,
        "limits": vars(channel.limits), "queue": channel.queue,
    }  # fmt: skip
