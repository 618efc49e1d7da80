"""Bluesky Jetstream (v1 JSON) to Hubbub events.

- `app.bsky.feed.post` create / update / delete: PostPublished / PostEdited / PostDeleted;
  a reply also records a "reply" engagement on its parent. Its `media` counts the images
  or video its embed carries (`media_count`).
- `app.bsky.feed.like` and `app.bsky.feed.repost`: EngagementRecorded on the subject
  post and its author, +1 on create, -1 on delete.
- `app.bsky.graph.follow`: FollowersChanged for the followed page, +1 / -1.
- `app.bsky.actor.profile`: PageSeen with the display name.
- `identity`: PageSeen with the handle. `account`: PageDeactivated / PageReactivated.

A delete of a like, repost or follow carries only its record key, so each create is
remembered as a ref (record key -> what it pointed to) and looked up on delete. Refs
are keyed by record key first: record keys are TIDs that sort by time, so the store
grows at its right edge. Collections Hubbub does not use are counted and skipped.

This is the hottest loop of the platform (ingest benchmark: decode and map are most
of its time), so a line is decoded once, straight into typed structs: the record is a
union tagged by its `$type`. Only a record of a collection we do not use fails that
decode; it is then read again without its record, and skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from hubbub.ingest.mapping.base import (
    DECODE_ERRORS,
    Decoded,
    InvalidInput,
    MappedBatch,
    Rejector,
    describe_decode_error,
    map_each,
)
from hubbub.kernel.bluesky import FOLLOW, LIKE, POST, PROFILE, REPOST
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import (
    EngagementRecorded,
    Event,
    Facet,
    FollowersChanged,
    PageDeactivated,
    PageReactivated,
    PageSeen,
    PostDeleted,
    PostEdited,
    PostPublished,
)
from hubbub.kernel.ids import event_id
from hubbub.kernel.text import utf8_span

SOURCE: Final = "jetstream"
USED: Final = frozenset({POST, LIKE, REPOST, FOLLOW, PROFILE})
REMEMBERED: Final = {LIKE: "like", REPOST: "repost", FOLLOW: "follow"}
_POST_PATH: Final = "/" + POST + "/"

Did = Annotated[str, msgspec.Meta(min_length=5, max_length=2048)]
Positive = Annotated[int, msgspec.Meta(ge=0)]


class StrongRef(msgspec.Struct, frozen=True, gc=False):
    uri: str
    cid: str = ""


class ReplyRef(msgspec.Struct, frozen=True, gc=False):
    parent: StrongRef
    root: StrongRef


class _Record(msgspec.Struct, frozen=True, gc=False, tag_field="$type"):
    pass


class Embed(msgspec.Struct, frozen=True, gc=False, rename={"type": "$type"}):
    """What a post embeds, read only as far as counting its media: the kind, its images
    (each left unread) and, for a quote with media, that media. Any other kind (a link
    card, a quoted post, one of a future lexicon) is read as a kind with no media."""

    type: str = ""
    images: list[msgspec.Raw] = []
    media: Embed | None = None


class PostRecord(_Record, frozen=True, tag=POST):
    text: str
    createdAt: datetime
    langs: list[str] = []
    # Facets are read loosely: one odd facet costs that facet, not the whole post.
    facets: list[dict[str, Any]] = []
    reply: ReplyRef | None = None
    embed: Embed | None = None


class LikeRecord(_Record, frozen=True, tag=LIKE):
    subject: StrongRef
    createdAt: datetime


class RepostRecord(_Record, frozen=True, tag=REPOST):
    subject: StrongRef
    createdAt: datetime


class FollowRecord(_Record, frozen=True, tag=FOLLOW):
    subject: Did
    createdAt: datetime


class ProfileRecord(_Record, frozen=True, tag=PROFILE):
    displayName: str | None = None


Record = PostRecord | LikeRecord | RepostRecord | FollowRecord | ProfileRecord


class Commit(msgspec.Struct, frozen=True, gc=False):
    rev: str
    operation: str
    collection: str
    rkey: str
    record: Record | None = None


class UnusedCommit(msgspec.Struct, frozen=True, gc=False):
    """A commit of a collection Hubbub does not use: its record is never read."""

    rev: str
    operation: str
    collection: str
    rkey: str


class Identity(msgspec.Struct, frozen=True, gc=False):
    seq: Positive
    handle: str | None = None


class Account(msgspec.Struct, frozen=True, gc=False):
    seq: Positive
    active: bool
    status: str | None = None


class JetstreamEvent(msgspec.Struct, frozen=True, gc=False):
    did: Did
    time_us: Positive
    kind: str
    commit: Commit | None = None
    identity: Identity | None = None
    account: Account | None = None


class UnusedEvent(msgspec.Struct, frozen=True, gc=False):
    did: Did
    time_us: Positive
    kind: str
    commit: UnusedCommit | None = None


_decoder = msgspec.json.Decoder(JetstreamEvent)
_unused_decoder = msgspec.json.Decoder(UnusedEvent)


def ref_key(did: str, collection: str, rkey: str) -> str:
    return f"{rkey}/{did}/{REMEMBERED[collection]}"


def post_author(uri: str) -> str | None:
    """The DID in `at://DID/app.bsky.feed.post/RKEY`, None for anything else."""
    if not uri.startswith("at://"):
        return None
    slash = uri.find("/", 5)
    return uri[5:slash] if slash > 5 and uri.startswith(_POST_PATH, slash) else None


def micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def commit_id(event: JetstreamEvent, commit: Commit) -> str:
    """Stable per source event: the repo revision (a TID), then a hash of what changed."""
    return event_id(commit.rev, f"{event.did}/{commit.collection}/{commit.rkey}/{commit.operation}")


def decode_line(line: bytes) -> JetstreamEvent | UnusedEvent:
    """Decode and validate one line; raises a DECODE_ERRORS error saying what is wrong."""
    try:
        event = _decoder.decode(line)
    except msgspec.ValidationError as error:
        if "$.commit.record" not in str(error):
            raise
        unused = _unused_decoder.decode(line)
        if unused.commit is None or unused.commit.collection in USED:
            raise
        return unused
    commit = event.commit
    if event.kind == "commit":
        if commit is None:
            raise InvalidInput("a commit event without its `commit` object")
        record = commit.record
        if record is None:
            if commit.operation != "delete" and commit.collection in USED:
                raise InvalidInput(f"a {commit.operation} in {commit.collection} without a record")
        elif record.__struct_config__.tag != commit.collection:
            raise InvalidInput(
                f"a {record.__struct_config__.tag} record in collection {commit.collection}"
            )
    elif event.kind == "identity" and event.identity is None:
        raise InvalidInput("an identity event without its `identity` object")
    elif event.kind == "account" and event.account is None:
        raise InvalidInput("an account event without its `account` object")
    return event


class JetstreamMapping:
    source = SOURCE

    def __init__(self, clock: Clock, max_event_bytes: int) -> None:
        self.rejector = Rejector(SOURCE, clock, max_event_bytes)

    def decode(self, lines: Sequence[bytes], trace: str) -> Decoded[JetstreamEvent | UnusedEvent]:
        decoded: Decoded[JetstreamEvent | UnusedEvent] = Decoded()
        items, raws, keys = decoded.items, decoded.raws, decoded.ref_keys
        precheck = self.rejector.precheck
        for line in lines:
            problem = precheck(line)
            if problem is None:
                try:
                    event = decode_line(line)
                except DECODE_ERRORS as error:
                    problem = describe_decode_error(error)
                else:
                    items.append(event)
                    raws.append(line)
                    commit = event.commit
                    if commit and commit.operation == "delete" and commit.collection in REMEMBERED:
                        keys.append(ref_key(event.did, commit.collection, commit.rkey))
                    continue
            decoded.rejected.append(self.rejector.reject(line, problem, trace))
        return decoded

    def map(
        self, decoded: Decoded[JetstreamEvent | UnusedEvent], refs: dict[str, str], trace: str
    ) -> MappedBatch:
        batch = MappedBatch()
        map_each(decoded, batch, self.rejector, trace, _BatchMapper(batch, refs, trace).map)
        return batch


class _BatchMapper:
    """Maps the lines of one batch into `batch`, reading and updating `refs` as it goes."""

    def __init__(self, batch: MappedBatch, refs: dict[str, str], trace: str) -> None:
        self.batch = batch
        self.refs = refs
        self.trace = trace

    def map(self, event: JetstreamEvent | UnusedEvent) -> None:
        if isinstance(event, UnusedEvent):
            self.batch.skipped["collection not used"] += 1
        elif event.commit is not None:
            self.commit(event, event.commit)
        elif event.kind == "identity":
            self.identity(event)
        elif event.kind == "account":
            self.account(event)
        else:
            self.batch.skipped[f"unknown kind {event.kind}"] += 1

    def emit(self, event: Event) -> None:
        self.batch.events.append(event)
        self.batch.primary_ids.append(event.id)

    def commit(self, event: JetstreamEvent, commit: Commit) -> None:
        record, operation = commit.record, commit.operation
        if operation == "create" and (type(record) is LikeRecord or type(record) is RepostRecord):
            self.engagement(event, commit, record.subject.uri)
        elif operation not in ("create", "update", "delete"):
            self.batch.skipped[f"unknown operation {operation}"] += 1
        elif commit.collection == POST:
            self.post(event, commit)
        elif type(record) is ProfileRecord:
            self.profile(event, commit, record)
        elif operation == "delete" and commit.collection in REMEMBERED:
            self.undo(event, commit)
        elif type(record) is FollowRecord and operation == "create":
            self.follow(event, commit, record.subject)
        else:
            self.batch.skipped[f"{commit.collection} {operation}"] += 1

    def engagement(self, event: JetstreamEvent, commit: Commit, uri: str, delta: int = 1) -> None:
        author = post_author(uri)
        kind: Literal["like", "repost"] = "like" if commit.collection == LIKE else "repost"
        if author is None:
            self.batch.skipped[f"{kind} of something other than a post"] += 1
            return
        if delta > 0:
            self.remember(event, commit, uri)
        self.emit(
            EngagementRecorded(
                id=commit_id(event, commit),
                key=author,
                ts=event.time_us,
                source=SOURCE,
                trace=self.trace,
                kind=kind,
                post=uri,
                post_author=author,
                actor=event.did,
                delta=delta,
            )
        )

    def follow(self, event: JetstreamEvent, commit: Commit, page: str, delta: int = 1) -> None:
        if delta > 0:
            self.remember(event, commit, page)
        self.emit(
            FollowersChanged(
                id=commit_id(event, commit),
                key=page,
                ts=event.time_us,
                source=SOURCE,
                trace=self.trace,
                page=page,
                follower=event.did,
                delta=delta,
            )
        )

    def remember(self, event: JetstreamEvent, commit: Commit, target: str) -> None:
        key = ref_key(event.did, commit.collection, commit.rkey)
        self.refs[key] = self.batch.refs_put[key] = target

    def undo(self, event: JetstreamEvent, commit: Commit) -> None:
        key = ref_key(event.did, commit.collection, commit.rkey)
        target = self.refs.pop(key, None)
        if target is None:
            self.batch.skipped[
                f"{REMEMBERED[commit.collection]} delete of a record never seen"
            ] += 1
            return
        self.batch.refs_put.pop(key, None)
        self.batch.refs_deleted.append(key)
        if commit.collection == FOLLOW:
            self.follow(event, commit, target, delta=-1)
        else:
            self.engagement(event, commit, target, delta=-1)

    def post(self, event: JetstreamEvent, commit: Commit) -> None:
        uri = f"at://{event.did}/{POST}/{commit.rkey}"
        if commit.operation == "delete":
            self.emit(
                PostDeleted(
                    id=commit_id(event, commit),
                    key=event.did,
                    ts=event.time_us,
                    source=SOURCE,
                    trace=self.trace,
                    post=uri,
                    author=event.did,
                )
            )
            return
        record = commit.record
        assert isinstance(record, PostRecord)
        facets, dropped = read_facets(record)
        self.batch.facets_dropped += dropped
        kind = PostPublished if commit.operation == "create" else PostEdited
        parent = record.reply.parent.uri if record.reply else None
        post = kind(
            id=commit_id(event, commit),
            key=event.did,
            ts=event.time_us,
            source=SOURCE,
            trace=self.trace,
            post=uri,
            author=event.did,
            text=record.text,
            langs=record.langs,
            mentions=[f.value for f in facets if f.kind == "mention"],
            tags=[f.value for f in facets if f.kind == "tag"],
            links=[f.value for f in facets if f.kind == "link"],
            facets=facets,
            reply_parent=parent,
            reply_root=record.reply.root.uri if record.reply else None,
            created_at=micros(record.createdAt),
            media=media_count(record.embed) if record.embed else 0,
        )
        self.emit(post)
        parent_author = post_author(parent) if parent else None
        if parent and parent_author and commit.operation == "create":
            self.batch.events.append(
                EngagementRecorded(
                    id=post.id + "~reply",
                    key=parent_author,
                    ts=event.time_us,
                    source=SOURCE,
                    trace=self.trace,
                    kind="reply",
                    post=parent,
                    post_author=parent_author,
                    actor=event.did,
                    delta=1,
                )
            )

    def profile(self, event: JetstreamEvent, commit: Commit, record: ProfileRecord) -> None:
        if record.displayName is None:
            self.batch.skipped["profile without display name"] += 1
            return
        self.emit(
            PageSeen(
                id=commit_id(event, commit),
                key=event.did,
                ts=event.time_us,
                source=SOURCE,
                trace=self.trace,
                page=event.did,
                display_name=record.displayName,
            )
        )

    def identity(self, event: JetstreamEvent) -> None:
        identity = event.identity
        assert identity is not None
        if not identity.handle:
            self.batch.skipped["identity without handle"] += 1
            return
        self.emit(
            PageSeen(
                id=event_id(f"{identity.seq:016d}", f"{event.did}/identity"),
                key=event.did,
                ts=event.time_us,
                source=SOURCE,
                trace=self.trace,
                page=event.did,
                handle=identity.handle,
            )
        )

    def account(self, event: JetstreamEvent) -> None:
        account = event.account
        assert account is not None
        identity = event_id(f"{account.seq:016d}", f"{event.did}/account")
        if account.active:
            self.emit(
                PageReactivated(
                    id=identity,
                    key=event.did,
                    ts=event.time_us,
                    source=SOURCE,
                    trace=self.trace,
                    page=event.did,
                )
            )
        else:
            self.emit(
                PageDeactivated(
                    id=identity,
                    key=event.did,
                    ts=event.time_us,
                    source=SOURCE,
                    trace=self.trace,
                    page=event.did,
                    status=account.status or "inactive",
                )
            )


IMAGES: Final = "app.bsky.embed.images"
VIDEO: Final = "app.bsky.embed.video"
WITH_MEDIA: Final = "app.bsky.embed.recordWithMedia"


def media_count(embed: Embed) -> int:
    """The attachments an embed carries: each of its `images`, one `video`, and those of
    the media of a quote with media; a link card or a quoted post carries none."""
    if embed.type == WITH_MEDIA and embed.media is not None:
        embed = embed.media
    if embed.type == IMAGES:
        return len(embed.images)
    return 1 if embed.type == VIDEO else 0


_FEATURES: Final = {
    "app.bsky.richtext.facet#mention": ("mention", "did"),
    "app.bsky.richtext.facet#tag": ("tag", "tag"),
    "app.bsky.richtext.facet#link": ("link", "uri"),
}


def read_facets(record: PostRecord) -> tuple[list[Facet], int]:
    """The usable facets of a post, and how many were dropped for a bad shape or range."""
    if not record.facets:
        return [], 0
    text_bytes = record.text.encode("utf-8")
    facets: list[Facet] = []
    dropped = 0
    for raw in record.facets:
        found = _read_facet(raw, text_bytes)
        if found:
            facets.extend(found)
        else:
            dropped += 1
    return facets, dropped


def _read_facet(raw: dict[str, Any], text_bytes: bytes) -> list[Facet]:
    index, features = raw.get("index"), raw.get("features")
    if not isinstance(index, dict) or not isinstance(features, list):
        return []
    start, end = index.get("byteStart"), index.get("byteEnd")
    if utf8_span(text_bytes, start, end) is None:
        return []
    assert isinstance(start, int)
    assert isinstance(end, int)
    found = []
    for feature in features:
        kind_field = _FEATURES.get(feature.get("$type", "")) if isinstance(feature, dict) else None
        if kind_field is None:
            continue
        kind, field = kind_field
        value = feature.get(field)
        if isinstance(value, str) and value:
            value = value.lower() if kind == "tag" else value
            found.append(Facet(kind, value, start, end))  # type: ignore[arg-type]
    return found
