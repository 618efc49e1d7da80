"""What the `listening` role runs in the background: the matcher, the fold, retention.

- **The matcher** folds `control` (every tenant's searches, `SearchChanged`, and
  channels, `ChannelChanged`) into one `Matcher`, then reads `posts` past its stored
  position in batches, matches every post against every search at once, and appends a
  `SearchMatched` per (search, post) to `matches`; a post that mentions a tenant's
  channel, or replies to one of its posts, is appended for the tenant's inbox (search
  `inbox:CHANNEL`). It reads `deletes` too: a deleted post that matched is withdrawn
  (`MatchWithdrawn`), whether it is still in memory or only in the store. Its positions
  move after the appends; the events' ids are stable, so a crash in between appends
  nothing twice.
- **The fold** keeps `matches` in the store for reading, positions in the same
  transaction (compare-and-set, as notifications' fold).
- **Retention** keeps the stored matches within `keep_per_search` per search and
  `keep_s` of age.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec
import structlog
from prometheus_client import Counter, Gauge

from hubbub.eventlog.follow import every
from hubbub.eventlog.ports import EventLog, Record
from hubbub.kernel.background import Background
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import (
    CONTROL,
    DELETES,
    MATCHES,
    POSTS,
    ChannelChanged,
    Event,
    MatchWithdrawn,
    PostDeleted,
    PostEdited,
    PostPublished,
    SearchChanged,
    SearchMatched,
)
from hubbub.kernel.tracing import consumer_span
from hubbub.listening.matching import Matcher, matches
from hubbub.listening.ports import ListeningStore, StalePositions, Withdrawn
from hubbub.listening.query import Query, QueryError, parse
from hubbub.listening.service import SOURCE, match_id, match_of, matched_event

log = structlog.get_logger("hubbub.listening")
INBOX: Final = "inbox:"
FRESH_GAP: Final = 1_000_000
"""The most posts a search saved while the matcher was behind takes from before it."""
MATCHED = Counter("hubbub_listening_matches_total", "Posts matched by a search, or inboxed.")
POSTS_READ = Counter("hubbub_listening_posts_total", "Posts the matcher has matched.")
SEARCHES = Gauge("hubbub_listening_searches", "Searches the matcher holds.")
COSTLY = Gauge("hubbub_listening_costly_searches", "Searches checked against every post.")


@dataclass(frozen=True)
class ListeningPolicy:
    """The worker's tunables (settings `HUBBUB_LISTENING_*`)."""

    batch: int = 5000
    interval_s: float = 0.05
    fold_interval_s: float = 0.5
    """The fold is not on the way to live streams (they read the log): it takes bigger
    batches less often, and leaves the matcher the processor meanwhile."""
    keep_per_search: int = 100_000
    keep_s: float = 30 * 86400.0
    prune_every_s: float = 600.0
    recent: int = 50_000
    """Matched posts remembered in memory, to withdraw before their match is stored: it
    needs to cover only the fold's lag (at 10,000 posts/s, a third of them matched, this
    is 15 s); each costs about 350 bytes."""
    deleted: int = 200_000
    """Deleted posts remembered, so one deleted before it is matched is never matched:
    the deletes topic, a hundredth of the posts, may be read that far ahead of them
    while the matcher catches up."""
    deleted_keep_s: float = 60.0
    """A deletion is remembered at least this long after it was read, and until a read
    of `posts` begun after it reached their head (`MatcherState.settle`): caught up, the
    memory holds about this long's deletions, not `deleted`."""


