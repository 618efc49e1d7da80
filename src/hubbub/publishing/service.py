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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from hubbub.kernel.clock import Clock
from hubbub.kernel.destinations import Network as IpNetwork
from hubbub.kernel.destinations import check_url
from hubbub.kernel.sealing import PREFIX, SealError, SecretBox
from hubbub.publishing.best_times import channel_language
from hubbub.publishing.directory import PageOf
from hubbub.publishing.journal import Journal
from hubbub.publishing.ports import (
    NETWORKS,
    OPEN_REVIEWS,
    Actor,
    Attachment,
    AuditEntry,
    BestTimes,
    Change,
    Channel,
    Comment,
    Conflict,
    Decision,
    DecisionKind,
    Draft,
    Forbidden,
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
    Plan,
    Post,
    PublishingStore,
    Release,
    Review,
    Series,
    Step,
    Transient,
    Visibility,
    Workflow,
)
from hubbub.publishing.review import (
    applying,
    approvals_of,
    check_workflow,
    decide,
    done,
    eligible,
    mentioned,
    passed,
    standing,
    steps_of,
    waiting_on,
)
from hubbub.publishing.slots import Recurrence, WeeklySlots, moment_us, next_free, occurrences
from hubbub.publishing.text import BLUESKY_GRAPHEMES, graphemes, mastodon_length

log = structlog.get_logger("hubbub.publishing")
BLUESKY_LIMITS: Final = Limits(characters=BLUESKY_GRAPHEMES, media=4, image_bytes=1_000_000,
                               url_length=0)  # fmt: skip
"""What the protocol allows (app.bsky.feed.post: 300 graphemes; images: 4, 1 MB each)."""
HINT: Final = "a channel's service must be on a public address (HUBBUB_PUBLISH_ALLOWED_NETWORKS)"
LimitsOf = Callable[[NetworkName, str], Awaitable[Limits]]
"""What a network's service accepts: read from it where it says (Mastodon's instance)."""
MAX_MEDIA_BYTES: Final = 16 * 1024 * 1024
"""The largest image kept (Mastodon's default limit); each channel may take less."""
SECOND_US: Final = 1_000_000
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
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
        if post.reply_to and (problem := _reply_problem(post.reply_to, channel)):
            found.append(f"{channel.account} ({channel.network}): {problem}")
        if channel.network == "bluesky" and (post.spoiler or post.visibility != "public"):
            found.append(
                f"{channel.account} (bluesky): Bluesky posts are public and have no content"
                " warning; leave them out for this channel"
            )
    return found


