"""Minute rollups of posts and engagement: what a batch of log records adds and takes away.

`fold` turns records of the `posts`, `engagement` and `deletes` topics into `Deltas`:
increments to counters keyed by minute and by page, hashtag, language and source, or
globally. It is pure: what a delete must subtract comes from `Contribution`s, the record
of what each post added, which the store keeps and hands back (`known`).

- A post counts once for its author (a reply also as a reply), once for each hashtag,
  once as a mention received by each page it mentions, and once for its language(s) and
  source, in the minute of its event time.
- An edit moves the post's counts from its old hashtags and mentions to its new ones.
- A delete subtracts what the post added and counts as deleted in the post's minute. A
  delete read before its post (the topics are read side by side, so either may come
  first) is remembered with the post records (`awaiting_post`); when the post comes it
  adds nothing and counts as deleted then, so every counter is the same whatever the
  order the topics were read in. A remembered delete whose post never comes is dropped
  with the post records at the `posts` retention horizon.
- Likes, reposts and replies count for the author of the post they target, with their
  sign (an undone like subtracts).
- A post counts once for each watched term its text contains (`terms`); the terms it
  matched are kept in its contribution, so a delete subtracts them whatever is watched
  by then.
- For the best time to post (`hubbub.analytics.best_times`), a post counts once in its
  half-hour for its network and first language (`slots`), and the likes, reposts and
  replies it receives in its first 24 hours count there too. A tenant's post that
  publishing reports published (`PublishChanged`, on the `publishing` topic) is marked
  with its tenant and channel in its contribution (`owner`), and counts again, with its
  engagement, under that channel's own slots.
- A listening search's match (`SearchMatched` of kind `match`, on the `matches` topic)
  counts once for its tenant's search (`search_key`), in the minute of the match's time;
  a match withdrawn (its post deleted) subtracts it there again. What a match added is
  recorded with the posts' records, under `match_key`, so a match told twice counts
  once and a withdrawal finds its minute. A post's inbox arrivals (`inbox:` searches,
  and kinds other than `match`) are not counted.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import xxhash

from hubbub.analytics.terms import TermMatcher
from hubbub.eventlog.ports import Record
from hubbub.kernel.events import (
    EngagementRecorded,
    MatchWithdrawn,
    PostDeleted,
    PostEdited,
    PostPublished,
    PublishChanged,
    SearchMatched,
)

MINUTE_US = 60_000_000
SLOT_MINUTES: Final = 30
"""The width of a best-time slot; slots are stored as absolute half-hours since the
epoch (`minute // SLOT_MINUTES`), so any zone's wall-clock slots are derived on read."""
ENGAGEMENT_WINDOW_US: Final = 24 * 3600 * 1_000_000
"""Engagement counts for a post's slot when received within this time of the post."""
NETWORK_OF_SOURCE: Final = {"jetstream": "bluesky"}
"""The network of an event source, where their names differ."""

PAGE_COUNTERS = (
    "posts",
    "replies",
    "mentions_received",
    "likes_received",
    "reposts_received",
    "replies_received",
)
GLOBAL_COUNTERS = ("posts", "replies", "likes", "reposts", "deleted")


TIERS: Final = (
    ("minute", 1),
    ("hour", 60),
    ("day", 1440),
    ("week", 7 * 1440),
    ("fourweek", 28 * 1440),
)
"""The rollup tiers, as (name, minutes). Page, hashtag and term counts are kept at each
tier (`page_minute`, `page_hour`, ..., `page_fourweek`, and `tag_...`, `term_...`), a
row's `minute` being the first minute of its bucket (UTC; weeks and four-week spans
start on a Thursday, as the epoch did), so that a long window reads a few coarse rows
and its edges finer ones, and every tier answers the same SQL."""

TIERED: Final = {
    "page": PAGE_COUNTERS,
    "tag": ("posts",),
    "term": ("posts",),
    "search": ("posts",),
}
"""The tiered rollups: key column (and table prefix) -> counters. A search's `posts` are
its matches, keyed by tenant and search (`search_key`)."""