@dataclass
class MatcherState:
    """What the matcher folded from `control`: each search, each channel's page."""

    matcher: Matcher = field(default_factory=Matcher)
    control: int = 0
    from_position: dict[str, int] = field(default_factory=dict)
    """Each search's (key's) first post: the live matcher takes the posts after it."""
    inboxes: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    """Page id -> the (tenant, channel) of each channel publishing as it."""
    channels: dict[tuple[str, str], str] = field(default_factory=dict)
    recent: OrderedDict[str, list[tuple[str, str]]] = field(default_factory=OrderedDict)
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    deleted: OrderedDict[str, float] = field(default_factory=OrderedDict)
    """Posts lately deleted, with when their deletion was read (the clock's monotonic
    seconds): `deletes` and `posts` are read each from its own position, so a deletion
    may be read before its post is matched; the post is then not matched."""
    caught_up_at: float = float("-inf")
    """When the last read of `posts` that reached their head began."""
    fresh: dict[str, Query] = field(default_factory=dict)
    """Searches added or changed since the last batch, by key: saved while this matcher
    was behind the head they were saved at, they take the posts in between too."""
    pages_of: dict[str, Mapping[str, Sequence[str]]] = field(default_factory=dict)
    loaded: bool = False
    """Whether `control` was read to its end once: the searches known then were matched
    by this matcher's earlier runs up to its stored position; only those folded later
    are fresh."""

    def fold(self, events: Sequence[Event]) -> None:
        for event in events:
            if isinstance(event, SearchChanged):
                self._search(event)
            elif isinstance(event, ChannelChanged):
                self._channel(event)
        SEARCHES.set(len(self.matcher))
        COSTLY.set(len(self.matcher.costly()))

    def _search(self, change: SearchChanged) -> None:
        key = f"{change.tenant}\x00{change.search}"
        if not change.active:
            self.matcher.remove(key)
            self.from_position.pop(key, None)
            self.fresh.pop(key, None)
            self.pages_of.pop(key, None)
            return
        try:
            query = parse(change.query, max_terms=10_000, max_chars=100_000)
        except QueryError as error:  # saved by an older version's rules: skipped, said
            log.error("a saved search no longer parses", tenant=change.tenant,
                      search=change.search, why=str(error))  # fmt: skip
            self.matcher.remove(key)
            return
        self.matcher.put(key, query, change.pages)
        self.from_position[key] = change.from_position
        self.pages_of[key] = change.pages
        if self.loaded:
            self.fresh[key] = query

    def _channel(self, change: ChannelChanged) -> None:
        key = (change.tenant, change.channel)
        old = self.channels.pop(key, None)
        if old is not None:
            self.inboxes.get(old, set()).discard(key)
        if change.active and change.page:
            self.channels[key] = change.page
            self.inboxes.setdefault(change.page, set()).add(key)

    def match(self, records: Sequence[Record], remember: int) -> list[Event]:
        """The matches and inbox arrivals of a batch of posts."""
        posted = [
            r
            for r in records
            if isinstance(r.event, PostPublished) and r.event.post not in self.deleted
        ]
        found: list[Event] = []
        keyed = self.matcher.match_many([r.event for r in posted])  # type: ignore[misc]
        for record, keys in zip(posted, keyed, strict=True):
            post = record.event
            assert isinstance(post, PostPublished)
            hits: list[tuple[str, str]] = []
            for key in keys:
                if record.position > self.from_position.get(key, 0):
                    tenant, search = pair = self._pair(key)
                    found.append(matched_event(tenant, search, record))
                    hits.append(pair)
            if self.inboxes:
                for tenant, channel, kind in self._inboxed(post):
                    tenant, search = pair = self._pair(f"{tenant}\x00{INBOX}{channel}")
                    event = matched_event(tenant, search, record)
                    found.append(msgspec.structs.replace(event, kind=kind))
                    hits.append(pair)
            if hits:
                self.recent[post.post] = hits
        while len(self.recent) > remember:
            self.recent.popitem(last=False)
        return found

    def _pair(self, key: str) -> tuple[str, str]:
        """The (tenant, search) of a matcher's key, one tuple per search: `recent` holds
        hundreds of thousands of them."""
        pair = self.pairs.get(key)
        if pair is None:
            tenant, _, search = key.partition("\x00")
            if len(self.pairs) >= 100_000:  # searches removed leave theirs behind
                self.pairs.clear()
            pair = self.pairs[key] = (tenant, search)
        return pair

    def forget(self, posts: Iterable[str], read_at: float, remember: int) -> None:
        """Note deleted posts, their deletions read at `read_at`, so a post deleted
        before it is matched is not matched."""
        for post in posts:
            self.deleted[post] = read_at
        while len(self.deleted) > remember:
            self.deleted.popitem(last=False)

    def settle(self, now: float, keep_s: float) -> None:
        """Drop the deleted posts whose deletion was read before the last read of
        `posts` that reached their head, and more than `keep_s` ago. A source sends a
        post before its deletion, so that read took the post; `keep_s` covers a log that
        writes its topics concurrently (JetStream), and may store the deletion first.
        The events' own times are not used: each source dates them by its own clock, and
        a replay by old ones."""
        before = min(self.caught_up_at, now - keep_s)
        deleted = self.deleted
        while deleted and next(iter(deleted.values())) < before:
            deleted.popitem(last=False)

    def _inboxed(self, post: PostPublished) -> list[tuple[str, str, str]]:
        """(tenant, channel, kind) of each inbox the post reaches: a reply to one of the
        channel's posts, or a mention of the channel (not the channel's own posts)."""
        reached: dict[tuple[str, str], str] = {}
        parent = _author_of(post.reply_parent)
        if parent is not None:
            for tenant, channel in self.inboxes.get(parent, ()):
                reached[(tenant, channel)] = "reply"
        for page in post.mentions:
            for tenant, channel in self.inboxes.get(page, ()):
                reached.setdefault((tenant, channel), "mention")
        own = self.inboxes.get(post.author, set())
        return [(t, c, kind) for (t, c), kind in reached.items() if (t, c) not in own]


