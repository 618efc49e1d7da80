"""Listening's use cases: a tenant's saved searches (streams), what a query would have
matched in the last hour, the stored matches, and a search re-run over the log.

A search is saved in the store (which enforces the tenant's limits) and then announced
on `control` as a `SearchChanged`, which every listening replica's matcher folds before
its next batch of posts: a new or changed search applies from the next post, with no
restart. The handles its `@page` and `from:` terms name are resolved to page ids once,
when it is saved (`Pages`), and travel with it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

import xxhash

from hubbub.eventlog.ports import EventLog, Record
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import (
    DELETES,
    POSTS,
    PostDeleted,
    PostPublished,
    SearchChanged,
    SearchMatched,
)
from hubbub.listening.live import LiveTail
from hubbub.listening.matching import matches
from hubbub.listening.ports import (
    ListeningStore,
    Match,
    MatchFilter,
    MatchPage,
    NotFound,
    Pages,
    Search,
)
from hubbub.listening.query import Query, parse

NAME_CHARS: Final = 200
SOURCE: Final = "listening"
HOUR_US: Final = 3_600_000_000
Resolved = Mapping[str, Sequence[str]]
"""What each handle of a query resolved to (page ids)."""
READ_BATCH: Final = 5000


@dataclass(frozen=True)
class ListeningLimits:
    """What one tenant may save (settings `HUBBUB_LISTENING_*`)."""

    max_searches: int = 100
    max_terms: int = 50
    test_max_posts: int = 200_000
    keep_per_search: int = 100_000


@dataclass(frozen=True)
class Tried:
    """What a query would have matched among the recent posts, newest first."""

    matches: list[Match]
    scanned: int


def match_id(tenant: str, search: str, post: str) -> str:
    """The id of a post's match of a search: the same however often it is made (live,
    by a backfill, after a crash), so the log keeps it once."""
    digest = xxhash.xxh3_128_hexdigest(f"{tenant}\x00{search}\x00{post}".encode())
    return f"m{digest}"


def matched_event(tenant: str, search: str, record: Record) -> SearchMatched:
    """The `SearchMatched` of a post (at `record`) for a tenant's search, dated as the
    post is, so a search's volume (and a backfill of it) falls where its posts do."""
    post = record.event
    assert isinstance(post, PostPublished)
    return SearchMatched(
        id=match_id(tenant, search, post.post), key=f"{tenant}/{search}", ts=post.ts,
        source=SOURCE, trace=post.trace, tenant=tenant, search=search, post=post.post,
        author=post.author, text=post.text, langs=post.langs, links=post.links,
        media=post.media, reply_parent=post.reply_parent, created_at=post.created_at,
        position=record.position,
    )  # fmt: skip


