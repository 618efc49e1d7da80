"""Minute rollups of posts and engagement: what a batch of log records adds and takes away.

`fold` turns records of the `posts`, `engagement` and `deletes` topics into `Deltas`:
increments to counters keyed by minute and by page, hashtag, language and source, or
globally. It is pure: what a delete must subtract comes from `Contribution`s, the record
of what each post added, which the store keeps and hands back (`known`).

- A post counts once for its author (a reply also as a reply), once for each hashtag,
  once as a mention received by each page it mentions, and once for its language(s) and
  source, in the minute of its event time.
- An edit moves the post's counts from its old hashtags and mentions to its new ones.
- A delete subtracts what the post added; a delete that arrives before its post (the
  topics are read side by side) is remembered, and the post then adds nothing.
- Likes, reposts and replies count for the author of the post they target, with their
  sign (an undone like subtracts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import msgspec

from hubbub.eventlog.port import Record
from hubbub.kernel.events import EngagementRecorded, PostDeleted, PostEdited, PostPublished

MINUTE_US = 60_000_000

PAGE_COUNTERS = (
    "posts",
    "replies",
    "mentions_received",
    "likes_received",
    "reposts_received",
    "replies_received",
)
GLOBAL_COUNTERS = ("posts", "replies", "likes", "reposts", "deleted")


def schema(blob: str) -> tuple[str, ...]:
    """The rollup tables, in SQL both stores speak (`blob`: their binary type)."""
    counters = ", ".join(f"{name} BIGINT NOT NULL DEFAULT 0" for name in PAGE_COUNTERS)
    totals = ", ".join(f"{name} BIGINT NOT NULL DEFAULT 0" for name in GLOBAL_COUNTERS)
    return (
        "CREATE TABLE IF NOT EXISTS page_minute (page TEXT NOT NULL, minute BIGINT NOT NULL,"
        f" {counters}, PRIMARY KEY (page, minute))",
        "CREATE TABLE IF NOT EXISTS tag_minute (tag TEXT NOT NULL, minute BIGINT NOT NULL,"
        " posts BIGINT NOT NULL, PRIMARY KEY (tag, minute))",
        "CREATE TABLE IF NOT EXISTS lang_minute (lang TEXT NOT NULL, source TEXT NOT NULL,"
        " minute BIGINT NOT NULL, posts BIGINT NOT NULL, PRIMARY KEY (lang, source, minute))",
        f"CREATE TABLE IF NOT EXISTS global_minute (minute BIGINT PRIMARY KEY, {totals})",
        f"CREATE TABLE IF NOT EXISTS post_contribution (post TEXT PRIMARY KEY, record {blob})",
        "CREATE TABLE IF NOT EXISTS consumer_position (topic TEXT PRIMARY KEY,"
        " position BIGINT NOT NULL)",
    )


class Contribution(msgspec.Struct, frozen=True, array_like=True):
    """What one post added to the rollups, so that a delete or an edit can undo it."""

    minute: int
    author: str
    source: str
    reply: bool
    tags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    deleted: bool = False


DELETED_UNSEEN = Contribution(0, "", "", False, deleted=True)
"""A post deleted before it was seen: when it comes, it adds nothing."""


def _counters() -> defaultdict[str, int]:
    return defaultdict(int)


@dataclass
class Deltas:
    """Increments to apply, keyed by rollup row; plus the posts whose record changed."""

    pages: defaultdict[tuple[str, int], defaultdict[str, int]] = field(
        default_factory=lambda: defaultdict(_counters)
    )
    tags: defaultdict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    langs: defaultdict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    totals: defaultdict[int, defaultdict[str, int]] = field(
        default_factory=lambda: defaultdict(_counters)
    )
    contributions: dict[str, Contribution] = field(default_factory=dict)

    def add(self, c: Contribution, sign: int) -> None:
        """Add (sign 1) or take away (sign -1) what a post contributes."""
        if c.deleted:
            return
        page = self.pages[(c.author, c.minute)]
        page["posts"] += sign
        total = self.totals[c.minute]
        total["posts"] += sign
        if c.reply:
            page["replies"] += sign
            total["replies"] += sign
        for tag in c.tags:
            self.tags[(tag, c.minute)] += sign
        for mentioned in c.mentions:
            self.pages[(mentioned, c.minute)]["mentions_received"] += sign
        for lang in c.langs or ("",):
            self.langs[(lang, c.source, c.minute)] += sign


def contribution(event: PostPublished) -> Contribution:
    return Contribution(
        minute=event.ts // MINUTE_US,
        author=event.author,
        source=event.source,
        reply=event.reply_parent is not None,
        tags=tuple(dict.fromkeys(event.tags)),
        mentions=tuple(dict.fromkeys(event.mentions)),
        langs=tuple(dict.fromkeys(event.langs)),
    )


_ENGAGEMENT = {
    "like": ("likes_received", "likes"),
    "repost": ("reposts_received", "reposts"),
    "reply": ("replies_received", None),
}


def posts_to_look_up(records: Iterable[Record]) -> set[str]:
    """The posts whose earlier contribution the fold of these records needs."""
    return {
        r.event.post
        for r in records
        if isinstance(r.event, PostDeleted | PostEdited | PostPublished)
    }


def fold(records: Iterable[Record], known: Mapping[str, Contribution]) -> Deltas:
    """The deltas of `records` (any order of topics), given the posts' earlier records."""
    deltas = Deltas()
    seen = deltas.contributions

    def current(post: str) -> Contribution | None:
        return seen[post] if post in seen else known.get(post)

    for record in records:
        event = record.event
        if isinstance(event, PostEdited):
            before = current(event.post)
            if before is None or before.deleted:
                continue  # an edit of a post never seen (or gone) changes nothing
            after = msgspec.structs.replace(
                contribution(event), minute=before.minute, source=before.source
            )
            deltas.add(before, -1)
            deltas.add(after, 1)
            seen[event.post] = after
        elif isinstance(event, PostPublished):
            before = current(event.post)
            if before is not None:
                continue  # a post counts once; after a delete, not at all
            added = contribution(event)
            deltas.add(added, 1)
            seen[event.post] = added
        elif isinstance(event, PostDeleted):
            before = current(event.post)
            if before is None:
                seen[event.post] = DELETED_UNSEEN
            elif not before.deleted:
                deltas.add(before, -1)
                deltas.totals[before.minute]["deleted"] += 1
                seen[event.post] = msgspec.structs.replace(before, deleted=True)
        elif isinstance(event, EngagementRecorded):
            minute = event.ts // MINUTE_US
            page_counter, total_counter = _ENGAGEMENT[event.kind]
            deltas.pages[(event.post_author, minute)][page_counter] += event.delta
            if total_counter:
                deltas.totals[minute][total_counter] += event.delta
    return deltas