GLOBAL_TIERS: Final = tuple(f"global_{tier}" for tier, minutes in TIERS if minutes > 1)
"""The global counters' tiers above `global_minute` (one row a bucket), so that totals over
a long window read a few rows, and survive the minute tier's retention."""

KEYED_TIERS: Final = ("hour",)
"""The tiers a store should keep in key order: series and page summaries (one key over
up to a year) read minutes and hours; top lists (every key over a time range) read
minutes, days and weeks, kept in time order (`reports.SERIES_TIERS`, `TOP_TIERS`)."""


@functools.lru_cache(maxsize=1 << 18)
def key_hash(key: str) -> int:
    """A key's 63-bit hash, stored beside it (column `h`): rows kept in `h` order are found
    by DuckDB's min/max statistics, which for text compare only the first 8 bytes (and
    every page id starts with `did:plc:`)."""
    return xxhash.xxh3_64_intdigest(key.encode()) >> 1


def schema(blob: str, *, keyed: bool = True) -> tuple[str, ...]:
    """The rollup tables, in SQL both stores speak (`blob`: their binary type). With
    `keyed`, the tiered tables have a primary key to upsert into, and the posts' records
    are a table too; without, a store appends deltas and merges rows itself (the reports
    sum whatever rows there are), and keeps the records its own way."""
    totals = ", ".join(f"{name} BIGINT NOT NULL DEFAULT 0" for name in GLOBAL_COUNTERS)
    tiered = tuple(
        f"CREATE TABLE IF NOT EXISTS {key}_{tier} (h BIGINT NOT NULL, {key} TEXT NOT NULL,"
        f" minute BIGINT NOT NULL,"
        f" {', '.join(f'{name} BIGINT NOT NULL DEFAULT 0' for name in counters)}"
        f"{f', PRIMARY KEY ({key}, minute)' if keyed else ''})"
        for key, counters in TIERED.items()
        for tier, _ in TIERS
    )
    return (
        *tiered,
        "CREATE TABLE IF NOT EXISTS lang_minute (lang TEXT NOT NULL, source TEXT NOT NULL,"
        " minute BIGINT NOT NULL, posts BIGINT NOT NULL, PRIMARY KEY (lang, source, minute))",
        f"CREATE TABLE IF NOT EXISTS global_minute (minute BIGINT PRIMARY KEY, {totals})",
        *(
            f"CREATE TABLE IF NOT EXISTS {table} (minute BIGINT PRIMARY KEY, {totals})"
            for table in GLOBAL_TIERS
        ),
        "CREATE TABLE IF NOT EXISTS slot_halfhour (scope TEXT NOT NULL, half BIGINT NOT NULL,"
        " posts BIGINT NOT NULL, engagement BIGINT NOT NULL, PRIMARY KEY (scope, half))",
        "CREATE TABLE IF NOT EXISTS tracked_term (term TEXT PRIMARY KEY, since BIGINT NOT NULL)",
        # What each post added, and each search match (keyed by `match_key`).
        *((POST_CONTRIBUTION.format(blob=blob),) if keyed else ()),
        "CREATE TABLE IF NOT EXISTS consumer_position (topic TEXT PRIMARY KEY,"
        " position BIGINT NOT NULL)",
    )


POST_CONTRIBUTION: Final = (
    "CREATE TABLE IF NOT EXISTS post_contribution (post TEXT PRIMARY KEY,"
    " minute BIGINT NOT NULL, record {blob})"
)
"""The posts' records, in a store with keyed tables (the DuckDB store keeps them in
`hubbub.analytics.post_records`)."""


def post_hash(post: str) -> int:
    """A post's (or match's) 63-bit hash, the embedded records' key (not cached, unlike
    `key_hash`: a post is looked up a few times, and would push the pages out)."""
    return xxhash.xxh3_64_intdigest(post.encode()) >> 1


