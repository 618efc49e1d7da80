"""Suggestions for what a person types after @, from page events to ranked pages."""

from __future__ import annotations

import pytest
from hubbub.mentions.index import MentionsIndex

from hubbub.kernel.events import Event, FollowersChanged, PageDeactivated, PageSeen
from hubbub.mentions.normalize import InvalidQuery
from hubbub.mentions.pages import Page, project
from hubbub.mentions.service import apply_changes, suggest


class World:
    """The real index and page view, fed the way the service feeds them."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.index = MentionsIndex()

    def feed(self, *events: Event) -> None:
        apply_changes(self.index, self.pages, project(self.pages, events))

    def handles(self, query: str, limit: int = 10) -> list[str | None]:
        return [s.handle for s in suggest(self.index, self.pages, query, limit)]


def page(did: str, handle: str, name: str, followers: int) -> PageSeen:
    return PageSeen(
        id=did,
        key=did,
        ts=1,
        source="mastodon",
        page=did,
        handle=handle,
        display_name=name,
        followers_count=followers,
    )


@pytest.fixture
def world() -> World:
    built = World()
    built.feed(
        page("d1", "taylorswift.bsky.social", "Taylor Swift", 1_000_000),
        page("d2", "taylor.dev", "Taylor Otwell", 50_000),
        page("d3", "swiftlang.org", "Swift Language", 200_000),
        page("d4", "zoe.example", "Zoë Ødegård", 10),
        page("d5", "yamada.jp", "山田 太郎", 500),
        page("d6", "nikola.example", "Никола Тесла", 70_000),
    )
    return built


def test_a_prefix_finds_handles_and_name_words_ranked_by_followers(world: World) -> None:
    assert world.handles("@tay") == ["taylorswift.bsky.social", "taylor.dev"]
    assert world.handles("swi") == ["taylorswift.bsky.social", "swiftlang.org"]
    assert world.handles("tay", limit=1) == ["taylorswift.bsky.social"]


def test_several_words_in_or_out_of_order(world: World) -> None:
    assert world.handles("taylor sw") == ["taylorswift.bsky.social"]
    assert world.handles("swift tay") == ["taylorswift.bsky.social"]
    assert world.handles("taylor ot") == ["taylor.dev"]


def test_matching_ignores_case_accents_and_script(world: World) -> None:
    assert world.handles("ZOE") == ["zoe.example"]
    assert world.handles("odeg") == ["zoe.example"]
    assert world.handles("山田") == ["yamada.jp"]
    assert world.handles("тес") == ["nikola.example"]


def test_followers_renames_and_removals_show_at_once(world: World) -> None:
    world.feed(
        FollowersChanged(
            id="f", key="d2", ts=2, source="jetstream", page="d2", follower="x", delta=2_000_000
        )
    )
    assert world.handles("tay")[0] == "taylor.dev"
    world.feed(PageSeen(id="r", key="d3", ts=3, source="mastodon", page="d3", handle="swift.org"))
    assert world.handles("swiftl") == []
    assert world.handles("swift.o") == ["swift.org"]
    world.feed(
        PageDeactivated(id="x", key="d1", ts=4, source="jetstream", page="d1", status="deactivated")
    )
    assert "taylorswift.bsky.social" not in world.handles("tay")


def test_queries_that_cannot_be_answered_say_why(world: World) -> None:
    for bad in ("", "   ", "@", "a" * 1000):
        with pytest.raises(InvalidQuery):
            world.handles(bad)
    assert world.handles("qqqq") == []
