"""One contract for every mentions backend: memory and postgres answer alike.

The postgres backend runs against the real server on 127.0.0.1:5432, in a database
made for each test and dropped after it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hubbub.eventlog.ports import Record
from hubbub.kernel.events import (
    PAGES,
    Event,
    FollowersChanged,
    PageDeactivated,
    PageReactivated,
    PageSeen,
)
from hubbub.mentions.memory import MemoryMentions
from hubbub.mentions.normalize import InvalidQuery, normalize, query_terms, words
from hubbub.mentions.pages import PageDict, project
from hubbub.mentions.ports import MentionsBackend
from hubbub.mentions.postgres import PostgresMentions
from tests.conftest import postgres_database

Reopen = Callable[[], Coroutine[Any, Any, MentionsBackend]]


class World:
    """A backend fed page events the way a replica feeds it, with log positions."""

    def __init__(self, backend: MentionsBackend, reopen: Reopen) -> None:
        self.backend = backend
        self.reopen = reopen
        self.position = 0

    async def feed(self, *events: Event) -> None:
        records = []
        for event in events:
            self.position += 1
            records.append(Record(PAGES, self.position, event))
        await self.backend.apply(records)

    async def handles(self, query: str, limit: int = 10) -> list[str | None]:
        return [s.handle for s in await self.backend.suggest(query, limit)]

    async def restart(self) -> None:
        self.backend = await self.reopen()


async def postgres_world(tmp_path: Path) -> AsyncIterator[World]:
    opened: list[MentionsBackend] = []
    with postgres_database("hubbub_mentions") as dsn:

        async def reopen() -> MentionsBackend:
            for backend in opened:
                await backend.close()
            opened.append(await PostgresMentions.connect(dsn))
            return opened[-1]

        try:
            yield World(await reopen(), reopen)
        finally:
            for backend in opened:
                await backend.close()


async def memory_world(tmp_path: Path) -> AsyncIterator[World]:
    snapshot = tmp_path / "mentions"
    world: World

    async def reopen() -> MentionsBackend:
        current = world.backend
        assert isinstance(current, MemoryMentions)
        current.save(snapshot)
        return MemoryMentions.load(snapshot)

    world = World(MemoryMentions(), reopen)
    yield world


@pytest.fixture(params=["memory", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    make = memory_world if request.param == "memory" else postgres_world
    async for built in make(tmp_path):
        yield built


def seen(did: str, handle: str | None, name: str | None, followers: int | None = None) -> PageSeen:
    return PageSeen(
        id=f"seen-{did}-{handle}-{name}-{followers}",
        key=did,
        ts=1,
        source="mastodon",
        page=did,
        handle=handle,
        display_name=name,
        followers_count=followers,
    )


def followed(did: str, delta: int, n: int = 0) -> FollowersChanged:
    return FollowersChanged(
        id=f"f-{did}-{delta}-{n}", key=did, ts=2, source="jetstream", page=did, follower="x",
        delta=delta,
    )  # fmt: skip


async def populate(world: World) -> None:
    await world.feed(
        seen("d1", "taylorswift.bsky.social", "Taylor Swift", 1_000_000),
        seen("d2", "taylor.dev", "Taylor Otwell", 50_000),
        seen("d3", "swiftlang.org", "Swift Language", 200_000),
        seen("d4", "zoe.example", "Zoë Ødegård", 10),
        seen("d5", "yamada.jp", "山田 太郎", 500),
        seen("d6", "nikola.example", "Никола Тесла", 70_000),
        seen("d7", "cairo.example", "مكتبة القاهرة 📚", 900),
        seen("d8", "ßtraße.example", "Łukasz Straße", 30),
    )


async def test_a_prefix_finds_handles_and_name_words_ranked_by_followers(world: World) -> None:
    await populate(world)
    assert await world.handles("@tay") == ["taylorswift.bsky.social", "taylor.dev"]
    assert await world.handles("swi") == ["taylorswift.bsky.social", "swiftlang.org"]
    assert await world.handles("tay", limit=1) == ["taylorswift.bsky.social"]
    (page,) = await world.backend.suggest("otw")
    assert (page.id, page.display_name, page.followers, page.source) == (
        "d2",
        "Taylor Otwell",
        50_000,
        "mastodon",
    )


async def test_several_words_in_or_out_of_order(world: World) -> None:
    await populate(world)
    assert await world.handles("taylor sw") == ["taylorswift.bsky.social"]
    assert await world.handles("swift tay") == ["taylorswift.bsky.social"]
    assert await world.handles("taylor ot") == ["taylor.dev"]
    assert await world.handles("taylor xyz") == []


async def test_matching_ignores_case_accents_and_script(world: World) -> None:
    await populate(world)
    assert await world.handles("ZOE") == ["zoe.example"]
    assert await world.handles("odeg") == ["zoe.example"]
    assert await world.handles("ÖDEG") == ["zoe.example"]
    assert await world.handles("lukasz") == ["ßtraße.example"]
    assert await world.handles("strasse") == ["ßtraße.example"]
    assert await world.handles("山田") == ["yamada.jp"]
    assert await world.handles("тес") == ["nikola.example"]
    assert await world.handles("القا") == ["cairo.example"]
    assert await world.handles("📚") == ["cairo.example"]


async def test_followers_renames_new_pages_and_removals_show_at_once(world: World) -> None:
    await populate(world)
    await world.feed(followed("d2", 2_000_000))
    assert (await world.handles("tay"))[0] == "taylor.dev"
    await world.feed(seen("d3", "swift.org", None))
    assert await world.handles("swiftl") == []
    assert await world.handles("swift.o") == ["swift.org"]
    assert await world.handles("swift la") == ["swift.org"]  # the name stayed
    await world.feed(seen("d9", "tayto.example", "Tayto Crisps", 3_000_000))
    assert (await world.handles("tay"))[0] == "tayto.example"
    await world.feed(
        PageDeactivated(id="x", key="d1", ts=4, source="jetstream", page="d1", status="takendown")
    )
    assert "taylorswift.bsky.social" not in await world.handles("tay", limit=50)
    await world.feed(followed("d1", 5))  # a removed page stays removed when followed
    assert "taylorswift.bsky.social" not in await world.handles("taylor", limit=50)
    await world.feed(PageReactivated(id="y", key="d1", ts=5, source="jetstream", page="d1"))
    assert "taylorswift.bsky.social" in await world.handles("taylor")


async def test_followers_counted_before_a_page_is_named_are_kept(world: World) -> None:
    await world.feed(followed("d1", 1, 1), followed("d1", 1, 2), followed("d1", -1, 3))
    assert await world.backend.page_count() == 1
    await world.feed(seen("d1", "late.example", "Late Bloomer"))
    (page,) = await world.backend.suggest("bloom")
    assert (page.handle, page.followers) == ("late.example", 1)


async def test_queries_that_cannot_be_answered_say_why(world: World) -> None:
    await populate(world)
    for bad in ("", "   ", "@", "a" * 1000):
        with pytest.raises(InvalidQuery):
            await world.backend.suggest(bad)
    assert await world.handles("qqqq") == []


async def test_a_restart_keeps_the_pages_and_the_log_position(world: World) -> None:
    await populate(world)
    await world.feed(followed("d4", 100))
    assert await world.backend.position() == 9
    await world.restart()
    assert await world.backend.position() == 9
    assert await world.backend.page_count() == 8
    (page,) = await world.backend.suggest("zoe")
    assert page.followers == 110
    await world.feed(followed("d4", 1, 2))
    (page,) = await world.backend.suggest("zoe")
    assert page.followers == 111


def oracle(pages: PageDict, query: str, limit: int) -> list[int]:
    """Follower counts of the best matches, by brute force over every page."""
    terms = query_terms(query)
    typed = "".join(terms)
    parts = [part for term in terms for part in words(term)]
    found = []
    for page in pages.values():
        if not page.suggestible:
            continue
        keys = page.keys()
        if any(key.startswith(typed) for key in keys) or (
            parts and all(any(key.startswith(part) for key in keys) for part in parts)
        ):
            found.append(page.followers)
    return sorted(found, reverse=True)[:limit]


@pytest.mark.parametrize("seed", range(3))
async def test_random_worlds_agree_with_brute_force(world: World, seed: int) -> None:
    rng = random.Random(seed)
    syllables = ["ka", "ta", "mi", "ré", "so", "ø", "山", "al", "be"]

    def word() -> str:
        return "".join(rng.choice(syllables) for _ in range(rng.randint(1, 3)))

    truth = PageDict()
    events: list[Event] = []
    for step in range(300):
        did = f"did:{rng.randrange(60)}"
        roll = rng.random()
        if roll < 0.4:
            event: Event = seen(
                did, f"{word()}.example", f"{word()} {word()}", rng.randrange(10**6)
            )
        elif roll < 0.85:
            event = followed(did, rng.randint(-50, 500), step)
        elif roll < 0.93:
            event = PageDeactivated(
                id=f"x{step}", key=did, ts=3, source="jetstream", page=did, status="deactivated"
            )
        else:
            event = PageReactivated(id=f"y{step}", key=did, ts=3, source="jetstream", page=did)
        events.append(event)
    for start in range(0, len(events), 37):
        batch = events[start : start + 37]
        project(truth, batch)
        await world.feed(*batch)
        for query in [word()[:2], word(), f"{word()} {word()[:1]}", "a", "山"]:
            answer = await world.backend.suggest(query, 5)
            assert [s.followers for s in answer] == oracle(truth, query, 5), query
            assert await world.backend.suggest_json(query, 5) == msgspec.json.encode(answer)
            for suggestion in answer:
                page = truth[suggestion.id]
                assert (suggestion.handle, suggestion.display_name) == (
                    page.handle,
                    page.display_name,
                )


async def test_short_prefixes_of_many_pages_follow_followers_renames_and_removals(
    world: World,
) -> None:
    """More pages share each short prefix than any table of its best could hold, and the
    best ones fall, leave, are removed and come back: every one- to three-character
    prefix still answers exactly the brute force's best. Followers are unique (a page's
    number in the last three digits), so the order is too."""
    rng = random.Random(12)
    starts = ["ka", "ko", "kø", "ta"]
    truth = PageDict()
    count = 400

    def named(n: int) -> PageSeen:
        handle = f"{rng.choice(starts)}{rng.choice('abc')}{n}.example"
        return seen(
            f"d{n:03}", handle, f"{rng.choice(starts)}ri {n}", rng.randrange(10**4) * 1000 + n
        )

    async def feed(*events: Event) -> None:
        project(truth, events)
        await world.feed(*events)

    async def agree() -> None:
        for query in ("k", "ka", "kab", "kø", "t", "tac", "r", "ri", "kori", "kob1"):
            for limit in (1, 10, 50):
                answer = [(s.followers, s.id) for s in await world.backend.suggest(query, limit)]
                expected = sorted(
                    ((p.followers, p.id) for p in truth.values()
                     if p.suggestible and any(k.startswith(normalize(query)) for k in p.keys())),
                    key=lambda rank: (-rank[0], rank[1]),
                )[:limit]  # fmt: skip
                assert answer == expected, (query, limit)

    await feed(*(named(n) for n in range(count)))
    await agree()
    best = sorted(truth.values(), key=lambda p: -p.followers)
    await feed(*(followed(p.id, -p.followers // 1000 * 1000, 1) for p in best[:150]))
    await agree()  # the best 150 fell to the bottom
    await feed(followed(best[-1].id, 10**9, 2))
    await agree()  # the least followed rose to the top
    gone = sorted(truth.values(), key=lambda p: -p.followers)[:120]
    await feed(*(
        PageDeactivated(id=f"x{p.id}", key=p.id, ts=3, source="jetstream", page=p.id,
                        status="deactivated")
        for p in gone
    ))  # fmt: skip
    await agree()  # the best 120 were removed
    await feed(*(named(n) for n in range(0, count, 3)))  # renamed: handles and names move
    await agree()
    await feed(*(
        PageReactivated(id=f"y{p.id}", key=p.id, ts=4, source="jetstream", page=p.id)
        for p in gone[::2]
    ))  # fmt: skip
    await agree()
    await world.restart()
    await agree()


@pytest.mark.services
async def test_a_postgres_database_from_before_the_top_table_gets_one_on_connecting() -> None:
    with postgres_database("hubbub_mentions") as dsn:
        backend = await PostgresMentions.connect(dsn)
        try:
            world = World(backend, lambda: PostgresMentions.connect(dsn))
            await populate(world)
            expected = await world.handles("t")
            assert expected == ["taylorswift.bsky.social", "taylor.dev"]
            async with backend._pool.connection() as conn:  # as a database of before was
                await conn.execute("DELETE FROM mention_top")
                await conn.execute("UPDATE mention_position SET top_built = false")
            assert await world.handles("t") == []
        finally:
            await backend.close()
        opened = await asyncio.gather(*(PostgresMentions.connect(dsn) for _ in range(3)))
        try:
            for replica in opened:  # replicas starting at once: one builds, all answer
                answer = [s.handle for s in await replica.suggest("t")]
                assert answer == expected
        finally:
            for replica in opened:
                await replica.close()