def global_backfills(existing: set[str]) -> tuple[str, ...]:
    """Statements filling, from `global_minute`, the global tiers missing from the tables
    that `existing` names (a database made before the tiers, which `schema` has just
    given them; nothing for a new database). They hold what the minute tier still
    holds: older totals come back with a rebuild."""
    if "global_minute" not in existing:
        return ()
    sums = ", ".join(f"sum({name})" for name in GLOBAL_COUNTERS)
    return tuple(
        f"INSERT INTO {table} (minute, {', '.join(GLOBAL_COUNTERS)})"
        f" SELECT minute - minute % {minutes}, {sums} FROM global_minute GROUP BY 1"
        for table, (_, minutes) in zip(GLOBAL_TIERS, TIERS[1:], strict=True)
        if table not in existing
    )


def _tier_select(key: str, source: str, minutes: int) -> str:
    """The minute deltas in `source` summed into the buckets of a tier."""
    counters = TIERED[key]
    if minutes == 1:
        return f"SELECT h, {key}, minute, {', '.join(counters)} FROM {source}"
    sums = ", ".join(f"sum({name})" for name in counters)
    return f"SELECT h, {key}, minute - minute % {minutes}, {sums} FROM {source} GROUP BY 1, 2, 3"


def tier_upserts(key: str, source: str) -> tuple[str, ...]:
    """Statements adding the minute deltas in table `source` (columns: h, `key`, minute
    and the counters) to every tier of the `key` rollup, coarser tiers summed per bucket."""
    counters = TIERED[key]
    statements = []
    for tier, minutes in TIERS:
        table = f"{key}_{tier}"
        adds = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in counters)
        statements.append(
            f"INSERT INTO {table} (h, {key}, minute, {', '.join(counters)})"
            f" {_tier_select(key, source, minutes)}"
            f" ON CONFLICT ({key}, minute) DO UPDATE SET {adds}"
        )
    return tuple(statements)


def tier_appends(key: str, source: str) -> tuple[str, ...]:
    """Statements appending the minute deltas in `source` to every tier, as new rows."""
    counters = TIERED[key]
    return tuple(
        f"INSERT INTO {key}_{tier} (h, {key}, minute, {', '.join(counters)})"
        f" {_tier_select(key, source, minutes)} ORDER BY 3"
        for tier, minutes in TIERS
    )


def prune_statements(horizons: dict[str, int]) -> list[tuple[str, int]]:
    """`(DELETE statement, horizon)` pairs dropping the rows of each tier (and the minute
    tables that have no tiers) before its horizon, and the records of posts before the
    `posts` horizon: a later delete of such a post no longer subtracts anything."""
    statements = [
        (f"DELETE FROM {key}_{tier} WHERE minute < ?", horizons[tier])
        for key in TIERED
        for tier, _ in TIERS
        if tier in horizons
    ]
    statements += [
        (f"DELETE FROM global_{tier} WHERE minute < ?", horizons[tier])
        for tier, _ in TIERS
        if tier in horizons
    ]
    if "minute" in horizons:
        statements.append(("DELETE FROM lang_minute WHERE minute < ?", horizons["minute"]))
    if "posts" in horizons:
        statements.append(("DELETE FROM post_contribution WHERE minute < ?", horizons["posts"]))
    if "slots" in horizons:
        half = horizons["slots"] // SLOT_MINUTES
        statements.append(("DELETE FROM slot_halfhour WHERE half < ?", half))
    return statements


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
    terms: tuple[str, ...] = ()  # after the rest, so that older records still decode
    owner: str = ""
    """For a tenant's own published post, `own_scope`'s tenant and channel."""


def network_of(source: str) -> str:
    return NETWORK_OF_SOURCE.get(source, source)


def firehose_scope(network: str, lang: str) -> str:
    """The slot rollup key of the posts of a network in a language."""
    return f"net\x1f{network}\x1f{lang}"


