"""Every event Hubbub writes to its log, in one module.

Each event is a `msgspec.Struct` that carries its own envelope: the common fields of
`Event` (`type`, `schema`, `id`, `key`, `ts`, `source`, `trace`) come first, the body
after. `type` is the msgspec tag, so one decoder turns bytes back into the right class.

- `id` is stable for a given source event (derived from the source's own identity of
  it), so a redelivered source event produces the same id and the log drops it.
- `key` is the partition key: events with the same key keep their order.
- `ts` is the source's time of the event in microseconds since the Unix epoch.
- `schema` is the version of the body, raised when a body changes in a way old readers
  cannot read; new optional fields with defaults keep the version.

Events are encoded as arrays (`array_like`): the tag, the envelope, then the body (every
class is `kw_only`, which keeps that order). A log holds billions of events, and
dropping the field names saved a quarter of the bytes and of the encoding time; a
reader can take the id from the third element without decoding the body. The price is
that fields keep their order: add new ones at the end, with a default, and never
reorder or remove one without raising `schema`. (So `pushed_by`, the attribution of an
event pushed over HTTP, is the last field of each event ingest makes, not an envelope
field: one there would move every body.)
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

POSTS: Final = "posts"
PAGES: Final = "pages"
ENGAGEMENT: Final = "engagement"
DELETES: Final = "deletes"
DEADLETTER: Final = "deadletter"
CONTROL: Final = "control"
USAGE: Final = "usage"
PUBLISHING: Final = "publishing"
NOTICES: Final = "notices"
MATCHES: Final = "matches"
TOPICS: Final = (POSTS, PAGES, ENGAGEMENT, DELETES, DEADLETTER, CONTROL)


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False, array_like=True):
    """The envelope shared by every event."""

    schema: int = 1
    id: str
    key: str
    ts: int
    source: str
    trace: str = ""


class Facet(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A span of a post's text (UTF-8 byte offsets, as in the source) and what it means."""

    kind: Literal["mention", "tag", "link"]
    value: str
    byte_start: int
    byte_end: int


class PostPublished(Event, frozen=True, kw_only=True, tag=True):
    """A post was created. Mentions are page ids, tags are lower-cased without `#`."""

    post: str
    author: str
    text: str
    langs: list[str] = []
    mentions: list[str] = []
    tags: list[str] = []
    links: list[str] = []
    facets: list[Facet] = []
    reply_parent: str | None = None
    reply_root: str | None = None
    created_at: int = 0
    pushed_by: str = ""
    """Who pushed it over HTTP (`tenant/key`); empty for a connector's events."""
    media: int = 0
    """How many images, videos or other attachments it carries."""


class PostEdited(PostPublished, frozen=True, kw_only=True, tag=True):
    """A post's text or facets changed; the fields hold the new version."""


class PostDeleted(Event, frozen=True, kw_only=True, tag=True):
    post: str
    author: str
    pushed_by: str = ""
    """Who pushed it over HTTP (`tenant/key`); empty for a connector's events."""


class EngagementRecorded(Event, frozen=True, kw_only=True, tag=True):
    """Someone liked, reposted or replied to a post; `delta` is -1 when undone."""

    kind: Literal["like", "repost", "reply"]
    post: str
    post_author: str
    actor: str
    delta: int
    pushed_by: str = ""
    """Who pushed it over HTTP (`tenant/key`); empty for a connector's events."""


class FollowersChanged(Event, frozen=True, kw_only=True, tag=True):
    """A page gained (delta +1) or lost (delta -1) a follower."""

    page: str
    follower: str
    delta: int
    pushed_by: str = ""
    """Who pushed it over HTTP (`tenant/key`); empty for a connector's events."""


class PageSeen(Event, frozen=True, kw_only=True, tag=True):
    """What a source told us about a page (an account). None means "not said here"."""

    page: str
    handle: str | None = None
    display_name: str | None = None
    followers_count: int | None = None
    pushed_by: str = ""
    """Who pushed it over HTTP (`tenant/key`); empty for a connector's events."""


class PageDeactivated(Event, frozen=True, kw_only=True, tag=True):
    """The page's account is inactive (deactivated, deleted, taken down, suspended)."""

    page: str
    status: str
    pushed_by: str = ""
    """Who pushed it over HTTP (`tenant/key`); empty for a connector's events."""