def _reply_problem(reply_to: str, channel: Channel) -> str | None:
    """Why `channel` cannot answer the post `reply_to` names: a post of another network
    (Bluesky names posts by at:// URIs, Mastodon by their URLs)."""
    if channel.network == "bluesky" and not reply_to.startswith("at://"):
        return f"replies on Bluesky answer an at:// post, not {reply_to!r}"
    if channel.network == "mastodon" and not reply_to.startswith(("https://", "http://")):
        return f"replies on Mastodon answer a status by its URL, not {reply_to!r}"
    return None


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
    store: PublishingStore
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
    best_times: BestTimes | None = None
    """Where channels' best times to post are read (the analytics service)."""
    best_count: int = 10
    """How many of the week's best half-hours a queue that takes them has."""
    best_language: str = "en"
    """The language whose firehose posts score a channel with too few posts of its own,
    when none of its posts names one (`best_times.channel_language`)."""
    page_of: PageOf | None = None
    """A channel's page id, read from its network when it is connected (otherwise the
    channel directory reads it on its next pass)."""

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
        channel = replace(channel, page=await self._page(channel))
        made = await asyncio.to_thread(self.store.add_channel, channel)
        if self.journal is not None:
            await self.journal.channel_changed(made)
        return made

    async def _page(self, channel: Channel) -> str:
        """The channel's page id as its network says it; "" when it cannot say now."""
        if self.page_of is None:
            return ""
        try:
            return await self.page_of(channel)
        except (Permanent, Transient, OutcomeUnknown) as error:
            log.warning("a channel's page was not read", account=channel.account,
                        error=str(error))  # fmt: skip
            return ""

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
        """Disconnect it: its scheduled jobs cancelled (the log is told by the channel
        directory's next pass; `disconnect` tells it at once)."""
        self.store.remove_channel(tenant, channel, self.clock.now_us())

    async def disconnect(self, tenant: str, channel: str) -> None:
        """Disconnect it: its scheduled jobs cancelled, the log told."""
        gone = await asyncio.to_thread(self.store.channel, tenant, channel)
        await asyncio.to_thread(self.remove_channel, tenant, channel)
        if self.journal is not None:
            await self.journal.channel_changed(gone, active=False)

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
        tags: Sequence[str] = (),
        role: str = "",
        reply_to: str | None = None,
    ) -> tuple[Post, list[Job]]:
        """Check the post against every channel's limits, then make one job per channel,
        due now, `at`, or in the channel's next free queue slot (`queue`); or, with
        `repeat` (an RRULE, from `at`), a series per channel and a job per occurrence
        within the horizon. `Invalid` naming every problem, and nothing made, otherwise.
        `media` names the first part's images (`add_media`); `thread`, the parts after
        it, each a text and its images. The author's `draft` it was written in goes.
        With `reply_to` (someone's post, as its network names it: an at:// URI, a status
        URL), it is published in reply to that post.

        Under an approval workflow (one for a channel it names, or for the author's
        `role`), the post is kept with its review and no jobs (an empty list): its last
        step's approval makes them."""
        if not channels:
            raise Invalid("name at least one channel to publish to")
        rule = _when(at, queue, repeat)
        if len(thread) + 1 > MAX_PARTS:
            raise Invalid(f"a thread has at most {MAX_PARTS} parts, not {len(thread) + 1}")
        named = [*media, *(one for _, images in thread for one in images)]

        def read() -> tuple[list[Channel], dict[str, Attachment], list[Workflow]]:
            found = [self.store.channel(tenant, channel) for channel in dict.fromkeys(channels)]
            images = {a.id: a for a in self._attachments(tenant, named)}
            return found, images, self.store.workflows(tenant)

        chosen, images, workflows = await asyncio.to_thread(read)
        post = Post(
            id=secrets.token_hex(8), tenant=tenant, author=author, text=text,
            variants=dict(variants or {}), language=language, spoiler=spoiler,
            visibility=visibility, media=tuple(images[one] for one in media),
            thread=tuple(
                Part(part, tuple(images[one] for one in ones)) for part, ones in thread
            ),
            tags=_tags(tags), reply_to=reply_to or None,
        )  # fmt: skip
        if found := problems(post, chosen, self.require_alt):
            raise Invalid("; ".join(found))
        now = self.clock.now_us()
        flows = applying(workflows, [c.id for c in chosen], role)
        if flows:
            plan = Plan(tuple(c.id for c in chosen), at, queue, repeat)
            self._release(post, chosen, plan, now)  # what approval will do must be possible
            await self._submit(post, chosen, plan, flows, now, role)
            if draft is not None:
                await asyncio.to_thread(self.store.delete_draft, tenant, author, draft)
            return post, []
        # In the jobs' transaction, at their moment: their "scheduled" entries name its
        # author, and a schedule that fails leaves no trail of a post that is not kept.
        created = [self._entry(post, "created", author, now, _as_role(role))]
        if rule is not None:
            assert at is not None
            jobs = await self._start_series(post, chosen, rule, at, now, created)
        elif queue:
            queued = {channel.id: _chooser(channel, now) for channel in chosen}
            jobs = await asyncio.to_thread(self.store.schedule, post, {}, now, queued, created)
        else:
            dues = {channel.id: due_us(at, channel, now) for channel in chosen}
            jobs = await asyncio.to_thread(self.store.schedule, post, dues, now, None, created)
        if draft is not None:
            await asyncio.to_thread(self.store.delete_draft, tenant, author, draft)
        networks = {channel.id: channel.network for channel in chosen}
        if self.journal is not None:
            await self.journal.record(jobs, networks)
        return post, jobs

    async def _start_series(
        self, post: Post, chosen: Sequence[Channel], rule: Recurrence, at: str, now_us: int,
        audit: Sequence[AuditEntry] = (),
    ) -> list[Job]:  # fmt: skip
        """A series per channel from `at` (its first wall-clock time there), and a job for
        each occurrence within the horizon and the first past it."""
        made, occurring = self._series_for(post, chosen, rule, at, now_us)
        return await asyncio.to_thread(
            self.store.start_series, post, made, occurring, now_us, audit
        )

    def _series_for(
        self, post: Post, chosen: Sequence[Channel], rule: Recurrence, at: str, now_us: int
    ) -> tuple[list[Series], dict[str, list[int]]]:
        """A series per channel from `at`, and its occurrences within the horizon and
        the first past it, by channel."""
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
        return made, occurring

    async def set_queue(
        self, tenant: str, channel: str, slots: str | None, best: bool | None = None
    ) -> Channel:
        """Keep the channel's weekly queue slots, read in its zone ("mon-fri 09:00,13:30");
        blank: no queue. `Invalid` says where the text is wrong. With `best`, "add to
        queue" takes the channel's best times to post (read now, and again each day),
        and its own slots only until they are known."""
        found = await asyncio.to_thread(self.store.channel, tenant, channel)
        kept = str(WeeklySlots.parse(slots, found.time_zone)) if slots and slots.strip() else None
        changed = await asyncio.to_thread(self.store.set_queue, tenant, channel, kept, best)
        if best:
            await self.refresh_best(changed)
            changed = await asyncio.to_thread(self.store.channel, tenant, channel)
        return changed

    async def refresh_best(self, channel: Channel) -> bool:
        """Read the channel's best times to post again; whether they could be read (when
        not, its queue keeps the ones it had, or its own slots)."""
        if self.best_times is None:
            return False
        try:
            language = await asyncio.to_thread(
                channel_language, self.store, channel, self.best_language
            )
            best = await self.best_times.best(channel, language, self.best_count)
        except (Transient, OutcomeUnknown, Permanent) as error:
            log.warning("best times to post not read", channel=channel.id, error=str(error))
            return False
        text = "; ".join(f"{DAYS[day]} {time}" for day, time in best) or None
        slots = str(WeeklySlots.parse(text, channel.time_zone)) if text else None
        await asyncio.to_thread(self.store.keep_best_slots, channel.id, slots, self.clock.now_us())
        return True

    async def refresh_stale_best(self, every_s: float = 86_400.0, limit: int = 100) -> int:
        """Read again the best times of every channel whose queue takes them and whose
        were read longer than `every_s` ago; answers how many were."""
        before = self.clock.now_us() - int(every_s * SECOND_US)
        stale = await asyncio.to_thread(self.store.stale_best_slots, before, limit)
        return sum([await self.refresh_best(channel) for channel in stale])

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

    async def retry(self, tenant: str, job: str, actor: str = "") -> Job:
        """Schedule a failed, missed or cancelled job again; `actor` (who asked) is named
        in its post's audit trail."""
        now = self.clock.now_us()
        audit = await asyncio.to_thread(self._job_audit, tenant, job, actor, now)
        changed = await asyncio.to_thread(self.store.retry, tenant, job, now, audit)
        await self._record([changed])
        return changed

    async def cancel(self, tenant: str, job: str, actor: str = "") -> Job:
        """Cancel a scheduled (or held) job; `actor` is named in its post's audit trail."""
        now = self.clock.now_us()
        audit = await asyncio.to_thread(self._job_audit, tenant, job, actor, now)
        changed = await asyncio.to_thread(self.store.cancel, tenant, job, now, audit)
        await self._record([changed])
        return changed

    def _job_audit(
        self, tenant: str, job: str, actor: str, now_us: int
    ) -> Callable[[Job], list[AuditEntry]] | None:
        """What writes, in the change's transaction, the entry naming who changed `job`
        (as the state it went to: the trail shows the change once); None without `actor`."""
        if not actor:
            return None
        found = self.store.job(tenant, job)  # NotFound for another tenant's
        post = self.store.post_version(tenant, found.post, found.version)
        channel = self.store.channel(tenant, found.channel)
        where = f"{channel.account} ({channel.network})"
        return lambda changed: [self._entry(post, changed.state, actor, now_us, where)]

    # Team workflow: approvals, new versions, comments, links, audit trails

    def workflows(self, tenant: str) -> list[Workflow]:
        return self.store.workflows(tenant)

    async def put_workflow(
        self, tenant: str, actor: Actor, name: str, steps: Sequence[Step],
        channels: Sequence[str] = (), roles: Sequence[str] = (), workflow: str | None = None,
    ) -> Workflow:  # fmt: skip
        """Keep a workflow (a new one, or `workflow` replaced); only admins and owners."""
        _admin(actor)
        made = Workflow(
            id=workflow or secrets.token_hex(8), tenant=tenant, name=name.strip(),
            steps=tuple(steps), channels=tuple(dict.fromkeys(channels)),
            roles=tuple(dict.fromkeys(roles)), updated_us=self.clock.now_us(),
        )  # fmt: skip
        mine = [c.id for c in await asyncio.to_thread(self.store.channels, tenant)]
        check_workflow(made, mine)
        if workflow is not None:
            kept = await asyncio.to_thread(self.store.workflows, tenant)
            if workflow not in {one.id for one in kept}:
                raise NotFound(f"no workflow {workflow!r}")
        return await asyncio.to_thread(self.store.put_workflow, made)

    async def delete_workflow(self, tenant: str, actor: Actor, workflow: str) -> None:
        """Posts in review keep the steps they started with."""
        _admin(actor)
        if not await asyncio.to_thread(self.store.delete_workflow, tenant, workflow):
            raise NotFound(f"no workflow {workflow!r}")

    def review(self, tenant: str, post: str) -> Review | None:
        try:
            return self.store.review(tenant, post)
        except NotFound:
            return None

    def reviews(self, tenant: str, actor: Actor | None = None) -> list[Review]:
        """The tenant's open reviews; with `actor`, those whose step waits on them."""
        found = self.store.reviews(
            tenant, ("in_review",) if actor else OPEN_REVIEWS, 2000 if actor else 200
        )
        if actor is None:
            return found
        known: dict[str, bool] = {}
        return [
            r for r in found
            if r.author != actor.key
            and eligible(r.steps[r.step], actor, self._left(tenant, r.steps[r.step], known))
            and all(d.who != actor.key for d in approvals_of(r, r.step))
        ]  # fmt: skip

    def departed(self, review: Review) -> set[str]:
        """The people the review's current step names who have left the tenant: what
        `review.waiting_on` and `review.eligible` take as `left`."""
        return self._left(review.tenant, review.steps[review.step])

    def _left(self, tenant: str, step: Step, known: dict[str, bool] | None = None) -> set[str]:
        """The people `step` names who have left the tenant, as publishing's people table
        knows them (someone it has not heard of counts as still there); `known` keeps
        what was read, by user id, across calls."""
        known = {} if known is None else known
        for user in step.users:
            if user not in known:
                member = self.store.member(tenant, user)
                known[user] = member is not None and not member.active
        return {user for user in step.users if known[user]}

    async def _submit(
        self, post: Post, chosen: Sequence[Channel], plan: Plan, flows: Sequence[Workflow],
        now_us: int, role: str = "",
    ) -> Review:  # fmt: skip
        """Keep a new post under its workflows, waiting for its first step."""
        review = self._new_review(post, chosen, plan, flows, now_us)
        audit = [
            self._entry(post, "created", post.author, now_us, _as_role(role)),
            self._entry(post, "submitted", post.author, now_us, _steps_said(review)),
        ]
        await asyncio.to_thread(self.store.submit, post, review, audit)
        await self._ask(review, post)
        return review

    def _new_review(
        self, post: Post, chosen: Sequence[Channel], plan: Plan, flows: Sequence[Workflow],
        now_us: int, by: str | None = None, steps: Sequence[Step] = (),
    ) -> Review:  # fmt: skip
        """A review of `post` from the first step of `flows` (or of `steps`, kept from
        workflows since deleted); `by` made this version (its author by default)."""
        return Review(
            post=post.id, tenant=post.tenant, version=post.version, author=post.author,
            workflows=tuple(w.id for w in flows), steps=tuple(steps) or steps_of(flows),
            step=0, state="in_review", plan=plan, due_us=_planned(plan, chosen, now_us),
            step_since_us=now_us, updated_us=now_us, submitted_by=by or post.author,
        )  # fmt: skip

    async def _ask(self, review: Review, post: Post) -> None:
        """Tell the current step's approvers (those still in the tenant) that the post
        waits for them."""
        step = review.steps[review.step]
        left = await asyncio.to_thread(self._left, review.tenant, step)
        asked = standing(step, (), left)
        await self._tell(
            review.tenant, "review_requested", post,
            f"Waiting for your approval ({step.name}): {_excerpt(post.text)}",
            users=asked.users, roles=asked.roles, actor=post.author,
        )  # fmt: skip

    async def _tell(
        self, tenant: str, kind: str, post: Post, title: str, *, users: Sequence[str] = (),
        roles: Sequence[str] = (), handles: Sequence[str] = (), actor: str = "",
        body: str = "",
    ) -> None:  # fmt: skip
        if self.journal is not None:
            await self.journal.notify(
                tenant, kind, title, users=users, roles=roles, handles=handles,
                actor=actor.removeprefix("user:"), post=post.id, body=body,
                link=f"/publish/posts/{post.id}",
            )  # fmt: skip

    def _entry(
        self, post: Post, action: str, actor: str, now_us: int, detail: str | None = None
    ) -> AuditEntry:
        return AuditEntry(post.tenant, post.id, post.version, action, actor, now_us, detail)

    async def decide(
        self, tenant: str, actor: Actor, post: str, kind: DecisionKind,
        reason: str | None = None, version: int | None = None,
    ) -> Review:  # fmt: skip
        """Approve, reject or ask for changes on the post's current step: `Forbidden`
        for the author or someone the step does not name, `Conflict` when the review is
        not at `version` (the decider saw another) or was decided meanwhile. The last
        approval makes the jobs of the approved version, in the same transaction."""
        before = await asyncio.to_thread(self.store.review, tenant, post)
        if version is not None and version != before.version:
            raise Conflict(f"post {post} is at version {before.version}, not {version}:"
                           " read it again before deciding")  # fmt: skip
        now = self.clock.now_us()
        left = await asyncio.to_thread(self._left, tenant, before.steps[before.step])
        after, decision = decide(before, actor, kind, reason, now, left)
        kept = await asyncio.to_thread(self.store.post_version, tenant, post, before.version)
        release = None
        audit = [self._entry(kept, kind, actor.key, now, _decision_said(before, decision))]
        if after.state == "approved":
            chosen = await asyncio.to_thread(self._channels, tenant, after.plan.channels)
            release = await asyncio.to_thread(self._release, kept, chosen, after.plan, now)
        made = await asyncio.to_thread(
            self.store.decide, before, after, decision, audit, release, now
        )
        if made:
            await self._record(made)
        await self._told_of(before, after, decision, kept)
        return after

    async def _told_of(self, before: Review, after: Review, decision: Decision, post: Post) -> None:
        who = decision.who.removeprefix("user:").removeprefix("link:")
        author = [post.author.removeprefix("user:")] if post.author.startswith("user:") else []
        said = _excerpt(post.text)
        if decision.decision != "approved":
            verb = "rejected" if decision.decision == "rejected" else "asked for changes to"
            await self._tell(
                post.tenant,
                decision.decision,
                post,
                f"{who} {verb}: {said}",
                users=author,
                actor=decision.who,
                body=decision.reason or "",
            )
        elif after.state == "approved":
            await self._tell(post.tenant, "approved", post, f"Approved and scheduled: {said}",
                             users=author, actor=decision.who)  # fmt: skip
        elif after.step != before.step:
            await self._tell(post.tenant, "approved", post,
                             f"{before.steps[before.step].name} approved: {said}",
                             users=author, actor=decision.who)  # fmt: skip
            await self._ask(after, post)

    def _channels(self, tenant: str, channels: Sequence[str]) -> list[Channel]:
        """The tenant's channels of `channels` that are still connected (a post planned
        for one removed since goes to the others); `Conflict` when none is."""
        kept = {channel.id: channel for channel in self.store.channels(tenant)}
        found = [kept[channel] for channel in channels if channel in kept]
        if not found:
            raise Conflict("every channel the post was planned for was removed: change its"
                           " channels by writing it again")  # fmt: skip
        return found

    def _release(self, post: Post, chosen: Sequence[Channel], plan: Plan, now_us: int) -> Release:
        """The jobs `plan` makes for `post`: none is due before now (an approval that
        came after its time publishes at once)."""
        rule = _when(plan.at, plan.queue, plan.repeat)
        if rule is not None:
            assert plan.at is not None
            series, occurring = self._series_for(post, chosen, rule, plan.at, now_us)
            return Release(series=series, occurrences=occurring)
        if plan.queue:
            return Release(queued={c.id: _chooser(c, now_us) for c in chosen})
        if plan.dues:
            return Release(dues={c: max(due, now_us) for c, due in plan.dues.items()})
        return Release(dues={c.id: max(due_us(plan.at, c, now_us), now_us) for c in chosen})

    async def revise(
        self, tenant: str, actor: Actor, post: str, changes: Mapping[str, Any]
    ) -> tuple[Post, Review | None, list[Job]]:
        """A new version of the post, with `changes` (text, variants, language, spoiler,
        visibility, media, thread, tags; and `at` or `dues` for when): its older
        version's open jobs are cancelled; under a workflow the review starts again
        from its first step, and otherwise its jobs are made at once. `Conflict` when a
        job of it is published or being sent; `Forbidden` for someone who is neither
        its author nor an admin."""
        old = await asyncio.to_thread(self.store.post, tenant, post)
        if actor.key != old.author and actor.role not in ("owner", "admin"):
            raise Forbidden("only the post's author, or an admin, changes it")
        before = self.review(tenant, post)
        plan = before.plan if before else await asyncio.to_thread(self._plan_of, tenant, old)
        if "dues" in changes:
            plan = Plan(plan.channels, dues=changes["dues"])
        elif "at" in changes:
            plan = Plan(plan.channels, at=changes["at"], repeat=plan.repeat)
        named = list(changes.get("media", [a.id for a in old.media]))
        thread = changes.get("thread")
        named += [one for _, images in thread or () for one in images]

        def read() -> tuple[list[Channel], dict[str, Attachment], list[Workflow]]:
            mine = [a.id for a in old.media] + [a.id for p in old.thread for a in p.media]
            fresh = [one for one in named if one not in mine]
            images = {a.id: a for a in self._attachments(tenant, fresh)}
            images |= {a.id: a for a in old.media} | {a.id: a for p in old.thread for a in p.media}
            found = self._channels(tenant, plan.channels)
            return found, images, self.store.workflows(tenant)

        chosen, images, workflows = await asyncio.to_thread(read)
        plan = replace(plan, channels=tuple(c.id for c in chosen),
                       dues={c: due for c, due in plan.dues.items()
                             if c in {one.id for one in chosen}})  # fmt: skip
        new = replace(
            old, version=old.version + 1,
            text=changes.get("text", old.text), variants=changes.get("variants", old.variants),
            language=changes.get("language", old.language),
            spoiler=changes.get("spoiler", old.spoiler),
            visibility=changes.get("visibility", old.visibility),
            media=tuple(images[one] for one in changes.get("media", [a.id for a in old.media])),
            thread=old.thread if thread is None else tuple(
                Part(text, tuple(images[one] for one in ones)) for text, ones in thread
            ),
            tags=tuple(changes.get("tags", old.tags)),
        )  # fmt: skip
        if found := problems(new, chosen, self.require_alt):
            raise Invalid("; ".join(found))
        now = self.clock.now_us()
        moved = "at" in changes and plan.at is not None and not plan.repeat
        if moved and _planned(plan, chosen, now) < now - 60 * SECOND_US:  # type: ignore[operator]
            raise Invalid(f"{plan.at} has passed: choose a time to come")
        role = actor.role
        if actor.key != old.author:
            role = await asyncio.to_thread(self._author_role, tenant, old)
        flows = applying(workflows, plan.channels, role)
        flows += [w for w in workflows if before and w.id in before.workflows and w not in flows]
        # A review whose workflows were deleted meanwhile keeps its steps: a change never
        # skips the approvals the post was under.
        kept_steps = before.steps if before and not flows else ()
        action = "rescheduled" if set(changes) <= {"at", "dues"} else "edited"
        audit = [self._entry(new, action, actor.key, now, _plan_said(plan))]
        review, release = None, None
        if flows or kept_steps:
            review = self._new_review(new, chosen, plan, sorted(flows, key=lambda w: w.name),
                                      now, actor.key, kept_steps)  # fmt: skip
            audit.append(self._entry(new, "submitted", actor.key, now, _steps_said(review)))
        else:
            release = self._release(new, chosen, plan, now)
        cancelled, made = await asyncio.to_thread(
            self.store.revise, new, review, release, audit, now
        )
        await self._record([*cancelled, *made])
        if review is not None:
            await self._ask(review, new)
        return new, review, made

    def _author_role(self, tenant: str, post: Post) -> str:
        """The author's role now, as publishing's people table knows it; else the role they
        wrote the post in, as its trail's "created" entry says ("" when it does not say):
        the workflows of that role apply to every version."""
        if post.author.startswith("user:"):
            member = self.store.member(tenant, post.author.removeprefix("user:"))
            if member is not None:
                return member.role
        created = [e for e in self.store.audit(tenant, post.id)
                   if e.action == "created" and e.actor == post.author]  # fmt: skip
        said = (created[0].detail or "") if created else ""
        return said.removeprefix("as ") if said.startswith("as ") else ""

    def _plan_of(self, tenant: str, post: Post) -> Plan:
        """When a post scheduled without review is published: its open jobs' times."""
        waiting = [j for j in self.store.post_jobs(tenant, post.id)
                   if j.state in ("scheduled", "held")]  # fmt: skip
        if not waiting:
            raise Conflict(f"nothing of post {post.id} waits to be published: it cannot change")
        recurring = next((job.series for job in waiting if job.series), None)
        if recurring is not None:  # the series goes on from its first wall-clock time
            series = self.store.series(post.tenant, recurring)
            return Plan(tuple(one.channel for one in series), at=series[0].start_wall,
                        repeat=series[0].rule)  # fmt: skip
        dues = {job.channel: job.due_us for job in waiting}
        return Plan(tuple(dues), dues=dues)

    async def reschedule(
        self, tenant: str, actor: Actor, post: str, at: str, channel: str | None = None
    ) -> tuple[Post, Review | None, list[Job]]:
        """Move the post to `at` (on every channel, or on `channel` only): a new version,
        through the same checks and approvals as any change."""
        if channel is None:
            return await self.revise(tenant, actor, post, {"at": at})
        old = await asyncio.to_thread(self.store.post, tenant, post)
        before = self.review(tenant, post)
        plan = before.plan if before else await asyncio.to_thread(self._plan_of, tenant, old)
        if channel not in plan.channels:
            raise NotFound(f"post {post} is not on channel {channel!r}")
        if plan.queue or plan.repeat:
            said = "a queued" if plan.queue else "a recurring"
            raise Invalid(f"{said} post moves on every channel at once: leave out the channel")
        chosen = await asyncio.to_thread(self._channels, tenant, plan.channels)
        now = self.clock.now_us()
        dues = {c.id: (plan.dues or {}).get(c.id) or _planned(plan, [c], now) or now
                for c in chosen}  # fmt: skip
        moved = await asyncio.to_thread(self.store.channel, tenant, channel)
        dues[channel] = due_us(at, moved, now)
        if dues[channel] < now - 60 * SECOND_US:
            raise Invalid(f"{at} has passed: choose a time to come")
        return await self.revise(tenant, actor, post, {"dues": dues})

    async def comment(
        self, tenant: str, actor: Actor, post: str, text: str, parent: str | None = None
    ) -> Comment:
        """A comment on the post (a reply to `parent`); the author, the parent's author
        and everyone it names (`@alice`) are told."""
        text = text.strip()
        if not text:
            raise Invalid("the comment is empty")
        if len(text) > MAX_COMMENT:
            raise Invalid(f"a comment has at most {MAX_COMMENT} characters, not {len(text)}")
        kept = await asyncio.to_thread(self.store.post, tenant, post)
        now = self.clock.now_us()
        made = Comment(secrets.token_hex(8), tenant, post, parent, kept.version, actor.key,
                       text, now)  # fmt: skip
        entry = self._entry(kept, "commented", actor.key, now, _excerpt(text))
        await asyncio.to_thread(self.store.add_comment, made, entry)
        others = [kept.author]
        if parent is not None:
            others += [c.author for c in self.store.comments(tenant, post) if c.id == parent]
        told = [o.removeprefix("user:") for o in others if o.startswith("user:")]
        who = actor.key.removeprefix("user:").removeprefix("link:")
        await self._tell(tenant, "commented", kept, f"{who} commented: {_excerpt(text)}",
                         users=told, actor=actor.key, body=text)  # fmt: skip
        if handles := mentioned(text):
            await self._tell(tenant, "mentioned", kept, f"{who} mentioned you: {_excerpt(text)}",
                             handles=handles, actor=actor.key, body=text)  # fmt: skip
        return made

    def comments(self, tenant: str, post: str) -> list[Comment]:
        self.store.post(tenant, post)  # NotFound for another tenant's
        return self.store.comments(tenant, post)

    def audit(self, tenant: str, post: str) -> list[AuditEntry]:
        self.store.post(tenant, post)
        return self.store.audit(tenant, post)

    async def link(
        self, tenant: str, actor: Actor, post: str, name: str, hours: float
    ) -> tuple[str, int]:
        """A signed link for an external reviewer named `name` to see the post, comment
        and approve its external step, for `hours`: (its token, when it ends)."""
        if actor.external or actor.role == "viewer":
            raise Forbidden("only the team (editors and above) shares a post for review")
        name = " ".join(name.split())
        if not name or len(name) > 80:
            raise Invalid("name the reviewer, in at most 80 characters")
        if not 0 < hours <= MAX_LINK_HOURS:
            raise Invalid(f"a link lasts from 1 to {MAX_LINK_HOURS} hours, not {hours}")
        kept = await asyncio.to_thread(self.store.post, tenant, post)
        ends = self.clock.now_us() + int(hours * 3600 * SECOND_US)
        made = self.clock.now_us()
        token = self.box.seal(json.dumps(
            {"t": tenant, "p": post, "n": name, "e": ends, "c": actor.key, "i": made}
        ))  # fmt: skip
        await asyncio.to_thread(self.store.add_audit, [
            self._entry(kept, "link_created", actor.key, self.clock.now_us(), f"for {name}")
        ])  # fmt: skip
        return token.removeprefix(PREFIX), ends

    def linked(self, token: str) -> tuple[str, str, Actor]:
        """The tenant, post and reviewer a link's token names; `NotFound` for a forged,
        tampered, expired or ended one (never saying which)."""
        try:
            found = json.loads(self.box.open(PREFIX + token))
            tenant, post, name, ends = found["t"], found["p"], found["n"], int(found["e"])
            shared_by, made = str(found.get("c", "")), int(found.get("i", 0))
        except (SealError, ValueError, KeyError, TypeError):
            raise NotFound("no such link: it may have ended; ask for a new one") from None
        if ends < self.clock.now_us() or made < self.store.links_end(tenant, post):
            raise NotFound("no such link: it may have ended; ask for a new one")
        return tenant, post, Actor(f"link:{name}", "viewer", via=shared_by)

    async def end_links(self, tenant: str, actor: Actor, post: str) -> None:
        """End every link to the post made until now (a new one may be made after)."""
        if actor.external or actor.role == "viewer":
            raise Forbidden("only the team (editors and above) ends a post's links")
        kept = await asyncio.to_thread(self.store.post, tenant, post)
        now = self.clock.now_us()
        entry = self._entry(kept, "links_ended", actor.key, now, "every link made until now")
        await asyncio.to_thread(self.store.end_links, tenant, post, now + 1, entry)

    async def set_paused(self, tenant: str, channel: str, paused: bool) -> Channel:
        """Pause a channel (its scheduled posts held, none lost) or resume it: a held
        post whose time passed takes the channel's next free queue slot, or goes now."""
        now = self.clock.now_us()

        def requeue(found: Channel, held: Sequence[Job]) -> dict[str, int]:
            late = sorted((j for j in held if j.due_us < now), key=lambda j: j.due_us)
            if not found.queue:
                return {job.id: now for job in late}
            slots = WeeklySlots.parse(found.queue, found.time_zone)
            taken = {j.due_us for j in held if j.due_us >= now}
            moved = {}
            for job in late:
                moved[job.id] = next_free(slots, now, taken)
                taken.add(moved[job.id])
            return moved

        kept, changed = await asyncio.to_thread(
            self.store.pause, tenant, channel, paused, now, requeue
        )
        await self._record(changed)
        return kept

    async def remind(self, remind_after_s: float, overdue_within_s: float, limit: int = 200) -> int:
        """Tell again the approvers of every step waiting longer than `remind_after_s`
        (those of them who have not approved it yet, and are still in the tenant); a step
        done meanwhile because the people it waited on left goes on instead, as an
        approval would (`settle_departures` does so at once, when the log says they
        left). Flag (once) each open review whose planned time is within
        `overdue_within_s`, telling its author and those it still waits on. Each review
        is claimed by one replica. Answers how many reviews it told of."""
        now = self.clock.now_us()
        waiting = await asyncio.to_thread(
            self.store.claim_reminders, now - int(remind_after_s * SECOND_US), now, limit
        )
        for review in waiting:
            step = review.steps[review.step]
            left = await asyncio.to_thread(self._left, review.tenant, step)
            if await self._pass_if_done(review, left):
                continue  # the people it waited on left: it went on instead
            post = await asyncio.to_thread(self.store.post_version, review.tenant, review.post,
                                           review.version)  # fmt: skip
            # Only who the step still waits on: a role one of its people approved for
            # (an `all` step) is not reminded again, nor anyone who left.
            waiting_for = waiting_on(step, approvals_of(review, review.step), left)
            title = f"Still waiting for your approval ({step.name}): {_excerpt(post.text)}"
            await self._tell(review.tenant, "reminder", post, title,
                             users=[u for u in waiting_for
                                    if not u.startswith("role:") and u != "external"],
                             roles=[w.removeprefix("role:") for w in waiting_for
                                    if w.startswith("role:")],
                             actor=review.author)  # fmt: skip
        due = await asyncio.to_thread(
            self.store.claim_overdue, now + int(overdue_within_s * SECOND_US), now, limit
        )
        for review in due:
            post = await asyncio.to_thread(self.store.post_version, review.tenant, review.post,
                                           review.version)  # fmt: skip
            step = review.steps[review.step]
            author = [review.author.removeprefix("user:")] * review.author.startswith("user:")
            if review.state != "in_review":  # it waits on its author, not on approvers
                await self._tell(review.tenant, "overdue", post,
                                 f"Due soon, and waiting for your new version: "
                                 f"{_excerpt(post.text)}", users=author)  # fmt: skip
            else:  # those it still waits on, as reminders tell
                left = await asyncio.to_thread(self._left, review.tenant, step)
                waiting_for = waiting_on(step, approvals_of(review, review.step), left)
                await self._tell(review.tenant, "overdue", post,
                                 f"Not approved yet, and due soon: {_excerpt(post.text)}",
                                 users=[*author, *(u for u in waiting_for if not
                                                   u.startswith("role:") and u != "external")],
                                 roles=[w.removeprefix("role:") for w in waiting_for
                                        if w.startswith("role:")])  # fmt: skip
            await asyncio.to_thread(self.store.add_audit, [
                self._entry(post, "flagged", "publisher", now, "due before it is approved")
            ])  # fmt: skip
        return len(waiting) + len(due)

    async def settle_departures(self, tenant: str) -> int:
        """Move on each of the tenant's reviews whose current step is done now that people
        it waited on have left (`review.standing`); answers how many moved."""
        found = await asyncio.to_thread(self.store.reviews, tenant, ("in_review",), 2000)
        known: dict[str, bool] = {}
        moved = 0
        for review in found:
            left = await asyncio.to_thread(self._left, tenant, review.steps[review.step], known)
            moved += await self._pass_if_done(review, left)
        return moved

    async def _pass_if_done(self, review: Review, left: set[str]) -> bool:
        """Move the review past its current step when that step is done without the
        people of `left` (the last step's makes its jobs, as an approval does); whether
        it moved (not when it was decided meanwhile)."""
        step = review.steps[review.step]
        if not left or review.state != "in_review":
            return False
        if not done(step, approvals_of(review, review.step), left):
            return False
        now = self.clock.now_us()
        after = passed(review, now)
        post = await asyncio.to_thread(self.store.post_version, review.tenant, review.post,
                                       review.version)  # fmt: skip
        gone = ", ".join(sorted(left))
        said = f"step {review.step + 1} ({step.name}): the others named left ({gone})"
        audit = [self._entry(post, "approved", "publisher", now, said)]
        release = None
        try:
            if after.state == "approved":
                chosen = await asyncio.to_thread(self._channels, review.tenant, after.plan.channels)
                release = await asyncio.to_thread(self._release, post, chosen, after.plan, now)
            made = await asyncio.to_thread(
                self.store.decide, review, after, None, audit, release, now
            )
        except (Conflict, Invalid) as error:
            log.info("a review was not moved on", post=review.post, why=str(error))
            return False
        await self._record(made)
        author = [post.author.removeprefix("user:")] * post.author.startswith("user:")
        if after.state == "approved":
            await self._tell(review.tenant, "approved", post,
                             f"Approved and scheduled: {_excerpt(post.text)}", users=author,
                             actor="publisher")  # fmt: skip
        else:
            await self._tell(review.tenant, "approved", post,
                             f"{step.name} approved: {_excerpt(post.text)}", users=author,
                             actor="publisher")  # fmt: skip
            await self._ask(after, post)
        return True