def _author_of(uri: str | None) -> str | None:
    """The author's page id of a Bluesky post's at:// URI (a DID); None otherwise
    (a Mastodon reply also mentions whom it answers)."""
    if not uri or not uri.startswith("at://"):
        return None
    return uri[5:].split("/", 1)[0]


async def catch_up_control(state: MatcherState, event_log: EventLog, batch: int = 10_000) -> int:
    """Fold what `control` holds past the state's position."""
    folded = 0
    while records := await event_log.read(CONTROL, state.control + 1, batch):
        state.fold([r.event for r in records])
        state.control = records[-1].position
        folded += len(records)
    state.loaded = True
    return folded


async def match_step(
    store: ListeningStore,
    event_log: EventLog,
    state: MatcherState,
    policy: ListeningPolicy,
    clock: Clock,
) -> int:
    """Match the next batch of posts and withdraw the matches of deleted posts; returns
    the records read (0 when caught up)."""
    await catch_up_control(state, event_log)
    positions = await asyncio.to_thread(store.positions)
    if state.fresh:
        await _catch_up_fresh(event_log, state, positions.get(POSTS, 0))
    posts_read_at = clock.monotonic_s()
    posts = await event_log.read(POSTS, positions.get(POSTS, 0) + 1, policy.batch)
    deletes = await event_log.read(DELETES, positions.get(DELETES, 0) + 1, policy.batch)
    if not posts and not deletes:
        return 0
    gone = {r.event.post: r.event.ts for r in deletes if isinstance(r.event, PostDeleted)}
    state.forget(gone, posts_read_at, policy.deleted)
    edited = {r.event.post: r.event.ts for r in posts if isinstance(r.event, PostEdited)}
    matched_before = await _matched(store, state, list(edited))
    with consumer_span("listening match", (r.event.trace for r in posts[:1])):
        found = await asyncio.to_thread(state.match, posts, policy.recent)
    if matched_before:  # an edit that no longer matches a search leaves it
        still = {(e.tenant, e.search, e.post) for e in found if isinstance(e, SearchMatched)}
        found += _withdrawals(matched_before - still, edited)
    found += _withdrawals(await _matched(store, state, list(gone), forget=True), gone)
    if found:
        await event_log.append(found)
        MATCHED.inc(sum(isinstance(e, SearchMatched) for e in found))
    POSTS_READ.inc(len(posts))
    if len(posts) < policy.batch:
        state.caught_up_at = posts_read_at
    state.settle(clock.monotonic_s(), policy.deleted_keep_s)
    reached = {}
    if posts:
        reached[POSTS] = posts[-1].position
    if deletes:
        reached[DELETES] = deletes[-1].position
    await asyncio.to_thread(store.advance, reached)
    return len(posts) + len(deletes)


