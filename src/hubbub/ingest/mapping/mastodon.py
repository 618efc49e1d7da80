"""Mastodon streaming to Hubbub events.

A line is either a stream envelope, `{"event": "update" | "status.update" | "delete",
"payload": ...}` (the payload a JSON string as the streaming API sends it, or an
object), or a bare Status entity (a replayed file of statuses, taken as `update`).

- `update` -> PostPublished (`media`: how many `media_attachments` it has); a reblog ->
  EngagementRecorded (repost) on the original; a reply to a status seen before ->
  EngagementRecorded (reply) on its parent.
- `status.update` -> PostEdited. `delete` (a status id) -> PostDeleted.
- Every account met -> PageSeen with handle, display name and `followers_count`.

Page ids are account URLs; handles are `user@instance`. HTML content becomes plain text.
Status ids are only unique on one instance, so refs (status id -> uri and author, used
by `delete`, which carries only the id) are kept per instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

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
from hubbub.ingest.mapping.jetstream import micros
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import (
    EngagementRecorded,
    Event,
    PageSeen,
    PostDeleted,
    PostEdited,
    PostPublished,
)
from hubbub.kernel.ids import event_id
from hubbub.kernel.text import html_to_text

SOURCE: Final = "mastodon"
STREAM_EVENTS: Final = ("update", "status.update", "delete")
Count = Annotated[int, msgspec.Meta(ge=0)]


class Account(msgspec.Struct, frozen=True):
    id: str
    username: str
    acct: str
    url: str
    display_name: str = ""
    followers_count: Count | None = None


class Mention(msgspec.Struct, frozen=True):
    url: str
    acct: str = ""


class Tag(msgspec.Struct, frozen=True):
    name: str


class Reblogged(msgspec.Struct, frozen=True):
    """The original status inside a reblog (only what the repost needs)."""

    uri: str
    account: Account


class Status(msgspec.Struct, frozen=True):
    id: str
    uri: str
    created_at: datetime
    content: str
    account: Account
    language: str | None = None
    in_reply_to_id: str | None = None
    edited_at: datetime | None = None
    mentions: list[Mention] = []
    tags: list[Tag] = []
    reblog: Reblogged | None = None
    media_attachments: list[msgspec.Raw] = []
    """Counted only (`PostPublished.media`): each attachment is left unread."""


class StreamMessage(msgspec.Struct, frozen=True):
    event: str
    payload: msgspec.Raw


class Line(msgspec.Struct, frozen=True):
    event: str
    status: Status | None
    deleted_id: str | None


_probe = msgspec.json.Decoder(dict[str, msgspec.Raw])
_message_decoder = msgspec.json.Decoder(StreamMessage)
_status_decoder = msgspec.json.Decoder(Status)
_string_decoder = msgspec.json.Decoder(str | int)


def handle_of(account: Account) -> str:
    """`user@instance`: remote accounts already say it, local ones are on the URL's host."""
    if "@" in account.acct:
        return account.acct
    return f"{account.acct}@{urlsplit(account.url).hostname or 'unknown'}"


def sortable(status_id: str) -> str:
    """Mastodon ids are snowflakes (time-ordered integers); pad them so text sorts too."""
    return status_id.rjust(20, "0") if status_id.isdigit() else status_id


