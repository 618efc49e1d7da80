"""The inbox: for each channel a tenant connected, the posts of the firehose that mention
its account or reply to its posts, and what the team does with them.

The listening worker appends a `SearchMatched` (search `inbox:CHANNEL`, kind `mention`
or `reply`) for each such post, and its fold keeps it with the other matches; an item
*is* that match, and its id is the match's position in the log's `matches` topic. What
the team does with an item (who it is assigned to, its tags, whether it is read and
done) is kept beside it (`InboxStore`), once someone touches it: an item nobody touched
is open, unread, unassigned and untagged.

An item is answered through publishing (`Replies`): a post to the item's channel, in
reply to the item's post, made as the person replying, so the tenant's approval
workflow applies to it as to any post that person writes.

Every read and change names the tenant: another tenant's item is not found, as one that
does not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

import httpx

from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import MatchWithdrawn, SearchMatched
from hubbub.kernel.signing import LEAST_ROLE, RequestSigner
from hubbub.listening.live import LiveTail
from hubbub.listening.ports import Match, NotFound
from hubbub.listening.service import match_of

INBOX: Final = "inbox:"
"""The prefix of an inbox's search: `inbox:` and the channel's id."""
MAX_TAGS: Final = 20
TAG_CHARS: Final = 64
REPLY_CHARS: Final = 10_000
POSTS_PATH: Final = "/v1/posts"
State = Literal["open", "done", "all"]


class Refused(PermissionError):
    """The caller may not do this (a viewer answering); the message says why."""


class Invalid(ValueError):
    """A change the inbox does not take (too many tags, an empty reply)."""


class ReplyFailed(RuntimeError):
    """Publishing did not take the reply: `status` is what to answer (its own 4xx, or
    503 when it could not be reached), the message what it said."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Item:
    """A post in a channel's inbox, and what the team did with it."""

    match: Match
    assignee: str | None = None
    tags: tuple[str, ...] = ()
    done: bool = False
    read: bool = False
    updated_us: int = 0

    @property
    def id(self) -> str:
        return str(self.match.position)

    @property
    def channel(self) -> str:
        return channel_of(self.match.search)


@dataclass(frozen=True)
class Change:
    """What a person changes of an item; None: as it was."""

    assignee: str | None = None
    unassign: bool = False
    tags: Sequence[str] | None = None
    done: bool | None = None
    read: bool | None = None


@dataclass(frozen=True)
class InboxFilter:
    """Which items to read: open or done ones (or all), assigned to `assignee`, tagged
    `tag`, of `channel`, older than the position `before`."""

    state: State = "open"
    assignee: str = ""
    tag: str = ""
    channel: str = ""
    before: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class InboxPage:
    """Items, newest first; `more` when older ones follow; `unread` of the whole inbox."""

    items: list[Item]
    more: bool
    unread: int = 0


@dataclass(frozen=True)
class Replier:
    """Who answers, as the gateway named them: their key (`user:<id>` for a person) and
    role, as publishing's approvals read them."""

    key: str
    role: str = LEAST_ROLE


@dataclass(frozen=True)
class Reply:
    """What publishing made of a reply: its post, and whether it waits for approval."""

    post: str
    in_review: bool = False
    jobs: list[str] = field(default_factory=list)


class InboxStore(Protocol):
    """Items (the inbox's matches) and what the team did with them. Reads and changes
    name the tenant; another tenant's item is None."""

    def items(self, tenant: str, chosen: InboxFilter) -> tuple[list[Item], bool]:
        """The tenant's items `chosen` names, newest first, and whether more follow."""
        ...

    def item(self, tenant: str, item: int) -> Item | None:
        """The item at position `item` of `matches`, if it is the tenant's."""
        ...

    def unread(self, tenant: str) -> int:
        """How many open items nobody has read."""
        ...

    def change(self, item: Item, now_us: int, by: str) -> None:
        """Keep what the team did with `item` (its assignee, tags, done and read)."""
        ...


class Replies(Protocol):
    """Where an item's answer is published (publishing's `POST /v1/posts`)."""

    async def reply(
        self, tenant: str, replier: Replier, channel: str, post: str, text: str
    ) -> Reply:
        """Publish `text` to `channel`, in reply to `post`, as `replier`; `ReplyFailed`
        when publishing refuses it or cannot be reached."""
        ...


def channel_of(search: str) -> str:
    """The channel of an inbox's search (`inbox:CHANNEL`)."""
    return search.removeprefix(INBOX)


def is_inbox(event: object, tenant: str) -> bool:
    """Whether a `matches` event is one of `tenant`'s inboxes' (an arrival, or its post's
    withdrawal), not a saved search's nor another tenant's."""
    return (
        isinstance(event, SearchMatched | MatchWithdrawn)
        and event.tenant == tenant
        and event.search.startswith(INBOX)
    )


