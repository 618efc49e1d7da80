"""Page events from the log folded into the mentions service's view of pages."""

from __future__ import annotations

from hubbub.kernel.events import FollowersChanged, PageDeactivated, PageReactivated, PageSeen
from hubbub.mentions.pages import PageDict, project

ALICE = "did:plc:alice"


def seen(**fields: object) -> PageSeen:
    return PageSeen(id="s", key=ALICE, ts=1, source="jetstream", page=ALICE, **fields)  # type: ignore[arg-type]


def follow(delta: int) -> FollowersChanged:
    return FollowersChanged(
        id="f", key=ALICE, ts=1, source="jetstream", page=ALICE, follower="x", delta=delta
    )


def test_a_page_gathers_its_handle_name_and_followers() -> None:
    pages = PageDict()
    changes = project(
        pages,
        [
            seen(handle="alice.bsky.social"),
            seen(display_name="Alice Ødegård"),
            follow(1),
            follow(1),
            follow(-1),
        ],
    )
    page = pages[ALICE]
    assert (page.handle, page.display_name, page.followers) == (
        "alice.bsky.social",
        "Alice Ødegård",
        1,
    )
    assert page.keys() == ["alice.bsky.social", "alice", "odegard"]
    assert changes.renamed == {ALICE}
    assert changes.rescored == set()  # a renamed page is re-indexed whole anyway


def test_follower_counts_never_go_negative_and_mastodon_counts_are_absolute() -> None:
    pages = PageDict()
    project(pages, [follow(-1)])
    assert pages[ALICE].followers == 0
    changes = project(pages, [seen(followers_count=322_930)])
    assert pages[ALICE].followers == 322_930
    assert changes.rescored == {ALICE}


def test_a_deactivated_page_leaves_suggestions_until_reactivated() -> None:
    pages = PageDict()
    project(pages, [seen(handle="alice.bsky.social")])
    gone = PageDeactivated(
        id="d", key=ALICE, ts=2, source="jetstream", page=ALICE, status="takendown"
    )
    project(pages, [gone])
    assert not pages[ALICE].suggestible
    back = PageReactivated(id="r", key=ALICE, ts=3, source="jetstream", page=ALICE)
    assert project(pages, [back]).renamed == {ALICE}
    assert pages[ALICE].suggestible


def test_a_page_known_only_by_followers_is_not_suggested() -> None:
    pages = PageDict()
    project(pages, [follow(5)])
    assert not pages[ALICE].suggestible
    assert pages[ALICE].keys() == []