def _tags(tags: Sequence[str]) -> tuple[str, ...]:
    """Tags trimmed, without blanks or repeats; `Invalid` past 20, or one past 64."""
    kept = tuple(dict.fromkeys(" ".join(t.split()) for t in tags if t.strip()))
    if len(kept) > 20 or any(len(t) > 64 for t in kept):
        raise Invalid("a post has at most 20 tags, each of at most 64 characters")
    return kept


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
    """What picks `channel`'s next free queue slot, given the slots its open jobs take:
    among its best times to post when its queue takes them and they are known."""
    if channel.best_queue and channel.best_slots:
        best = WeeklySlots.parse(channel.best_slots, channel.time_zone)
        return lambda taken: next_free(best, now_us, taken)
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
        "limits": vars(channel.limits), "queue": channel.queue, "paused": channel.paused,
        "best_queue": channel.best_queue, "best_slots": channel.best_slots,
    }  # fmt: skip


MAX_COMMENT: Final = 5000
"""The longest comment, in characters."""
MAX_LINK_HOURS: Final = 720
"""The longest an external reviewer's link lasts (30 days)."""


def _admin(actor: Actor) -> None:
    if actor.role not in ("owner", "admin"):
        raise Forbidden("only an admin or the owner manages approval workflows")


def _planned(plan: Plan, chosen: Sequence[Channel], now_us: int) -> int | None:
    """When a post under review is planned to go out: the first of its channels' times
    (None when it takes queue slots, or goes once approved)."""
    if plan.dues:
        return min(plan.dues.values())
    if plan.queue or plan.at is None or not chosen:
        return None
    return min(due_us(plan.at, channel, now_us) for channel in chosen)


def _as_role(role: str) -> str | None:
    return f"as {role}" if role else None


def _excerpt(text: str, most: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 1] + "…"


def _steps_said(review: Review) -> str:
    return " → ".join(step.name for step in review.steps)


def _plan_said(plan: Plan) -> str:
    if plan.dues:
        return "at " + ", ".join(
            f"{datetime.fromtimestamp(due / 1e6, UTC):%Y-%m-%d %H:%M} UTC"
            for due in sorted(set(plan.dues.values()))
        )
    if plan.queue:
        return "in the next free queue slots"
    return (
        f"at {plan.at}" + (f", repeating {plan.repeat}" if plan.repeat else "")
        if plan.at
        else "now"
    )


def _decision_said(review: Review, decision: Decision) -> str:
    step = review.steps[decision.step]
    said = f"step {decision.step + 1} ({step.name})"
    return f"{said}: {decision.reason}" if decision.reason else said