def arrived(event: SearchMatched, position: int) -> Item:
    """An item as it arrives on the log (at `position` of `matches`): untouched."""
    return Item(match_of(event, position))


def tags_of(tags: Sequence[str]) -> tuple[str, ...]:
    """Tags trimmed, without blanks or repeats; `Invalid` past `MAX_TAGS`, or one longer
    than `TAG_CHARS`."""
    kept = tuple(dict.fromkeys(" ".join(tag.split()) for tag in tags if tag.strip()))
    if len(kept) > MAX_TAGS or any(len(tag) > TAG_CHARS for tag in kept):
        raise Invalid(f"an item has at most {MAX_TAGS} tags of at most {TAG_CHARS} characters")
    return kept


class Inbox:
    """Every tenant's inbox over `store`; answers go out through `replies`."""

    def __init__(
        self,
        store: InboxStore,
        event_log: EventLog,
        clock: Clock,
        replies: Replies | None,
        live: LiveTail | None = None,
    ) -> None:
        self.store = store
        self.event_log = event_log
        self.clock = clock
        self.replies = replies
        self.live = live or LiveTail(event_log)
        """The matches as they arrive (the streams' own reader, shared)."""

    async def items(self, tenant: str, chosen: InboxFilter) -> InboxPage:
        found, more = await asyncio.to_thread(self.store.items, tenant, chosen)
        return InboxPage(found, more, await self.unread(tenant))

    async def unread(self, tenant: str) -> int:
        return await asyncio.to_thread(self.store.unread, tenant)

    async def item(self, tenant: str, item: int) -> Item:
        found = await asyncio.to_thread(self.store.item, tenant, item)
        if found is None:
            raise NotFound(f"no inbox item {item} in this workspace")
        return found

    async def change(self, tenant: str, item: int, change: Change, by: str) -> Item:
        """Assign (or unassign), tag, mark done or read; answers the item as it is now."""
        found = await self.item(tenant, item)
        changed = Item(
            found.match,
            assignee=None if change.unassign else change.assignee or found.assignee,
            tags=found.tags if change.tags is None else tags_of(change.tags),
            done=found.done if change.done is None else change.done,
            read=found.read if change.read is None else change.read,
            updated_us=self.clock.now_us(),
        )
        await asyncio.to_thread(self.store.change, changed, changed.updated_us, by)
        return changed

    async def reply(self, tenant: str, item: int, text: str, replier: Replier) -> Reply:
        """Answer the item's post from its channel, through publishing, as `replier`
        (under the tenant's approvals where they apply); the item is marked read."""
        if replier.role == LEAST_ROLE:
            raise Refused("a viewer does not answer: this needs the editor role or above")
        if not text.strip():
            raise Invalid("the reply is empty")
        if len(text) > REPLY_CHARS:
            raise Invalid(f"a reply has at most {REPLY_CHARS} characters, not {len(text)}")
        found = await self.item(tenant, item)
        if self.replies is None:
            raise ReplyFailed(503, "answers are not published from here: publishing is not set up")
        made = await self.replies.reply(tenant, replier, found.channel, found.match.post, text)
        if not found.read:
            await self.change(tenant, item, Change(read=True), replier.key)
        return made


class PublishingReplies:
    """`Replies` over publishing's public API at `url` (`POST /v1/posts` with
    `reply_to`), in requests signed as the gateway signs them: for the item's tenant, as
    the person replying and with their role, so publishing makes the post theirs and
    applies the workflow their role or the channel falls under."""

    def __init__(self, url: str, signer: RequestSigner, timeout_s: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._signer = signer
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def reply(
        self, tenant: str, replier: Replier, channel: str, post: str, text: str
    ) -> Reply:
        signed = self._signer.headers("POST", POSTS_PATH, tenant, replier.key, replier.role)
        body = {"text": text, "channels": [channel], "reply_to": post}
        try:
            answer = await self._client.post(
                self._url + POSTS_PATH, json=body,
                headers={name.decode(): value.decode() for name, value in signed},
            )  # fmt: skip
        except httpx.HTTPError as error:
            raise ReplyFailed(503, f"publishing did not answer: {error}") from error
        if answer.status_code >= 500 or answer.status_code == 401:
            raise ReplyFailed(503, f"publishing answered {answer.status_code}: {_said(answer)}")
        if answer.status_code >= 400:
            raise ReplyFailed(answer.status_code, _said(answer))
        made = answer.json()
        jobs = [str(job["id"]) for job in made.get("jobs") or ()]
        return Reply(str(made["post"]), made.get("review") is not None, jobs)

    async def close(self) -> None:
        await self._client.aclose()


def _said(answer: httpx.Response) -> str:
    """What publishing said of a refusal: its `detail`, or the start of its body."""
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else answer.text[:300]