async def _catch_up_fresh(event_log: EventLog, state: MatcherState, reached: int) -> None:
    """Match the searches added since the last batch against the posts this matcher took
    before it knew them, from the head they were saved at (at most `FRESH_GAP` posts)."""
    fresh, state.fresh = state.fresh, {}
    for key, query in fresh.items():
        start = max(state.from_position.get(key, 0), reached - FRESH_GAP) + 1
        tenant, _, search = key.partition("\x00")
        pages = state.pages_of.get(key, {})
        found: list[Event] = []
        while start <= reached:
            records = await event_log.read(POSTS, start, min(5000, reached - start + 1))
            if not records:
                break
            found += [
                matched_event(tenant, search, r)
                for r in records
                if r.position <= reached
                and isinstance(r.event, PostPublished)
                and r.event.post not in state.deleted
                and matches(query, r.event, pages)
            ]
            start = records[-1].position + 1
        if found:
            await event_log.append(found)


async def _matched(
    store: ListeningStore, state: MatcherState, posts: Sequence[str], *, forget: bool = False
) -> set[tuple[str, str, str]]:
    """(tenant, search, post) of every match of these posts: those the store keeps, and
    those matched lately (their match may not be stored yet); `forget` them in memory."""
    if not posts:
        return set()
    found = {(w.tenant, w.search, w.post) for w in await asyncio.to_thread(store.matched, posts)}
    for post in posts:
        lately = state.recent.pop(post, ()) if forget else state.recent.get(post, ())
        found.update((tenant, search, post) for tenant, search in lately)
    return found


def _withdrawals(matched: set[tuple[str, str, str]], dated: Mapping[str, int]) -> list[Event]:
    """The withdrawals of these matches, each dated as the delete or edit of its post:
    `matches` stays in event time, as its matches are dated as their posts (a date of
    the matcher's clock would jump ahead of every match around it whenever the source
    runs behind that clock, as a replay does)."""
    return [
        MatchWithdrawn(
            id=f"withdrawn:{match_id(tenant, search, post)}",
            key=f"{tenant}/{search}",
            ts=dated[post],
            source=SOURCE,
            tenant=tenant,
            search=search,
            post=post,
        )
        for tenant, search, post in sorted(matched)
    ]


async def match_all(
    store: ListeningStore,
    event_log: EventLog,
    state: MatcherState,
    policy: ListeningPolicy,
    clock: Clock,
) -> int:
    """Match until caught up; returns the records read."""
    read = 0
    while done := await match_step(store, event_log, state, policy, clock):
        read += done
    return read


async def fold(store: ListeningStore, event_log: EventLog, batch: int = 5000) -> int:
    """Keep what `matches` holds past the stored position; returns the records read."""
    folded = 0
    while True:
        positions = await asyncio.to_thread(store.positions)
        start = positions.get(MATCHES, 0)
        records = await event_log.read(MATCHES, start + 1, batch)
        if not records:
            return folded
        kept = [
            match_of(r.event, r.position) for r in records if isinstance(r.event, SearchMatched)
        ]
        withdrawn = [
            Withdrawn(r.event.tenant, r.event.search, r.event.post)
            for r in records
            if isinstance(r.event, MatchWithdrawn)
        ]
        read_from = {MATCHES: start} if MATCHES in positions else {}
        try:
            await asyncio.to_thread(
                store.apply, kept, withdrawn, {MATCHES: records[-1].position}, read_from
            )
        except StalePositions as error:
            log.info("positions moved under the fold; folding on from them", why=str(error))
            continue
        folded += len(records)


def run(
    background: Background,
    *,
    store: ListeningStore,
    event_log: EventLog,
    policy: ListeningPolicy,
    clock: Clock,
    state: MatcherState | None = None,
) -> MatcherState:
    """Start the matcher, the fold and retention under `background`."""
    state = state or MatcherState()

    async def prune() -> None:
        before = clock.now_us() - int(policy.keep_s * 1e6)
        dropped = await asyncio.to_thread(store.prune, policy.keep_per_search, before)
        if dropped:
            log.info("old matches dropped", rows=dropped)

    background.start(
        "listening-matcher",
        lambda: every(
            policy.interval_s,
            lambda: match_all(store, event_log, state, policy, clock),
            what="matching posts against the searches",
        ),
    )
    background.start(
        "listening-fold",
        lambda: every(
            policy.fold_interval_s, lambda: fold(store, event_log), what="keeping the matches"
        ),
    )
    background.start(
        "listening-retention",
        lambda: every(policy.prune_every_s, prune, what="dropping old matches"),
    )
    return state
