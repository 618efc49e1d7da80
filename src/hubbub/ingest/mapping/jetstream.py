"""Bluesky Jetstream (v1 JSON) to Hubbub events.

- `app.bsky.feed.post` create / update / delete: PostPublished / PostEdited / PostDeleted;
  a reply also records a "reply" engagement on its parent.
- `app.bsky.feed.like` and `app.bsky.feed.repost`: EngagementRecorded on the subject
  post and its author, +1 on create, -1 on delete.
- `app.bsky.graph.follow`: FollowersChanged for the followed page, +1 / -1.
- `app.bsky.actor.profile`: PageSeen with the display name.
- `identity`: PageSeen with the handle. `account`: PageDeactivated / PageReactivated.

A delete of a like, repost or follow carries only its record key, so each create is
remembered as a ref (record key -> what it pointed to) and looked up on delete. Refs
are keyed by record key first: record keys are TIDs that sort by time, so the store
grows at its right edge. Collections Hubbub does not use are counted and skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec

from hubbub.ingest.mapping.base import (
    DECODE_ERRORS,
    Decoded,
    InvalidInput,
    MappedBatch,
    Rejector,
    describe_decode_error,
    rejecting,
)
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
POST: Final = "app.bsky.feed.post"
LIKE: Final = "app.bsky.feed.like"
REPOST: Final = "app.bsky.feed.repost"
FOLLOW: Final = "app.bsky.graph.follow"
PROFILE: Final = "app.bsky.actor.profile"
REMEMBERED: Final = {LIKE: "like", REPOST: "repost", FOLLOW: "follow"}

Did = Annotated[str, msgspec.Meta(min_length=5, max_length=2048)]
Positive = Annotated[int, msgspec.Meta(ge=0)]


class StrongRef(msgspec.Struct, frozen=True):
    uri: str
    cid: str = ""


class ReplyRef(msgspec.Struct, frozen=True):
    parent: StrongRef
    root: StrongRef


class PostRecord(msgspec.Struct, frozen=True):
    text: str
    createdAt: datetime
    langs: list[str] = []
    # Facets are read loosely: one odd facet costs that facet, not the whole post.
    facets: list[dict[str, Any]] = []
    reply: ReplyRef | None = None


class SubjectRecord(msgspec.Struct, frozen=True):
    subject: StrongRef
    createdAt: datetime


class FollowRecord(msgspec.Struct, frozen=True):
    subject: Did
    createdAt: datetime


class ProfileRecord(msgspec.Struct, frozen=True):
    displayName: str | None = None


class Commit(msgspec.Struct, frozen=True):
    rev: str
    operation: str
    collection: str
    rkey: str
    record: msgspec.Raw = msgspec.Raw()


class Identity(msgspec.Struct, frozen=True):
    seq: Positive
    handle: str | None = None


class Account(msgspec.Struct, frozen=True):
    seq: Positive
    active: bool
    status: str | None = None


class JetstreamEvent(msgspec.Struct, frozen=True):
    did: Did
    time_us: Positive
    kind: str
    commit: Commit | None = None
    identity: Identity | None = None
    account: Account | None = None


class Line(msgspec.Struct, frozen=True):
    """A validated line: the event and its decoded record (None for deletes and others)."""

    event: JetstreamEvent
    record: PostRecord | SubjectRecord | FollowRecord | ProfileRecord | None
    raw: bytes


_event_decoder = msgspec.json.Decoder(JetstreamEvent)
_record_decoders: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    POST: msgspec.json.Decoder(PostRecord),
    LIKE: msgspec.json.Decoder(SubjectRecord),
    REPOST: msgspec.json.Decoder(SubjectRecord),
    FOLLOW: msgspec.json.Decoder(FollowRecord),
    PROFILE: msgspec.json.Decoder(ProfileRecord),
}
_cursor_decoder = msgspec.json.Decoder(dict[str, Any])


def ref_key(did: str, collection: str, rkey: str) -> str:
    return f"{rkey}/{did}/{REMEMBERED[collection]}"


def post_author(uri: str) -> str | None:
    """The DID in `at://DID/app.bsky.feed.post/RKEY`, None for anything else."""
    if not uri.startswith("at://"):
        return None
    did, _, rest = uri[5:].partition("/")
    return did if did and rest.startswith(POST + "/") else None


def micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


class JetstreamMapping:
    source = SOURCE

    def __init__(self, clock: Clock, max_event_bytes: int, max_nesting: int = 64) -> None:
        self.rejector = Rejector(SOURCE, clock, max_event_bytes, max_nesting)

    def decode(self, lines: Sequence[bytes], trace: str) -> Decoded[Line]:
        decoded: Decoded[Line] = Decoded()
        for line in lines:
            problem = self.rejector.precheck(line)
            if problem is None:
                try:
                    item = self._decode_line(line)
                except DECODE_ERRORS as error:
                    problem = describe_decode_error(error)
                else:
                    decoded.items.append(item)
                    self._collect_ref_key(item, decoded.ref_keys)
                    continue
            decoded.rejected.append(self.rejector.reject(line, problem, trace))
        return decoded

    def _decode_line(self, line: bytes) -> Line:
        event = _event_decoder.decode(line)
        commit = event.commit
        if event.kind == "commit":
            if commit is None:
                raise InvalidInput("a commit event without its `commit` object")
            decoder = _record_decoders.get(commit.collection)
            if decoder is not None and commit.operation != "delete":
                return Line(event, decoder.decode(commit.record), line)
        elif event.kind == "identity" and event.identity is None:
            raise InvalidInput("an identity event without its `identity` object")
        elif event.kind == "account" and event.account is None:
            raise InvalidInput("an account event without its `account` object")
        return Line(event, None, line)

    @staticmethod
    def _collect_ref_key(item: Line, keys: list[str]) -> None:
        commit = item.event.commit
        if commit and commit.operation == "delete" and commit.collection in REMEMBERED:
            keys.append(ref_key(item.event.did, commit.collection, commit.rkey))

    def map(self, decoded: Decoded[Line], refs: dict[str, str], trace: str) -> MappedBatch:
        batch = MappedBatch()
        for item in decoded.items:
            with rejecting(batch, self.rejector, item.raw, trace):
                self._map_line(item, refs, trace, batch)
        return batch

    def _map_line(self, item: Line, refs: dict[str, str], trace: str, batch: MappedBatch) -> None:
        event = item.event
        if event.kind == "commit":
            self._map_commit(item, refs, trace, batch)
        elif event.kind == "identity":
            self._map_identity(event, trace, batch)
        elif event.kind == "account":
            self._map_account(event, trace, batch)
        else:
            batch.skipped[f"unknown kind {event.kind}"] += 1

    def _map_commit(self, item: Line, refs: dict[str, str], trace: str, batch: MappedBatch) -> None:
        event, commit = item.event, item.event.commit
        assert commit is not None
        collection = commit.collection
        if collection not in _record_decoders:
            batch.skipped["collection not used"] += 1
        elif commit.operation not in ("create", "update", "delete"):
            batch.skipped[f"unknown operation {commit.operation}"] += 1
        elif collection == POST:
            self._map_post(item, trace, batch)
        elif collection == PROFILE:
            self._map_profile(item, trace, batch)
        elif commit.operation == "delete":
            self._map_undo(event, commit, refs, trace, batch)
        elif commit.operation == "create":
            self._map_remembered(item, refs, trace, batch)
        else:
            batch.skipped[f"{REMEMBERED[collection]} update"] += 1

    def _envelope(self, event: JetstreamEvent, key: str, trace: str) -> dict[str, Any]:
        commit = event.commit
        assert commit is not None
        identity = f"{event.did}/{commit.collection}/{commit.rkey}/{commit.operation}"
        return {
            "id": event_id(commit.rev, identity),
            "key": key,
            "ts": event.time_us,
            "source": SOURCE,
            "trace": trace,
        }

    def _map_post(self, item: Line, trace: str, batch: MappedBatch) -> None:
        event, commit = item.event, item.event.commit
        assert commit is not None
        uri = f"at://{event.did}/{POST}/{commit.rkey}"
        envelope = self._envelope(event, event.did, trace)
        if commit.operation == "delete":
            self._emit(batch, PostDeleted(**envelope, post=uri, author=event.did))
            return
        record = item.record
        assert isinstance(record, PostRecord)
        facets, dropped = read_facets(record)
        batch.facets_dropped += dropped
        kind = PostPublished if commit.operation == "create" else PostEdited
        post = kind(
            **envelope,
            post=uri,
            author=event.did,
            text=record.text,
            langs=record.langs,
            mentions=[f.value for f in facets if f.kind == "mention"],
            tags=[f.value for f in facets if f.kind == "tag"],
            links=[f.value for f in facets if f.kind == "link"],
            facets=facets,
            reply_parent=record.reply.parent.uri if record.reply else None,
            reply_root=record.reply.root.uri if record.reply else None,
            created_at=micros(record.createdAt),
        )
        self._emit(batch, post)
        parent_author = post_author(post.reply_parent) if post.reply_parent else None
        if parent_author and commit.operation == "create":
            envelope.update(id=post.id + "~reply", key=parent_author)
            reply = EngagementRecorded(
                **envelope,
                kind="reply",
                post=post.reply_parent or "",
                post_author=parent_author,
                actor=event.did,
                delta=1,
            )
            batch.events.append(reply)

    def _map_profile(self, item: Line, trace: str, batch: MappedBatch) -> None:
        event = item.event
        if not isinstance(item.record, ProfileRecord) or item.record.displayName is None:
            batch.skipped["profile without display name"] += 1
            return
        envelope = self._envelope(event, event.did, trace)
        self._emit(batch, PageSeen(**envelope, page=event.did, display_name=item.record.displayName))

    def _map_remembered(
        self, item: Line, refs: dict[str, str], trace: str, batch: MappedBatch
    ) -> None:
        event, commit, record = item.event, item.event.commit, item.record
        assert commit is not None
        key = ref_key(event.did, commit.collection, commit.rkey)
        if isinstance(record, FollowRecord):
            target = record.subject
        elif isinstance(record, SubjectRecord):
            target = record.subject.uri
        else:  # pragma: no cover - decode guarantees one of the two
            raise TypeError(type(record))
        event_or_reason = self._subject_event(event, commit.collection, target, 1, trace)
        if isinstance(event_or_reason, str):
            batch.skipped[event_or_reason] += 1
            return
        refs[key] = target
        batch.refs_put[key] = target
        self._emit(batch, event_or_reason)

    def _map_undo(
        self,
        event: JetstreamEvent,
        commit: Commit,
        refs: dict[str, str],
        trace: str,
        batch: MappedBatch,
    ) -> None:
        key = ref_key(event.did, commit.collection, commit.rkey)
        target = refs.pop(key, None)
        if target is None:
            batch.skipped[f"{REMEMBERED[commit.collection]} delete of a record never seen"] += 1
            return
        batch.refs_put.pop(key, None)
        batch.refs_deleted.append(key)
        undo = self._subject_event(event, commit.collection, target, -1, trace)
        assert not isinstance(undo, str)  # it was valid when it was remembered
        self._emit(batch, undo)

    def _subject_event(
        self, event: JetstreamEvent, collection: str, target: str, delta: int, trace: str
    ) -> Event | str:
        """The event for a like, repost or follow of `target`, or why there is none."""
        if collection == FOLLOW:
            envelope = self._envelope(event, target, trace)
            return FollowersChanged(**envelope, page=target, follower=event.did, delta=delta)
        author = post_author(target)
        if author is None:
            return f"{REMEMBERED[collection]} of something other than a post"
        envelope = self._envelope(event, author, trace)
        kind = "like" if collection == LIKE else "repost"
        return EngagementRecorded(
            **envelope, kind=kind, post=target, post_author=author, actor=event.did, delta=delta
        )

    def _map_identity(self, event: JetstreamEvent, trace: str, batch: MappedBatch) -> None:
        identity = event.identity
        assert identity is not None
        if not identity.handle:
            batch.skipped["identity without handle"] += 1
            return
        page = PageSeen(
            **_sequenced(event, identity.seq, trace), page=event.did, handle=identity.handle
        )
        self._emit(batch, page)

    def _map_account(self, event: JetstreamEvent, trace: str, batch: MappedBatch) -> None:
        account = event.account
        assert account is not None
        envelope = _sequenced(event, account.seq, trace)
        if account.active:
            self._emit(batch, PageReactivated(**envelope, page=event.did))
        else:
            status = account.status or "inactive"
            self._emit(batch, PageDeactivated(**envelope, page=event.did, status=status))

    @staticmethod
    def _emit(batch: MappedBatch, event: Event) -> None:
        batch.events.append(event)
        batch.primary_ids.append(event.id)


def _sequenced(event: JetstreamEvent, seq: int, trace: str) -> dict[str, Any]:
    return {
        "id": event_id(f"{seq:016d}", f"{event.did}/{event.kind}"),
        "key": event.did,
        "ts": event.time_us,
        "source": SOURCE,
        "trace": trace,
    }


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
    assert isinstance(start, int) and isinstance(end, int)
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


def cursor_of(line: bytes) -> int | None:
    """The `time_us` of a raw line, for resuming a connection; None if it has none."""
    try:
        value = _cursor_decoder.decode(line).get("time_us")
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    return value if isinstance(value, int) else None
