"""The mentions view built from the log, saved with its position, and resumed."""

from __future__ import annotations

from pathlib import Path

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.events import FollowersChanged, PageSeen
from hubbub.mentions.worker import MentionsView, catch_up

ALICE = "did:plc:alice"


def named(n: int) -> PageSeen:
    return PageSeen(
        id=f"seen-{n}",
        key=ALICE,
        ts=n,
        source="jetstream",
        page=ALICE,
        handle="alice.bsky.social",
        display_name="Alice Ødegård",
    )


def follow(n: int) -> FollowersChanged:
    return FollowersChanged(
        id=f"follow-{n}",
        key=ALICE,
        ts=n,
        source="jetstream",
        page=ALICE,
        follower=f"did:plc:fan{n}",
        delta=1,
    )


async def test_a_restart_resumes_after_the_snapshot_without_counting_twice(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    snapshot = tmp_path / "mentions.snapshot"
    try:
        await log.append([named(0), follow(1), follow(2)])
        view = MentionsView.load(snapshot)
        assert await catch_up(view, log) == 3
        view.save(snapshot)

        await log.append([follow(3)])
        restarted = MentionsView.load(snapshot)
        assert restarted.position == 3
        assert await catch_up(restarted, log) == 1
        (page,) = restarted.suggest("odeg")
        assert (page.handle, page.followers) == ("alice.bsky.social", 3)
    finally:
        await log.close()


def test_without_a_snapshot_the_view_starts_empty(tmp_path: Path) -> None:
    view = MentionsView.load(tmp_path / "missing.snapshot")
    assert (view.position, view.pages) == (0, {})
