"""The live tail over the embedded log: one reader for every live stream of a process,
handing each stream its own search's matches past its position, holding a bounded
number of them, and reading the log for a stream that resumes from before what it holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hubbub.bootstrap import open_event_log
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.events import MatchWithdrawn, PostPublished, SearchMatched
from hubbub.listening.live import LiveTail
from hubbub.settings import Settings

T0 = 1_800_000_000_000_000


@pytest.fixture
async def event_log(tmp_path: Path) -> AsyncIterator[EventLog]:
    opened = await open_event_log(Settings(data_dir=tmp_path))
    yield opened
    await opened.close()


def matched(tenant: str, search: str, n: int) -> SearchMatched:
    return SearchMatched(
        id=f"m-{tenant}-{search}-{n}", key=f"{tenant}/{search}", ts=T0, source="test",
        tenant=tenant, search=search, post=f"at://did:plc:a/app.bsky.feed.post/{n}",
        author="did:plc:a", text=f"post {n}",
    )  # fmt: skip


async def test_each_stream_gets_its_own_searchs_arrivals_past_its_position(
    event_log: EventLog,
) -> None:
    await event_log.append([matched("acme", "s1", 0)])  # before the tail starts
    tail = LiveTail(event_log, poll_s=0.01, keep=4)
    try:
        await tail.start()
        assert tail.head == 1
        await event_log.append([matched("acme", "s1", 1), matched("globex", "s1", 2),
                                matched("acme", "s2", 3)])  # fmt: skip
        await event_log.append([
            MatchWithdrawn(id="w-1", key="acme/s1", ts=T0, source="test", tenant="acme",
                           search="s1", post=matched("acme", "s1", 1).post),
            PostPublished(id="p", key="k", ts=T0, source="test", post="p", author="a",
                          text="not a match: another topic's event is never held"),
        ])  # fmt: skip
        arrivals, cursor = await tail.since("acme", "s1", 1, wait_s=2.0)
        while cursor < 5:  # the second append may come in a later read
            more, cursor = await tail.since("acme", "s1", cursor, wait_s=2.0)
            arrivals += more
        assert [(a.position, type(a.event).__name__) for a in arrivals] == [
            (2, "SearchMatched"), (5, "MatchWithdrawn"),
        ]  # fmt: skip
        assert (await tail.since("acme", "s1", 5, wait_s=0.05)) == ([], 5)  # quiet: waits, none
        theirs, _ = await tail.since("globex", "s1", 1, wait_s=0)
        assert [a.event.post for a in theirs] == [matched("globex", "s1", 2).post]

        # Past `keep` records the oldest go; a stream from before them reads the log.
        await event_log.append([matched("acme", "s1", n) for n in range(4, 8)])
        while tail.head < 9:
            await tail.since("acme", "s1", tail.head, wait_s=1.0)
        resumed: list[int] = []
        cursor = 0
        while cursor < tail.head:
            arrivals, cursor = await tail.since("acme", "s1", cursor, wait_s=0)
            resumed += [a.position for a in arrivals]
        assert resumed == [1, 2, 5, 6, 7, 8, 9]  # once each, in order, across the two
    finally:
        await tail.close()