class PageReactivated(Event, frozen=True, kw_only=True, tag=True):
    page: str
    pushed_by: str = ""
    """Who pushed it over HTTP (`tenant/key`); empty for a connector's events."""


class InputRejected(Event, frozen=True, kw_only=True, tag=True):
    """Input that could not become an event: the raw bytes, and why, for a person to act on."""

    raw: bytes
    reason: str
    detail: str = ""
    pushed_by: str = ""
    """Who pushed it over HTTP (`tenant/key`); empty for a connector's events."""


class AlertRaised(Event, frozen=True, kw_only=True, tag=True):
    name: str
    message: str


class WatchChanged(Event, frozen=True, kw_only=True, tag=True):
    """A tenant started (or, with `active` false, stopped) watching a hashtag, a page, a
    term (words in the text of posts) or one of its listening searches (by id)."""

    tenant: str
    watch: str
    kind: Literal["hashtag", "page", "term", "search"]
    target: str
    sensitivity: Literal["high", "medium", "low"] = "medium"
    active: bool = True


class WebhookChanged(Event, frozen=True, kw_only=True, tag=True):
    """A tenant's alert webhook was added (or, with `active` false, removed)."""

    tenant: str
    webhook: str
    url: str
    secret: str
    active: bool = True


class WebhookDelivered(Event, frozen=True, kw_only=True, tag=True):
    """The outcome of delivering one alert to one webhook, after its retries."""

    tenant: str
    webhook: str
    alert: str
    status: int
    attempts: int
    error: str = ""


class SettingChanged(Event, frozen=True, kw_only=True, tag=True):
    """An operator changed a live setting; every replica that follows `control` applies it."""

    name: str
    value: str


class FlagChanged(Event, frozen=True, kw_only=True, tag=True):
    """A feature flag was set (or, with `active` false, removed).

    `scope` is `platform` for the operator's flags, rolled out across tenants, or a
    tenant id for a tenant's own. `enabled` false is the kill switch: off for everyone.
    """

    scope: str
    flag: str
    enabled: bool = True
    percent: float = 0.0
    allow: list[str] = []
    deny: list[str] = []
    description: str = ""
    active: bool = True


class RouteChanged(Event, frozen=True, kw_only=True, tag=True):
    """A gateway route (a path prefix) now goes to `new`, to `legacy`, or to `new` for
    `percent` of tenants; `shadow` also sends each request to the other side and logs
    where the answers differ. `active` false removes the route."""

    prefix: str
    target: Literal["new", "legacy", "percent"]
    percent: float = 0.0
    shadow: bool = False
    active: bool = True


class FeatureUsed(Event, frozen=True, kw_only=True, tag=True):
    """Which tenant used which feature (a route), for product analytics; its own topic."""

    tenant: str
    api_key: str
    feature: str
    method: str
    status: int
    duration_ms: float


class PublishChanged(Event, frozen=True, kw_only=True, tag=True):
    """A publish job of a tenant's post changed state: scheduled, published (with where
    the network keeps it), failed, missed or unknown (with the reason), cancelled. On the
    `publishing` topic, so analytics can attribute engagement to the tenant's own posts."""

    tenant: str
    job: str
    post: str
    version: int
    channel: str
    network: str
    state: str
    due_us: int
    remote_id: str | None = None
    url: str | None = None
    error: str | None = None


class PersonChanged(Event, frozen=True, kw_only=True, tag=True):
    """A person of a tenant joined, changed (role, email, zone) or, with `active` false,
    left. On `control`, so every service that tells people things (notifications) or
    decides by their role keeps the same directory, rebuilt by replaying the topic."""

    tenant: str
    user: str
    email: str
    role: str
    time_zone: str = "UTC"
    active: bool = True


class NoticeIssued(Event, frozen=True, kw_only=True, tag=True):
    """Some people of a tenant should be told something: the `users` named (ids), every
    member of each of `roles`, and whoever each of `handles` names (`alice` in a comment's
    "@alice": the person whose email's local part, or whole email, it is), except `actor`
    (who did it; a user id). `kind` says what happened
    (`review_requested`, `approved`, `rejected`, `changes_requested`, `commented`,
    `mentioned`, `reminder`, `overdue`, `scheduled`, `published`, `failed`); `link` is
    the web app's path to look at it. On its own topic, `notices`."""

    tenant: str
    notice: str
    kind: str
    users: list[str] = []
    roles: list[str] = []
    handles: list[str] = []
    actor: str = ""
    post: str = ""
    title: str
    body: str = ""
    link: str = ""


