"""Publishing's ports: where channels, posts and publish jobs are kept (`JobStore`), and
the networks posts are published to (`Network`).

A **channel** is one account of a tenant on one network (a Bluesky handle on its PDS, a
Mastodon account on its instance), with its credentials sealed (`SecretBox`) and its
IANA time zone. A **post** has one text, per-channel variants, images with alt text, a
language, and for Mastodon a content warning and a visibility; it may be a **thread**,
parts published in order, each in reply to the one before. An image is kept as a
**medium** of the tenant's until the post that names it is forgotten. Every (post
version, channel) is a **publish job**, the truth of what is published:

    scheduled → claimed (a worker holds a lease) → sending → published
                                               ↘ failed (permanent, or out of tries)
                                               ↘ unknown (the network may have it)
    scheduled → missed (due longer ago than the platform may be late) · cancelled
    scheduled ⇄ held (its channel's queue is paused: neither published nor missed)

Exactly once rests on two things. Claiming is atomic (`claim`): a job is handed to one
worker at a time, and a lease that runs out (the worker died) makes it claimable again.
And what a job sends is named before it is sent: the Bluesky record key (a TID) and the
Mastodon `Idempotency-Key` are chosen when the job is made, so a job claimed again after
a crash first asks the network whether its post is there (`Network.find`) and sends it
only if it is not. A thread's parts have keys of their own, each derived from the job's
(`part_key` of the network), so each part is looked for, and the first missing one sent.

Contract of `JobStore` (`hubbub.publishing.sql.SqlJobStore` meets it on SQLite and
PostgreSQL): `claim` never hands one job to two workers at once, even to workers on
different processes or hosts; every change of state names the worker that holds the
job, and is refused (`LostLease`) when another has it since; nothing is ever deleted but
by `forget_before` (published, failed, missed and cancelled jobs older than the
retention, and with them their posts and the posts' media) and by `add_media` (media no
post named within `UNATTACHED_MEDIA_US` of their upload). A medium belongs to one post at
most, and another tenant's is `NotFound`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

NetworkName = Literal["bluesky", "mastodon"]
NETWORKS: Final = ("bluesky", "mastodon")
JobState = Literal[
    "scheduled",
    "claimed",
    "sending",
    "published",
    "failed",
    "unknown",
    "missed",
    "cancelled",
    "held",
]
OPEN_STATES: Final = ("scheduled", "claimed", "sending", "unknown", "held")
"""States from which a job may still be published."""
Visibility = Literal["public", "unlisted", "private", "direct"]
IMAGE_TYPES: Final = ("image/png", "image/jpeg", "image/webp", "image/gif")
"""The images a post may carry (both networks take them)."""
UNATTACHED_MEDIA_US: Final = 86_400 * 1_000_000
"""How long an uploaded medium waits for a post to name it before it is dropped."""


class NotFound(LookupError):
    """No such channel, post or job for this tenant (another tenant's is not found either)."""


class LostLease(RuntimeError):
    """The job is no longer this worker's: its lease ran out and another claimed it."""


class Invalid(ValueError):
    """What a post asks cannot be published; the message names the channel, the limit
    and by how much it is exceeded."""


@dataclass(frozen=True)
class Limits:
    """What a channel's network accepts in one post."""

    characters: int
    """In the network's own unit: graphemes on Bluesky, characters on Mastodon."""
    media: int = 4
    image_bytes: int = 1_000_000
    url_length: int = 23
    """What a URL counts for (Mastodon); 0: its own length (Bluesky counts graphemes)."""


@dataclass(frozen=True)
class Channel:
    id: str
    tenant: str
    network: NetworkName
    account: str
    """The handle (Bluesky) or `user@instance` (Mastodon)."""
    service: str
    """The PDS or instance URL, https://…"""
    time_zone: str
    limits: Limits
    sealed_credentials: str = field(repr=False)
    """`SecretBox.seal` of the credentials' JSON: never kept or logged in the clear."""
    queue: str | None = None
    """Its queue's weekly slots, in its zone (`slots.WeeklySlots`' text); None: no queue."""
    paused: bool = False
    """Its posts are held (`held`): neither published nor missed until it resumes."""
    best_queue: bool = False
    """Whether "add to queue" takes the channel's best times to post (`best_slots`)
    rather than its own slots, once they are known."""
    best_slots: str | None = None
    """Its best half-hours of the week, as `slots.WeeklySlots`' text in its zone."""
    best_updated_us: int | None = None
    page: str = ""
    """The account's page id as ingest names it (its DID on Bluesky, its account URL on
    Mastodon), read from the network when it was connected; "" while unknown."""


@dataclass(frozen=True)
class Media:
    """An image a tenant uploaded, kept in the relational store (its bytes apart:
    `JobStore.media_data`)."""

    id: str
    tenant: str
    content_type: str
    """One of `IMAGE_TYPES`, as its bytes say (never as the uploader claimed)."""
    size: int
    alt: str | None
    created_us: int
    post: str | None = None
    """The post that names it; None until one does."""


MediaData = Callable[[str, str], bytes]
"""The bytes of a tenant's medium (`JobStore.media_data`): how a network reads an image it
uploads, only when it sends it."""


@dataclass(frozen=True)
class Attachment:
    """A medium as a post names it: enough to check it against a channel's limits and to
    describe it, without its bytes."""

    id: str
    content_type: str
    size: int
    alt: str | None = None


@dataclass(frozen=True)
class Part:
    """One post of a thread (or the whole of a post that is not one)."""

    text: str
    media: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Post:
    id: str
    tenant: str
    author: str
    text: str
    version: int = 1
    variants: dict[str, str] = field(default_factory=dict)
    """Per channel id: the text that channel publishes instead (of the first part)."""
    language: str | None = None
    spoiler: str | None = None
    visibility: Visibility = "public"
    media: tuple[Attachment, ...] = ()
    """The images of the first part."""
    thread: tuple[Part, ...] = ()
    """The parts after the first, in order, each published in reply to the one before."""
    tags: tuple[str, ...] = ()
    """The team's own labels (a campaign, a client), to find it by in the calendar."""
    reply_to: str | None = None
    """The post it answers, someone else's as its network names it (an at:// URI on
    Bluesky, a status URL on Mastodon); its first part is published in reply to it."""

    def text_for(self, channel: str) -> str:
        return self.variants.get(channel, self.text)

    def parts_for(self, channel: str) -> list[Part]:
        """What `channel` publishes, part by part: one part unless the post is a thread."""
        return [Part(self.text_for(channel), self.media), *self.thread]

    def media_ids(self) -> list[str]:
        """Every medium the post names, in order, each once."""
        named = [a.id for a in self.media] + [a.id for p in self.thread for a in p.media]
        return list(dict.fromkeys(named))


@dataclass(frozen=True)
class Job:
    id: str
    tenant: str
    post: str
    version: int
    channel: str
    due_us: int
    state: JobState
    idempotency_key: str
    """Sent with the post: Mastodon's `Idempotency-Key`, and the Bluesky record key."""
    attempts: int = 0
    worker: str | None = None
    lease_until_us: int | None = None
    remote_id: str | None = None
    remote_url: str | None = None
    error: str | None = None
    updated_us: int = 0
    check_first: bool = False
    """The post may be on the network already (a send was interrupted, or its outcome is
    unknown): ask the network before sending."""
    sent_us: int | None = None
    """When it was last sent (its request went out)."""
    series: str | None = None
    """The recurring post's series it publishes one occurrence of; None: no series."""
    occurrence_us: int = 0
    """The occurrence of its series it publishes (its first due time); 0 outside one."""


@dataclass(frozen=True)
class Published:
    """Where the network keeps the post."""

    remote_id: str
    url: str


@dataclass(frozen=True)
class Outcome:
    """What became of a job its worker held: the change `JobStore.settle` makes."""

    job: str
    state: Literal["published", "failed", "scheduled", "unknown"]
    error: str | None = None
    due_us: int | None = None
    """When it is claimable again (scheduled, unknown)."""
    found: Published | None = None
    """Where the network keeps it (published)."""
    attempted: bool = True
    """Whether the claim counts as an attempt: not when nothing was sent (scheduled
    again to wait for the account's budget)."""


@dataclass(frozen=True)
class Change:
    """One entry of a job's history: the state it went to, when, and why."""

    job: str
    channel: str
    state: JobState
    at_us: int
    error: str | None
    attempts: int


@dataclass(frozen=True)
class Series:
    """A recurring post on one channel: its RFC 5545 rule, expanded from `start_wall` (a
    naive ISO wall-clock time) in `time_zone`. Jobs exist for its occurrences up to
    `through_us`, the last one made; later ones are made as time passes."""

    id: str
    tenant: str
    post: str
    version: int
    channel: str
    rule: str
    start_wall: str
    time_zone: str
    through_us: int
    state: Literal["active", "ended", "cancelled"] = "active"
    updated_us: int = 0


@dataclass(frozen=True)
class Draft:
    """A post being written, kept as its author types: what the composer holds, as it
    holds it (`body`: text, channels, thread, media, at, language, spoiler, visibility)."""

    id: str
    tenant: str
    author: str
    body: Mapping[str, Any]
    updated_us: int


class TooMany(ValueError):
    """A limit on how many of something one may keep is reached (drafts per author)."""


class Transient(Exception):
    """Worth trying again later (a 5xx, a 429); `retry_after_s` when the network said."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Permanent(Exception):
    """Never worth trying again as it is (a 4xx): the message is the network's."""


class OutcomeUnknown(Exception):
    """The request may or may not have been carried out (a timeout, a reset)."""


class Network(Protocol):
    """One network's API, for one channel's credentials."""

    async def publish(self, channel: Channel, post: Post, job: Job) -> Published:
        """Publish `post` as `job` names it (its idempotency key / record key); raises
        `Transient`, `Permanent` or `OutcomeUnknown`."""
        ...

    async def find(self, channel: Channel, post: Post, job: Job) -> Published | None:
        """The post `job` published, if the network has it (after an unknown outcome);
        None also when sending it again with its key cannot make a second one."""
        ...

    async def page(self, channel: Channel) -> str:
        """The channel's account as ingest names its page (a DID, an account URL); raises
        `Transient`, `Permanent` or `OutcomeUnknown`."""
        ...


class BestTimes(Protocol):
    """Where a channel's best times to post come from (the analytics service's scores
    of the week's half-hours, from the engagement of its own published posts, or of the
    firehose's in its network and language)."""

    async def best(self, channel: Channel, language: str, count: int) -> list[tuple[int, str]]:
        """The `count` best half-hours of the week in the channel's zone, best first, as
        (weekday, "HH:MM") with Monday 0; raises `Transient` when they cannot be read."""
        ...


class JobStore(Protocol):
    def add_channel(self, channel: Channel) -> Channel: ...

    def channels(self, tenant: str) -> list[Channel]: ...

    def all_channels(self) -> list[Channel]:
        """Every tenant's channels (to tell the log of each)."""
        ...

    def set_page(self, channel: str, page: str) -> None:
        """Keep the channel's page id (read from its network after it was connected)."""
        ...

    def channel(self, tenant: str, channel: str) -> Channel:
        """NotFound for another tenant's or none."""
        ...

    def remove_channel(self, tenant: str, channel: str, now_us: int = 0) -> None:
        """Its scheduled jobs are cancelled; NotFound for another tenant's or none."""
        ...

    def set_queue(
        self, tenant: str, channel: str, slots: str | None, best: bool | None = None
    ) -> Channel:
        """Keep the channel's queue slots (None: no queue), and whether its queue takes
        its best times (`best`; None: as it was); NotFound for another's."""
        ...

    def keep_best_slots(self, channel: str, slots: str | None, now_us: int) -> None:
        """The channel's best times to post, as they were read at `now_us`."""
        ...

    def stale_best_slots(self, before_us: int, limit: int) -> list[Channel]:
        """Channels whose queue takes their best times, read last before `before_us`."""
        ...

    def schedule(
        self,
        post: Post,
        dues: Mapping[str, int],
        now_us: int | None = None,
        queued: Mapping[str, Callable[[set[int]], int]] | None = None,
        audit: Sequence[AuditEntry] = (),
    ) -> list[Job]:
        """Keep `post` and make one job per channel of `dues` and of `queued`, each with
        its own idempotency key; the media it names become its. A job of `dues` is due
        when it says; one of `queued` when its chooser answers, given the due times of
        the channel's open jobs, read in the same transaction (the channel's row locked,
        so two posts queued at once never take one slot). NotFound when a channel or a
        medium is not the tenant's; ValueError when a medium is another post's already.
        Each job's history starts at `now_us` (by default, its due time). The `audit`
        entries are written in the same transaction."""
        ...

    def start_series(
        self, post: Post, series: Sequence[Series], occurrences: Mapping[str, Sequence[int]],
        now_us: int, audit: Sequence[AuditEntry] = (),
    ) -> list[Job]:  # fmt: skip
        """Keep `post` and its series (one per channel), with a job per occurrence of
        `occurrences` (by channel); each series' `through_us` is its last occurrence. The
        `audit` entries are written in the same transaction."""
        ...

    def series_to_extend(self, before_us: int, limit: int) -> list[Series]:
        """Active series whose last job is due before `before_us`: those to top up."""
        ...

    def extend_series(self, series: Series, occurrences: Sequence[int], now_us: int) -> list[Job]:
        """A job for each of `occurrences` (all after `series.through_us`), and the series
        through the last; an empty list ends it. Made once: a series another sweeper has
        extended meanwhile (its `through_us` is no longer `series`') changes nothing and
        answers no jobs."""
        ...

    def series(self, tenant: str, series: str) -> list[Series]:
        """The series, one per channel; NotFound for another tenant's or none."""
        ...

    def cancel_series(self, tenant: str, series: str, now_us: int) -> list[Job]:
        """Stop the series: no more occurrences; its scheduled jobs cancelled (answered).
        NotFound for another tenant's or none."""
        ...

    def history(self, tenant: str, post: str) -> list[Change]:
        """Every change of the post's jobs, oldest first; NotFound for another tenant's."""
        ...

    def put_draft(self, draft: Draft, at_most: int) -> Draft:
        """Keep the draft (a new one, or the author's of that id, replaced); `TooMany`
        when it is new and the author keeps `at_most` already."""
        ...

    def drafts(self, tenant: str, author: str) -> list[Draft]:
        """The author's drafts, newest first."""
        ...

    def draft(self, tenant: str, author: str, draft: str) -> Draft:
        """NotFound for another tenant's or author's, or none."""
        ...

    def delete_draft(self, tenant: str, author: str, draft: str) -> bool:
        """Whether there was one to delete."""
        ...

    def post(self, tenant: str, post: str) -> Post:
        """The post's newest version."""
        ...

    def post_version(self, tenant: str, post: str, version: int) -> Post: ...

    def channel_language(self, tenant: str, channel: str, recent: int = 50) -> str | None:
        """The language most of the channel's `recent` latest posts (by their jobs' due
        time, cancelled ones left out: an edited post counts as its newest version) were
        written in; of two as common, the one of the latest post; None when
        none of them names one. One query, however many jobs the tenant has."""
        ...

    def post_jobs(self, tenant: str, post: str) -> list[Job]:
        """Every job of every version of the post, by due time."""
        ...

    def jobs(self, tenant: str, limit: int = 100) -> list[Job]:
        """The tenant's jobs, newest due first."""
        ...

    def job(self, tenant: str, job: str) -> Job: ...

    def claim(self, worker: str, now_us: int, lease_s: float, limit: int) -> list[Job]:
        """Up to `limit` jobs due by `now_us` (scheduled, unknown, or claimed/sending
        with a lapsed lease), now this worker's until its lease ends."""
        ...

    def sending(self, job: str, worker: str, now_us: int) -> Job:
        """The worker is about to send: from here an interruption is an unknown outcome."""
        ...

    def begin_sending(self, worker: str, jobs: Sequence[str], now_us: int) -> list[Job]:
        """`sending` for many jobs in one transaction: answers those still the worker's."""
        ...

    def settle(self, worker: str, outcomes: Sequence[Outcome], now_us: int) -> list[Job]:
        """Record many jobs' outcomes in one transaction (as `published`, `failed`,
        `retry_later` and `unknown` each do): answers the jobs changed, leaving out those
        no longer the worker's."""
        ...

    def context(
        self, jobs: Sequence[Job]
    ) -> tuple[dict[str, Channel], dict[tuple[str, int], Post]]:
        """The channels (by id) and post versions (by (post, version)) `jobs` need, read
        at once; one that is gone is left out."""
        ...

    def published(self, job: str, worker: str, found: Published, now_us: int) -> Job: ...

    def failed(self, job: str, worker: str, error: str, now_us: int) -> Job: ...

    def retry_later(self, job: str, worker: str, error: str, due_us: int, now_us: int) -> Job:
        """Back to scheduled, due at `due_us`, the error kept for people to read; looked
        for first when it is claimed again if it had been sent."""
        ...

    def unknown(self, job: str, worker: str, error: str, due_us: int, now_us: int) -> Job:
        """The outcome is unknown: claimable again at `due_us`, and then the network is
        asked first whether the post is there."""
        ...

    def miss(self, now_us: int, late_us: int) -> list[Job]:
        """Mark missed every scheduled job due longer than `late_us` before `now_us`."""
        ...

    def cancel(
        self, tenant: str, job: str, now_us: int,
        audit: Callable[[Job], Sequence[AuditEntry]] | None = None,
    ) -> Job:  # fmt: skip
        """A scheduled or held job cancelled; `audit` gives, from the changed job, the
        entries written in the same transaction."""
        ...

    def retry(
        self, tenant: str, job: str, now_us: int,
        audit: Callable[[Job], Sequence[AuditEntry]] | None = None,
    ) -> Job:  # fmt: skip
        """A failed, missed or cancelled job scheduled again, now, with the same
        idempotency key: what reached the network before is found, not sent twice.
        `audit` gives, from the changed job, the entries written in the same transaction."""
        ...

    def forget_before(self, before_us: int) -> int:
        """Drop finished jobs last changed before `before_us`, and posts left with none
        (but those whose review moved since), with their media, reviews, comments and
        audit trails."""
        ...

    def add_media(self, media: Media, data: bytes) -> Media:
        """Keep an image and its bytes; media no post named within `UNATTACHED_MEDIA_US`
        before it are dropped meanwhile, so uploads never named do not pile up."""
        ...

    def media(self, tenant: str, media: str) -> Media:
        """NotFound for another tenant's or none."""
        ...

    def media_data(self, tenant: str, media: str) -> bytes:
        """The image's bytes; NotFound for another tenant's or none."""
        ...

    def close(self) -> None: ...


# Team workflow: approvals, comments and each post's audit trail.

ReviewState = Literal["in_review", "changes_requested", "rejected", "approved"]
OPEN_REVIEWS: Final = ("in_review", "changes_requested", "rejected")
"""A review that keeps its post from being scheduled."""
DecisionKind = Literal["approved", "rejected", "changes_requested"]


class Conflict(ValueError):
    """The thing cannot change as asked now: a post already published or being sent, a
    review decided by someone else meanwhile, a version that is no longer the newest."""


class Forbidden(PermissionError):
    """The caller may not do this (approve their own post, decide a step that is not
    theirs, manage workflows without being an admin)."""


@dataclass(frozen=True)
class Actor:
    """Who acts, as the gateway names them: `key` is `user:<id>` for a person signed in,
    an API key's id otherwise, or `link:<name>` for an external reviewer; `role` the
    caller's (owner, admin, editor, viewer)."""

    key: str
    role: str = "viewer"
    via: str = ""
    """For an external reviewer, the key of who shared the link."""

    @property
    def user(self) -> str | None:
        """The person's user id; None for an API key or an external reviewer."""
        return self.key.removeprefix("user:") if self.key.startswith("user:") else None

    @property
    def external(self) -> bool:
        return self.key.startswith("link:")


@dataclass(frozen=True)
class Step:
    """One step of a workflow: who approves (people by user id, anyone of a role, or an
    external reviewer through a link), and whether any one of them or all are needed."""

    name: str
    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    mode: Literal["any", "all"] = "any"
    external: bool = False


@dataclass(frozen=True)
class Workflow:
    """Named steps in order, for the posts that name one of `channels` or whose author
    has one of `roles`."""

    id: str
    tenant: str
    name: str
    steps: tuple[Step, ...]
    channels: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    updated_us: int = 0


@dataclass(frozen=True)
class Plan:
    """When a post under review is to be published once approved: at `at` (a moment,
    or a wall-clock time read in each channel's zone), in each channel's next free queue
    slot (`queue`), as a series (`repeat`, from `at`), or now (none of them)."""

    channels: tuple[str, ...]
    at: str | None = None
    queue: bool = False
    repeat: str | None = None
    dues: Mapping[str, int] = field(default_factory=dict)
    """Each channel's own moment (µs), instead of `at`: what a post scheduled without
    review keeps when it is changed."""


@dataclass(frozen=True)
class Decision:
    post: str
    version: int
    step: int
    who: str
    role: str
    decision: DecisionKind
    reason: str | None
    at_us: int


@dataclass(frozen=True)
class Review:
    """A post version's way through its workflows' steps. `decisions` are the current
    version's only: a new version starts again from the first step."""

    post: str
    tenant: str
    version: int
    author: str
    workflows: tuple[str, ...]
    steps: tuple[Step, ...]
    step: int
    state: ReviewState
    plan: Plan
    due_us: int | None
    step_since_us: int
    updated_us: int
    reminded_us: int | None = None
    flagged_us: int | None = None
    decisions: tuple[Decision, ...] = ()
    submitted_by: str = ""
    """Who made the version under review (its author, or whoever changed it): nobody
    decides on a version they made."""


@dataclass(frozen=True)
class Comment:
    id: str
    tenant: str
    post: str
    parent: str | None
    version: int
    author: str
    text: str
    created_us: int


@dataclass(frozen=True)
class AuditEntry:
    """One thing done to a post: by whom (`actor`, a key as `Actor.key`, or `publisher`),
    when, on which version."""

    tenant: str
    post: str
    version: int
    action: str
    actor: str
    at_us: int
    detail: str | None = None


@dataclass(frozen=True)
class Release:
    """The jobs an approval makes, in the transaction that records it: at `dues`, in
    queue slots chosen by `queued`, or as `series` with their `occurrences`."""

    dues: Mapping[str, int] = field(default_factory=dict)
    queued: Mapping[str, Callable[[set[int]], int]] = field(default_factory=dict)
    series: Sequence[Series] = ()
    occurrences: Mapping[str, Sequence[int]] = field(default_factory=dict)


class ReviewStore(Protocol):
    """Where workflows, reviews, comments and audit trails are kept, beside the jobs
    (`hubbub.publishing.sql.SqlJobStore` is both). Every change of a review is made only
    if the review is still as its caller read it (`Conflict` otherwise), with its audit
    entries and the jobs it releases, in one transaction: an approval never publishes
    twice, and a post is never left approved without its jobs."""

    def workflows(self, tenant: str) -> list[Workflow]: ...

    def put_workflow(self, workflow: Workflow) -> Workflow:
        """Keep it (a new one, or the tenant's of that id, replaced); ValueError when the
        tenant has another of that name; NotFound for another tenant's id."""
        ...

    def delete_workflow(self, tenant: str, workflow: str) -> bool: ...

    def submit(self, post: Post, review: Review, audit: Sequence[AuditEntry]) -> None:
        """Keep a new post and its review (no jobs until its last step approves)."""
        ...

    def revise(
        self, post: Post, review: Review | None, release: Release | None,
        audit: Sequence[AuditEntry], now_us: int,
    ) -> tuple[list[Job], list[Job]]:  # fmt: skip
        """Keep `post`, a new version of a kept one: the open jobs of its older versions
        are cancelled; with `review`, that is its review from now on (replacing any);
        with `release`, its jobs are made. Answers (cancelled, made). `Conflict` when a
        job of the post is published or may be on its network."""
        ...

    def review(self, tenant: str, post: str) -> Review:
        """The post's review with its current version's decisions; NotFound for none."""
        ...

    def reviews(self, tenant: str, states: Sequence[str], limit: int = 200) -> list[Review]: ...

    def decide(
        self, before: Review, after: Review, decision: Decision | None,
        audit: Sequence[AuditEntry], release: Release | None, now_us: int,
    ) -> list[Job]:  # fmt: skip
        """Record a decision: `before` becomes `after`, with the release's jobs made, in
        one transaction; `Conflict` when the review is no longer `before`."""
        ...

    def claim_reminders(self, before_us: int, now_us: int, limit: int) -> list[Review]:
        """Reviews in review whose step waits since before `before_us`, not reminded
        since then either: marked reminded at `now_us`, each by one caller only."""
        ...

    def claim_overdue(self, before_us: int, now_us: int, limit: int) -> list[Review]:
        """Open reviews planned before `before_us` and not flagged yet: marked flagged
        at `now_us`, each by one caller only."""
        ...

    def add_comment(self, comment: Comment, audit: AuditEntry) -> Comment:
        """NotFound when the post is not the tenant's, or the parent not the post's."""
        ...

    def comments(self, tenant: str, post: str) -> list[Comment]: ...

    def end_links(self, tenant: str, post: str, before_us: int, audit: AuditEntry) -> None:
        """End every link to the post made before `before_us`."""
        ...

    def links_end(self, tenant: str, post: str) -> int:
        """Links to the post made before this moment no longer work (0: none ended)."""
        ...

    def add_audit(self, entries: Sequence[AuditEntry]) -> None: ...

    def audit(self, tenant: str, post: str) -> list[AuditEntry]:
        """Everything done to the post, oldest first: its audit entries and its jobs'
        changes (scheduled, published, failed, missed, cancelled) together."""
        ...

    def pause(self, tenant: str, channel: str, paused: bool, now_us: int,
              requeue: Callable[[Channel, Sequence[Job]], Mapping[str, int]] | None = None,
              ) -> tuple[Channel, list[Job]]:  # fmt: skip
        """Pause (hold every scheduled job of the channel) or resume it (held jobs
        scheduled again, at the times `requeue` gives those whose time has passed)."""
        ...


class StalePositions(RuntimeError):
    """The log positions a fold was read from are no longer the store's: read them again."""


@dataclass(frozen=True)
class Member:
    """A person of a tenant as the gateway last told the log (`PersonChanged`): their
    role, and whether they are still in the tenant. `user` is the stored id (a session's
    key is `user:<id>`)."""

    tenant: str
    user: str
    role: str
    active: bool = True


class FeedStore(Protocol):
    """Each person's calendar feed address, and the people of every tenant folded from
    the log, so a feed is ended by a new address, by its person leaving, and read with
    the role they have now."""

    def new_feed(self, tenant: str, person: str) -> int:
        """The next generation of `person`'s feed (from 1): an address made for an
        earlier one no longer works."""
        ...

    def feed_generation(self, tenant: str, person: str) -> int:
        """The generation of `person`'s feed whose address works (0: none made yet)."""
        ...

    def member(self, tenant: str, user: str) -> Member | None:
        """The person as last folded; None when the log has not named them."""
        ...

    def people_positions(self) -> dict[str, int]:
        """Where the people's fold has read the log to, by topic."""
        ...

    def fold_people(
        self, changes: Sequence[Member], reached: Mapping[str, int], read_from: Mapping[str, int]
    ) -> None:
        """In one transaction: each change (the latest of a person wins; one who left has
        their feed's generation moved on, so no address of theirs works even if they come
        back), and the positions `reached`; `StalePositions` when the store's positions are
        no longer `read_from`."""
        ...


class PublishingStore(JobStore, ReviewStore, FeedStore, Protocol):
    """Jobs and reviews in one store: an approval makes its jobs in its transaction."""