class Listening:
    """The streams of every tenant, over `store`, announced on `event_log`."""

    def __init__(
        self,
        store: ListeningStore,
        event_log: EventLog,
        pages: Pages,
        clock: Clock,
        limits: ListeningLimits = ListeningLimits(),
        live: LiveTail | None = None,
    ) -> None:
        self.store = store
        self.event_log = event_log
        self.pages = pages
        self.clock = clock
        self.limits = limits
        self.live = live or LiveTail(event_log)
        """The matches as they arrive, for live streams (started by the first)."""

    def parse(self, text: str) -> Query:
        """The query, or `QueryError` saying where it goes wrong and what was expected."""
        return parse(text, max_terms=self.limits.max_terms)

    async def streams(self, tenant: str) -> list[Search]:
        return await asyncio.to_thread(self.store.searches, tenant)

    async def stream(self, tenant: str, search: str) -> Search:
        found = await asyncio.to_thread(self.store.search, tenant, search)
        if found is None:
            raise NotFound(f"no stream {search!r} in this workspace")
        return found

    async def save(
        self, tenant: str, user: str, name: str, text: str, search: str | None = None
    ) -> Search:
        """Add a stream (`search` None) or change one; the matchers take it from the next
        post. `QueryError` for a query that does not parse, `Refused` over a limit."""
        query = self.parse(text)
        name = name.strip()[:NAME_CHARS] or text.strip()[:NAME_CHARS]
        now = self.clock.now_us()
        pages = {handle: await self.pages.resolve(tenant, handle) for handle in query.handles}
        head = await self._head()
        if search is None:
            made = Search(
                tenant=tenant, id=secrets.token_hex(8), name=name, query=query.text,
                terms=query.terms, costly=query.costly, created_by=user, created_us=now,
                updated_us=now, pages=pages, from_position=head,
            )  # fmt: skip
        else:
            before = await self.stream(tenant, search)
            made = replace(
                before, name=name, query=query.text, terms=query.terms, costly=query.costly,
                updated_us=now, pages=pages, from_position=head, backfilled_to=0,
            )  # fmt: skip
        await asyncio.to_thread(self.store.put_search, made, self.limits.max_searches)
        try:
            await self._announce(made, user, active=True)
        except Exception:
            if search is None:  # not matched anywhere: not kept either
                await asyncio.to_thread(self.store.remove_search, tenant, made.id)
            raise
        return made

    async def remove(self, tenant: str, user: str, search: str) -> None:
        found = await self.stream(tenant, search)
        await self._announce(found, user, active=False)
        await asyncio.to_thread(self.store.remove_search, tenant, search)

    async def _announce(self, search: Search, user: str, *, active: bool) -> None:
        await self.event_log.append([
            SearchChanged(
                id=f"search:{search.tenant}:{search.id}:{secrets.token_hex(8)}",
                key=f"{search.tenant}/{search.id}", ts=self.clock.now_us(), source=SOURCE,
                tenant=search.tenant, search=search.id, name=search.name, query=search.query,
                pages={k: list(v) for k, v in search.pages.items()}, active=active,
                changed_by=user, from_position=search.from_position,
            )
        ])  # fmt: skip

    async def matches(self, tenant: str, search: str, chosen: MatchFilter) -> MatchPage:
        await self.stream(tenant, search)
        return await asyncio.to_thread(self.store.matches, tenant, search, chosen)

    async def test(self, tenant: str, text: str, hours: float = 1.0, limit: int = 50) -> Tried:
        """What `text` would have matched among the posts of the last `hours` (at most
        the newest `test_max_posts` of them) that are not deleted, newest first."""
        query = self.parse(text)
        pages = {handle: await self.pages.resolve(tenant, handle) for handle in query.handles}
        first, head = await self._kept(POSTS)
        start = max(first, head - self.limits.test_max_posts + 1)
        since = self.clock.now_us() - int(hours * HOUR_US)
        start = await self._first_since(POSTS, start, head, since)
        found: list[Match] = []
        scanned = 0
        async for batch in self._batches(start, head):
            recent = [r for r in batch if r.event.ts >= since]
            scanned += sum(isinstance(r.event, PostPublished) for r in recent)
            hits = await asyncio.to_thread(_matching, query, recent, pages)
            found += [match_of(matched_event(tenant, "test", record)) for record in hits]
        deleted = await self._deleted({m.post for m in found}, since)
        kept = [m for m in found if m.post not in deleted]
        kept.sort(key=lambda m: -m.position)
        return Tried(kept[:limit], scanned)

    async def backfill(
        self, tenant: str, search: str, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Match the search against the retained posts up to where the live matcher took
        it over (from where an earlier backfill stopped), leaving out deleted posts and
        keeping the newest `keep_per_search`; returns the matches appended.
        `progress(done, total)` is told as it reads the posts, then the deletions."""
        found = await self.stream(tenant, search)
        query = self.parse(found.query)
        first, _ = await self._kept(POSTS)
        start = max(first, found.backfilled_to + 1)
        end = found.from_position
        total = max(end - start + 1, 0)
        candidates: deque[SearchMatched] = deque(maxlen=self.limits.keep_per_search)
        async for batch in self._batches(start, end):
            hits = await asyncio.to_thread(_matching, query, batch, found.pages)
            candidates.extend(matched_event(tenant, search, record) for record in hits)
            if progress is not None:
                progress(batch[-1].position - start + 1, total)
        oldest = min((c.ts for c in candidates), default=0)
        deleted = await self._deleted({c.post for c in candidates}, oldest)
        events = [c for c in candidates if c.post not in deleted]
        appended = 0
        for chunk in range(0, len(events), READ_BATCH):
            appended += (await self.event_log.append(events[chunk : chunk + READ_BATCH])).appended
        if end >= start:
            await asyncio.to_thread(self.store.mark_backfilled, tenant, search, end)
        if progress is not None:
            progress(total, total)
        return appended

    async def _batches(self, start: int, end: int) -> AsyncIterator[list[Record]]:
        """The records of `posts` from `start` to `end`, a batch at a time."""
        position = start
        while position <= end:
            records = await self.event_log.read(
                POSTS, position, min(READ_BATCH, end - position + 1)
            )
            batch = [record for record in records if record.position <= end]
            if not batch:
                return
            yield batch
            position = records[-1].position + 1

    async def _deleted(self, posts: set[str], since_us: int) -> set[str]:
        """Which of `posts` the `deletes` topic says were deleted (from `since_us` on)."""
        if not posts:
            return set()
        first, head = await self._kept(DELETES)
        position = await self._first_since(DELETES, first, head, since_us)
        deleted: set[str] = set()
        while position <= head:
            records = await self.event_log.read(DELETES, position, READ_BATCH)
            if not records:
                break
            deleted.update(
                r.event.post
                for r in records
                if isinstance(r.event, PostDeleted) and r.event.post in posts
            )
            position = records[-1].position + 1
        return deleted

    async def _head(self) -> int:
        return (await self._kept(POSTS))[1]

    async def _kept(self, topic_name: str) -> tuple[int, int]:
        """The first and last positions of a topic the log keeps (1, 0 when empty)."""
        stats = await self.event_log.stats()
        for topic in stats.topics:
            if topic.topic == topic_name:
                return topic.last_position - topic.count + 1, topic.last_position
        return 1, 0

    async def _first_since(self, topic: str, low: int, high: int, since_us: int) -> int:
        """The first position in [low, high] of a post appended at `since_us` or later
        (the log is in append order, so its times only grow, give or take a source's
        clock): a binary search reading one record at a time."""
        while low < high:
            middle = (low + high) // 2
            records = await self.event_log.read(topic, middle, 1)
            if records and records[0].event.ts < since_us:
                low = middle + 1
            else:
                high = middle
        return low


def _matching(query: Query, records: Sequence[Record], pages: Resolved) -> list[Record]:
    """The records of posts `query` matches (run in a thread: a batch of thousands of
    posts is milliseconds of the processor the event loop needs for live streams)."""
    return [
        record
        for record in records
        if isinstance(record.event, PostPublished) and matches(query, record.event, pages)
    ]


def match_of(event: SearchMatched, position: int | None = None) -> Match:
    """A `SearchMatched` as the store keeps it, at its `position` in `matches` (the
    post's own position by default)."""
    return Match(
        tenant=event.tenant, search=event.search, post=event.post, author=event.author,
        text=event.text, langs=tuple(event.langs), links=tuple(event.links), media=event.media,
        reply_parent=event.reply_parent, created_at=event.created_at,
        position=event.position if position is None else position, kind=event.kind,
    )  # fmt: skip