class SearchChanged(Event, frozen=True, kw_only=True, tag=True):
    """A tenant saved, changed or (with `active` false) removed a listening search. On
    `control` (compacted by tenant and search), so every listening replica matches the
    same searches from the next post, rebuilt by replaying the topic. `pages` holds
    what each `@page` and `from:` handle of the query resolved to (page ids) when it
    was saved."""

    tenant: str
    search: str
    name: str = ""
    query: str = ""
    pages: dict[str, list[str]] = {}
    active: bool = True
    changed_by: str = ""
    from_position: int = 0
    """The head of `posts` when it was saved: matchers take the posts after it (a
    backfill, those up to it)."""


class ChannelChanged(Event, frozen=True, kw_only=True, tag=True):
    """A tenant connected (or, with `active` false, removed) a channel to publish to.
    `page` is the account's page id as ingest names it (a Bluesky DID, a Mastodon
    account URL), so listening knows which posts mention the tenant or reply to it. On
    `control`, compacted by tenant and channel."""

    tenant: str
    channel: str
    network: str
    account: str
    page: str = ""
    active: bool = True


class SearchMatched(Event, frozen=True, kw_only=True, tag=True):
    """A post of the firehose matched a tenant's search (`search`), or reached its inbox
    (`search` is `inbox:` and the channel; `kind` says `mention` or `reply`). On
    `matches`; `position` is the post's position in `posts`."""

    tenant: str
    search: str
    post: str
    author: str
    text: str
    langs: list[str] = []
    links: list[str] = []
    media: int = 0
    reply_parent: str | None = None
    created_at: int = 0
    position: int = 0
    kind: str = "match"


class MatchWithdrawn(Event, frozen=True, kw_only=True, tag=True):
    """A post that matched a tenant's search was deleted: it leaves the stored matches
    and the live views. On `matches`."""

    tenant: str
    search: str
    post: str


AnyEvent = (
    PostPublished
    | PostEdited
    | PostDeleted
    | EngagementRecorded
    | FollowersChanged
    | PageSeen
    | PageDeactivated
    | PageReactivated
    | InputRejected
    | AlertRaised
    | SettingChanged
    | WatchChanged
    | WebhookChanged
    | WebhookDelivered
    | FlagChanged
    | RouteChanged
    | FeatureUsed
    | PublishChanged
    | PersonChanged
    | NoticeIssued
    | SearchChanged
    | ChannelChanged
    | SearchMatched
    | MatchWithdrawn
)

_TOPIC_OF: Final[dict[type[Event], str]] = {
    PostPublished: POSTS,
    PostEdited: POSTS,
    PostDeleted: DELETES,
    EngagementRecorded: ENGAGEMENT,
    FollowersChanged: PAGES,
    PageSeen: PAGES,
    PageDeactivated: PAGES,
    PageReactivated: PAGES,
    InputRejected: DEADLETTER,
    AlertRaised: "alerts",
    SettingChanged: CONTROL,
    WatchChanged: CONTROL,
    WebhookChanged: CONTROL,
    WebhookDelivered: "deliveries",
    FlagChanged: CONTROL,
    RouteChanged: CONTROL,
    FeatureUsed: USAGE,
    PublishChanged: PUBLISHING,
    PersonChanged: CONTROL,
    NoticeIssued: NOTICES,
    SearchChanged: CONTROL,
    ChannelChanged: CONTROL,
    SearchMatched: MATCHES,
    MatchWithdrawn: MATCHES,
}


def topic_of(event: Event) -> str:
    """The log topic an event is appended to."""
    return _TOPIC_OF[type(event)]


_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[AnyEvent] = msgspec.msgpack.Decoder(AnyEvent)
_list_decoder = msgspec.msgpack.Decoder(list[AnyEvent])


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def encode_many(events: list[Event]) -> bytes:
    """Pack several events into one blob (a log segment or a message)."""
    return _encoder.encode(events)


def decode(data: bytes) -> Event:
    return _decoder.decode(data)


def decode_many(data: bytes) -> list[AnyEvent]:
    return _list_decoder.decode(data)