class MastodonMapping:
    source = SOURCE

    def __init__(self, clock: Clock, max_event_bytes: int, instance: str = "mastodon") -> None:
        self.rejector = Rejector(SOURCE, clock, max_event_bytes)
        self.clock = clock
        self.instance = instance

    def ref_key(self, status_id: str) -> str:
        return f"{sortable(status_id)}@{self.instance}"

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
                    decoded.raws.append(line)
                    self._collect_ref_keys(item, decoded.ref_keys)
                    continue
            decoded.rejected.append(self.rejector.reject(line, problem, trace))
        return decoded

    def _decode_line(self, line: bytes) -> Line:
        fields = _probe.decode(line)
        if "event" not in fields:
            return Line("update", _status_decoder.decode(line), None)
        message = _message_decoder.decode(line)
        payload = bytes(message.payload)
        if payload[:1] == b'"':  # the streaming API sends the payload as a JSON string
            inner = _string_decoder.decode(payload)
            payload = inner.encode() if isinstance(inner, str) else str(inner).encode()
        if message.event not in STREAM_EVENTS:
            return Line(message.event, None, None)
        if message.event == "delete":
            deleted = payload.decode().strip().strip('"')
            if not deleted:
                raise InvalidInput("a delete without the id of the status")
            return Line("delete", None, deleted)
        return Line(message.event, _status_decoder.decode(payload), None)

    def _collect_ref_keys(self, item: Line, keys: list[str]) -> None:
        if item.deleted_id:
            keys.append(self.ref_key(item.deleted_id))
        elif item.status and item.status.in_reply_to_id:
            keys.append(self.ref_key(item.status.in_reply_to_id))

    def map(self, decoded: Decoded[Line], refs: dict[str, str], trace: str) -> MappedBatch:
        batch = MappedBatch()
        map_each(
            decoded,
            batch,
            self.rejector,
            trace,
            lambda item: self._map_line(item, refs, trace, batch),
        )
        return batch

    def _map_line(self, item: Line, refs: dict[str, str], trace: str, batch: MappedBatch) -> None:
        if item.event not in STREAM_EVENTS:
            batch.skipped[f"stream event {item.event} not used"] += 1
        elif item.deleted_id is not None:
            self._map_delete(item.deleted_id, refs, trace, batch)
        elif item.status is not None and item.status.reblog is not None:
            self._map_reblog(item.status, trace, batch)
        elif item.status is not None:
            self._map_status(item.status, item.event == "status.update", refs, trace, batch)

    def _envelope(
        self, sort_key: str, identity: str, key: str, ts: int, trace: str
    ) -> dict[str, Any]:
        return {
            "id": event_id(sort_key, f"{self.instance}/{identity}"),
            "key": key,
            "ts": ts,
            "source": SOURCE,
            "trace": trace,
        }

    def _map_status(
        self, status: Status, edited: bool, refs: dict[str, str], trace: str, batch: MappedBatch
    ) -> None:
        author = status.account.url
        moment = status.edited_at if edited and status.edited_at else status.created_at
        version = moment.isoformat() if edited else "created"
        envelope = self._envelope(
            sortable(status.id), f"{status.uri}/{version}", author, micros(moment), trace
        )
        text, links = html_to_text(status.content)
        parent = refs.get(self.ref_key(status.in_reply_to_id)) if status.in_reply_to_id else None
        parent_uri, _, parent_author = parent.partition(" ") if parent else ("", "", "")
        kind = PostEdited if edited else PostPublished
        post = kind(
            **envelope,
            post=status.uri,
            author=author,
            text=text,
            langs=[status.language] if status.language else [],
            mentions=[mention.url for mention in status.mentions],
            tags=[tag.name.lower() for tag in status.tags],
            links=links,
            reply_parent=parent_uri or None,
            created_at=micros(status.created_at),
            media=len(status.media_attachments),
        )
        _emit(batch, post)
        self._remember(status, refs, batch)
        if parent_author and not edited:
            envelope.update(id=post.id + "~reply", key=parent_author)
            batch.events.append(
                EngagementRecorded(
                    **envelope,
                    kind="reply",
                    post=parent_uri,
                    post_author=parent_author,
                    actor=author,
                    delta=1,
                )
            )
        batch.events.append(self._page_seen(status.account, post, trace))

    def _remember(self, status: Status, refs: dict[str, str], batch: MappedBatch) -> None:
        key, value = self.ref_key(status.id), f"{status.uri} {status.account.url}"
        refs[key] = value
        batch.refs_put[key] = value

    def _map_reblog(self, status: Status, trace: str, batch: MappedBatch) -> None:
        original = status.reblog
        assert original is not None
        author = original.account.url
        envelope = self._envelope(
            sortable(status.id), f"{status.uri}/reblog", author, micros(status.created_at), trace
        )
        repost = EngagementRecorded(
            **envelope,
            kind="repost",
            post=original.uri,
            post_author=author,
            actor=status.account.url,
            delta=1,
        )
        _emit(batch, repost)
        batch.events.append(self._page_seen(status.account, repost, trace))
        batch.events.append(self._page_seen(original.account, repost, trace, "~original"))

    def _map_delete(
        self, status_id: str, refs: dict[str, str], trace: str, batch: MappedBatch
    ) -> None:
        known = refs.pop(self.ref_key(status_id), None)
        if known is None:
            batch.skipped["delete of a status never seen"] += 1
            return
        uri, _, author = known.partition(" ")
        batch.refs_deleted.append(self.ref_key(status_id))
        batch.refs_put.pop(self.ref_key(status_id), None)
        envelope = self._envelope(
            sortable(status_id), f"{uri}/delete", author, self.clock.now_us(), trace
        )
        _emit(batch, PostDeleted(**envelope, post=uri, author=author))

    def _page_seen(self, account: Account, cause: Event, trace: str, suffix: str = "") -> PageSeen:
        return PageSeen(
            id=f"{cause.id}~page{suffix}",
            key=account.url,
            ts=cause.ts,
            source=SOURCE,
            trace=trace,
            page=account.url,
            handle=handle_of(account),
            display_name=account.display_name or None,
            followers_count=account.followers_count,
        )


def _emit(batch: MappedBatch, event: Event) -> None:
    batch.events.append(event)
    batch.primary_ids.append(event.id)
