"""The memory backend built from the log, snapshotted with its position, and resumed."""

from __future__ import annotations

from pathlib import Path

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.events import FollowersChanged, PageSeen
from hubbub.mentions.memory import MemoryMentions
from hubbub.mentions.service import catch_up

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
    snapshot = tmp_path / "mentions"
    try:
        await log.append([named(0), follow(1), follow(2)])
        backend = MemoryMentions.load(snapshot)
        assert await catch_up(backend, log) == 3
        backend.save(snapshot)

        await log.append([follow(3)])
        restarted = MemoryMentions.load(snapshot)
        assert await restarted.position() == 3
        assert await catch_up(restarted, log) == 1
        (page,) = await restarted.suggest("odeg")
        assert (page.handle, page.followers) == ("alice.bsky.social", 3)
    finally:
        await log.close()


async def test_without_a_usable_snapshot_the_backend_starts_empty(tmp_path: Path) -> None:
    missing = MemoryMentions.load(tmp_path / "missing")
    assert (await missing.position(), await missing.page_count()) == (0, 0)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    broken = MemoryMentions.load(tmp_path / "broken")
    assert (await broken.position(), await broken.page_count()) == (0, 0)