def own_scope(tenant: str, channel: str) -> str:
    """The slot rollup key of a tenant's own posts on one channel."""
    return f"own\x1f{tenant}\x1f{channel}"


def _slot_scopes(c: Contribution) -> tuple[str, ...]:
    network = network_of(c.source)
    scopes = (firehose_scope(network, c.langs[0] if c.langs else ""),)
    return (*scopes, c.owner) if c.owner else scopes


def awaiting_post(minute: int) -> Contribution:
    """The record of a delete read before its post, kept from `minute` (the delete's):
    deleted, with no author (every post has one). When the post comes it adds nothing
    and is counted as deleted; the record is pruned with the post records."""
    return Contribution(minute, "", "", False, deleted=True)


def is_awaiting_post(c: Contribution) -> bool:
    """Whether `c` is a delete still waiting for its post (`awaiting_post`); records
    written before the delete's minute was kept have minute 0 and match too."""
    return c.deleted and not c.author


def _counters() -> defaultdict[str, int]:
    return defaultdict(int)


@dataclass
class Deltas:
    """Increments to apply, keyed by rollup row; plus the posts whose record changed."""

    pages: defaultdict[tuple[str, int], defaultdict[str, int]] = field(
        default_factory=lambda: defaultdict(_counters)
    )
    tags: defaultdict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    terms: defaultdict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    langs: defaultdict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    totals: defaultdict[int, defaultdict[str, int]] = field(
        default_factory=lambda: defaultdict(_counters)
    )
    contributions: dict[str, Contribution] = field(default_factory=dict)
    tracked: dict[str, int] = field(default_factory=dict)
    """Terms counted from now on: term -> the first minute they were counted in."""
    slots: defaultdict[tuple[str, int], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    """Best-time slots: (scope, half-hour) -> [posts, engagement]."""
    searches: defaultdict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    """Search matches: (`search_key`, minute) -> matches."""

    def columns(self, key: str) -> dict[str, list[Any]]:
        """The page (`key` "page"), hashtag ("tag"), term or search minute deltas, as
        columns."""
        if key != "page":
            counts = {"tag": self.tags, "term": self.terms, "search": self.searches}[key]
            return {
                "h": [key_hash(name) for name, _ in counts],
                key: [name for name, _ in counts],
                "minute": [minute for _, minute in counts],
                "posts": list(counts.values()),
            }
        return {
            "h": [key_hash(page) for page, _ in self.pages],
            "page": [page for page, _ in self.pages],
            "minute": [minute for _, minute in self.pages],
            **{
                name: [counts.get(name, 0) for counts in self.pages.values()]
                for name in PAGE_COUNTERS
            },
        }

    def total_rows(self, minutes: int) -> dict[int, tuple[int, ...]]:
        """The global counters (`GLOBAL_COUNTERS`, in order) summed into the buckets of
        a tier of `minutes`, by the bucket's first minute."""
        buckets: defaultdict[int, list[int]] = defaultdict(lambda: [0] * len(GLOBAL_COUNTERS))
        for minute, counts in self.totals.items():
            bucket = buckets[minute - minute % minutes]
            for i, name in enumerate(GLOBAL_COUNTERS):
                bucket[i] += counts.get(name, 0)
        return {minute: tuple(sums) for minute, sums in buckets.items()}

    def add(self, c: Contribution, sign: int) -> None:
        """Add (sign 1) or take away (sign -1) what a post contributes."""
        if c.deleted or not c.author:  # no author: an own post published, not yet seen
            return
        for scope in _slot_scopes(c):
            self.slots[(scope, c.minute // SLOT_MINUTES)][0] += sign
        page = self.pages[(c.author, c.minute)]
        page["posts"] += sign
        total = self.totals[c.minute]
        total["posts"] += sign
        if c.reply:
            page["replies"] += sign
            total["replies"] += sign
        for tag in c.tags:
            self.tags[(tag, c.minute)] += sign
        for term in c.terms:
            self.terms[(term, c.minute)] += sign
        for mentioned in c.mentions:
            self.pages[(mentioned, c.minute)]["mentions_received"] += sign
        for lang in c.langs or ("",):
            self.langs[(lang, c.source, c.minute)] += sign


def contribution(event: PostPublished, terms: TermMatcher | None = None) -> Contribution:
    return Contribution(
        minute=event.ts // MINUTE_US,
        author=event.author,
        source=event.source,
        reply=event.reply_parent is not None,
        tags=tuple(dict.fromkeys(event.tags)),
        mentions=tuple(dict.fromkeys(event.mentions)),
        langs=tuple(dict.fromkeys(event.langs)),
        terms=terms.match(event.text) if terms else (),
    )


_ENGAGEMENT = {
    "like": ("likes_received", "likes"),
    "repost": ("reposts_received", "reposts"),
    "reply": ("replies_received", None),
}


def posts_to_look_up(records: Iterable[Record]) -> set[str]:
    """The posts (and matches) whose earlier contribution the fold of these records needs."""
    wanted = {
        r.event.post
        for r in records
        if isinstance(r.event, PostDeleted | PostEdited | PostPublished | EngagementRecorded)
    }
    return wanted | {
        key
        for r in records
        if (key_of := _LOOKED_UP.get(type(r.event))) and (key := key_of(r.event))
    }


def search_key(tenant: str, search: str) -> str:
    """The rollup key of a tenant's listening search: a search id names it within its
    tenant only, so another tenant's series is never read for it."""
    return f"{tenant}\x1f{search}"


def match_key(event: SearchMatched | MatchWithdrawn) -> str | None:
    """The key of the record of what a match added (`post_contribution`, beside the
    posts' URIs and URLs, which it cannot equal); None for a match the rollups do not
    count: an inbox arrival (`inbox:` search, or a kind other than `match`)."""
    if event.search.startswith(INBOX) or (isinstance(event, SearchMatched) and event.kind != MATCH):
        return None
    return f"match\x1f{event.tenant}\x1f{event.search}\x1f{event.post}"


def published_key(event: object) -> str | None:
    """The post a `PublishChanged` says a tenant published, as engagement names it (an
    at:// URI on Bluesky, else the post's URL); None for any other event."""
    if not isinstance(event, PublishChanged) or event.state != "published":
        return None
    if event.remote_id and event.remote_id.startswith("at://"):
        return event.remote_id
    return event.url or event.remote_id


INBOX: Final = "inbox:"
"""The prefix of the searches a tenant's inbox receives posts under (not counted)."""
MATCH: Final = "match"
"""The kind of a `SearchMatched` of a saved search (the one kind counted)."""
_LOOKED_UP: Final[dict[type, Callable[[Any], str | None]]] = {
    PublishChanged: published_key,
    SearchMatched: match_key,
    MatchWithdrawn: match_key,
}
"""The key of the earlier record an event other than a post's needs, by its type (one
lookup, so a post's fold pays nothing for them)."""

_FOLD_ORDER: Final = {"publishing": 0, "posts": 1}


def _fold_order(record: Record) -> int:
    """Publications, then posts, then the rest: a batch holds its topics one after the
    other, and a post's engagement (or its owner) must find the post already folded."""
    return _FOLD_ORDER.get(record.topic, 2)


def fold(
    records: Iterable[Record],
    known: Mapping[str, Contribution],
    terms: TermMatcher | None = None,
) -> Deltas:
    """The deltas of `records` (any order of topics), given the posts' earlier records
    and the watched terms to count."""
    deltas = Deltas()
    seen = deltas.contributions

    def current(post: str) -> Contribution | None:
        return seen[post] if post in seen else known.get(post)

    for record in sorted(records, key=_fold_order):
        event = record.event
        if isinstance(event, PostEdited):
            before = current(event.post)
            if before is None or before.deleted:
                continue  # an edit of a post never seen (or gone) changes nothing
            after = msgspec.structs.replace(
                contribution(event, terms), minute=before.minute, source=before.source
            )
            deltas.add(before, -1)
            deltas.add(after, 1)
            seen[event.post] = after
        elif isinstance(event, PostPublished):
            before = current(event.post)
            if before is None or (not before.author and not before.deleted):
                added = contribution(event, terms)
                if before is not None:  # published by a tenant, now seen
                    added = msgspec.structs.replace(added, owner=before.owner)
                deltas.add(added, 1)
                seen[event.post] = added
            elif is_awaiting_post(before):  # deleted already: counted as deleted only
                gone = msgspec.structs.replace(contribution(event, terms), deleted=True)
                deltas.totals[gone.minute]["deleted"] += 1
                seen[event.post] = gone
            # otherwise a post counts once
        elif isinstance(event, PostDeleted):
            before = current(event.post)
            if before is None or (not before.author and not before.deleted):
                seen[event.post] = awaiting_post(event.ts // MINUTE_US)
            elif not before.deleted and before.author:
                deltas.add(before, -1)
                deltas.totals[before.minute]["deleted"] += 1
                seen[event.post] = msgspec.structs.replace(before, deleted=True)
        elif isinstance(event, EngagementRecorded):
            minute = event.ts // MINUTE_US
            page_counter, total_counter = _ENGAGEMENT[event.kind]
            deltas.pages[(event.post_author, minute)][page_counter] += event.delta
            if total_counter:
                deltas.totals[minute][total_counter] += event.delta
            _engaged(deltas, current(event.post), event)
        elif isinstance(event, PublishChanged) and (key := published_key(event)):
            _published(deltas, seen, key, current(key), event)
        elif isinstance(event, SearchMatched | MatchWithdrawn) and (key := match_key(event)):
            _matched(deltas, seen, key, current(key), event)
    return deltas


def _matched(
    deltas: Deltas,
    seen: dict[str, Contribution],
    key: str,
    before: Contribution | None,
    event: SearchMatched | MatchWithdrawn,
) -> None:
    """Count a match once in its search's series, in its minute; take a withdrawn one
    away from the minute it was counted in. A match withdrawn stays withdrawn (a deleted
    post does not come back), and a withdrawal of a match not counted (or no longer
    recorded, past the `posts` horizon) changes nothing."""
    series = search_key(event.tenant, event.search)
    if isinstance(event, SearchMatched):
        if before is None:
            minute = event.ts // MINUTE_US
            seen[key] = Contribution(minute, event.author, event.source, False)
            deltas.searches[(series, minute)] += 1
    elif before is not None and not before.deleted:
        seen[key] = msgspec.structs.replace(before, deleted=True)
        deltas.searches[(series, before.minute)] -= 1


def _engaged(deltas: Deltas, target: Contribution | None, event: EngagementRecorded) -> None:
    """Count engagement for its post's slots, when received in the post's first 24 hours."""
    if target is None or target.deleted or not target.author:
        return
    if 0 <= event.ts - target.minute * MINUTE_US < ENGAGEMENT_WINDOW_US:
        for scope in _slot_scopes(target):
            deltas.slots[(scope, target.minute // SLOT_MINUTES)][1] += event.delta


def _published(
    deltas: Deltas,
    seen: dict[str, Contribution],
    key: str,
    before: Contribution | None,
    event: PublishChanged,
) -> None:
    """Mark a post a tenant published as theirs, once; a post not seen yet is remembered
    with no author (it adds nothing) until it comes."""
    if before is not None and before.owner:
        return
    owner = own_scope(event.tenant, event.channel)
    if before is None:
        minute = event.ts // MINUTE_US
        seen[key] = Contribution(minute, "", event.network, False, owner=owner)
    elif not before.deleted:
        seen[key] = msgspec.structs.replace(before, owner=owner)
        deltas.slots[(owner, before.minute // SLOT_MINUTES)][0] += 1
