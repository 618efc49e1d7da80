"""The EventLog contract, run against every adapter (see hubbub.eventlog.ports)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from hubbub.eventlog import retention
from hubbub.eventlog.ports import EventLog, PositionExpired, Record
from hubbub.eventlog.retention import DAY_S, RetentionPolicy
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.events import (
    CONTROL,
    DEADLETTER,
    ENGAGEMENT,
    PAGES,
    POSTS,
    EngagementRecorded,
    Event,
    FlagChanged,
    FollowersChanged,
    InputRejected,
    PersonChanged,
    SettingChanged,
)
from tests.conftest import NATS_URL, post, require_service, unique_name

OpenLog = Callable[..., Awaitable[EventLog]]

# Posts, engagement and deletes live one second; pages, control and the rest as usual.
SHORT_LIVED = retention.policy(firehose_days=1.0 / DAY_S)


def like(n: int) -> EngagementRecorded:
    return EngagementRecorded(
        id=f"like-{n:08d}",
        key="did:plc:author1",
        ts=1_700_000_000_000_000 + n,
        source="test",
        kind="like",
        post="at://did:plc:author1/app.bsky.feed.post/1",
        post_author="did:plc:author1",
        actor=f"did:plc:fan{n}",
        delta=1,
    )


@pytest.fixture(params=["sqlite", "jetstream"])
async def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenLog]:
    """A factory that opens the same log again each call, as a restarted process would."""
    opened: list[EventLog] = []
    if request.param == "sqlite":

        async def open_sqlite(policy: RetentionPolicy | None = None) -> EventLog:
            log = SqliteEventLog(
                tmp_path / "log.db", segment_size=100, retention=policy, retention_interval_s=0
            )
            opened.append(log)
            return log

        yield open_sqlite
    else:
        require_service("NATS", "127.0.0.1", 4222)
        from hubbub.eventlog.jetstream import JetStreamEventLog, delete_streams

        prefix = unique_name("test")

        async def open_jetstream(policy: RetentionPolicy | None = None) -> EventLog:
            log = await JetStreamEventLog.connect(
                NATS_URL, stream_prefix=prefix, events_per_message=100, retention=policy
            )
            opened.append(log)
            return log

        yield open_jetstream
        await delete_streams(NATS_URL, prefix)
    for log in opened:
        await log.close()


async def test_appended_events_are_read_back_in_order_with_dense_positions(
    open_log: OpenLog,
) -> None:
    log = await open_log()
    posts = [post(n) for n in range(250)]
    result = await log.append(posts)
    assert (result.appended, result.duplicates) == (250, 0)
    records = await log.read(POSTS, 1, limit=1000)
    assert [r.position for r in records] == list(range(1, 251))
    assert [r.event for r in records] == posts
    assert all(r.topic == POSTS for r in records)


async def test_each_event_goes_to_the_topic_of_its_type(open_log: OpenLog) -> None:
    log = await open_log()
    rejected = InputRejected(
        id="bad-1", key="x", ts=1, source="test", raw=b"\xff{", reason="invalid UTF-8"
    )
    await log.append([post(1), like(1), rejected, like(2)])
    assert [r.event for r in await log.read(ENGAGEMENT)] == [like(1), like(2)]
    assert [r.event for r in await log.read(DEADLETTER)] == [rejected]
    assert [r.event for r in await log.read(POSTS)] == [post(1)]


async def test_append_skips_ids_already_in_the_batch_or_the_log(open_log: OpenLog) -> None:
    log = await open_log()
    first = await log.append([post(1), post(2), post(1)])
    again = await log.append([post(2), post(3)])
    assert (first.appended, first.duplicates) == (2, 1)
    assert (again.appended, again.duplicates) == (1, 1)
    assert [r.event.id for r in await log.read(POSTS)] == [
        "post-00000001",
        "post-00000002",
        "post-00000003",
    ]


async def test_duplicates_are_recognised_after_a_restart(open_log: OpenLog) -> None:
    log = await open_log()
    await log.append([post(n) for n in range(10)])
    await log.close()
    reopened = await open_log()
    result = await reopened.append([post(n) for n in range(5, 15)])
    assert (result.appended, result.duplicates) == (5, 5)
    assert [r.position for r in await reopened.read(POSTS)] == list(range(1, 16))


async def test_read_replays_from_any_position(open_log: OpenLog) -> None:
    log = await open_log()
    await log.append([post(n) for n in range(1000)])
    records = await log.read(POSTS, 437, limit=10)
    assert [r.position for r in records] == list(range(437, 447))
    assert records[0].event == post(436)
    assert await log.read(POSTS, 1001) == []
    assert await log.read("engagement") == []


async def test_a_consumer_group_resumes_after_its_committed_position(open_log: OpenLog) -> None:
    log = await open_log()
    await log.append([post(n) for n in range(30)])
    first = await log.fetch("reports", POSTS, limit=10)
    second = await log.fetch("reports", POSTS, limit=10)
    assert [r.position for r in first + second] == list(range(1, 21))
    await log.commit("reports", POSTS, 15)
    await log.close()

    restarted = await open_log()
    assert await restarted.committed("reports", POSTS) == 15
    resumed = await restarted.fetch("reports", POSTS, limit=100)
    assert [r.position for r in resumed] == list(range(16, 31))
    assert await restarted.fetch("other-group", POSTS, limit=3) == await restarted.read(POSTS, 1, 3)


async def test_fetch_waits_for_new_events(open_log: OpenLog) -> None:
    log = await open_log()

    async def append_later() -> None:
        await asyncio.sleep(0.2)
        await log.append([post(7)])

    task = asyncio.create_task(append_later())
    records = await log.fetch("live", POSTS, limit=10, wait=5.0)
    await task
    assert [r.event for r in records] == [post(7)]
    assert await log.fetch("live", POSTS, limit=10, wait=0.1) == []


async def test_a_waiting_fetch_stops_when_cancelled_even_as_events_arrive(
    open_log: OpenLog,
) -> None:
    """A consumer is stopped by cancelling its fetch. When an append wakes the fetch at
    the instant it is cancelled, the cancellation must still win: a fetch that swallowed
    it went on waiting, and the process it ran in never finished closing."""
    log = await open_log()
    for n in range(20):
        fetching = asyncio.create_task(log.fetch("stopping", POSTS, limit=10, wait=5.0))
        await asyncio.sleep(0.03)  # parked, waiting for events
        await log.append([post(n)])
        cancelled = fetching.cancel()  # the same instant the append woke it
        async with asyncio.timeout(10):
            (outcome,) = await asyncio.gather(fetching, return_exceptions=True)
        if cancelled:
            assert isinstance(outcome, asyncio.CancelledError), f"round {n}: {outcome!r}"


async def test_stats_show_counts_positions_and_lag(open_log: OpenLog) -> None:
    log = await open_log()
    await log.append([post(n) for n in range(12)] + [like(n) for n in range(3)])
    await log.commit("reports", POSTS, 5)
    stats = await log.stats()
    counts = {t.topic: (t.count, t.last_position) for t in stats.topics}
    assert counts[POSTS] == (12, 12)
    assert counts[ENGAGEMENT] == (3, 3)
    groups = {(g.group, g.topic): (g.position, g.lag) for g in stats.groups}
    assert groups[("reports", POSTS)] == (5, 7)


async def test_large_batches_keep_every_event(open_log: OpenLog) -> None:
    log = await open_log()
    events: list[Event] = [post(n, text="x" * 200) for n in range(5000)]
    result = await log.append(events)
    assert result.appended == 5000
    collected = []
    position = 1
    while batch := await log.read(POSTS, position, limit=777):
        collected.extend(batch)
        position = batch[-1].position + 1
    assert [r.event for r in collected] == events


def rejected(n: int) -> InputRejected:
    return InputRejected(id=f"bad-{n}", key="x", ts=n, source="test", raw=b"{", reason="cut")


def follower(n: int, page: str = "did:plc:page") -> FollowersChanged:
    return FollowersChanged(
        id=f"follow-{n:08d}", key=page, ts=n, source="test", page=page, follower=f"f{n}", delta=1
    )


async def kept(log: EventLog, topic: str, expected: list[int], within: float = 10.0) -> None:
    """Wait until reading `topic` from the start gives exactly these positions.

    The server (JetStream) or the next retention pass (SQLite) removes expired events
    a little after they expire."""
    deadline = time.monotonic() + within
    while (positions := [r.position for r in await log.read(topic, 1)]) != expected:
        assert time.monotonic() < deadline, f"{topic} kept {positions}, not {expected}"
        await asyncio.sleep(0.1)


def expired_reads(topic: str) -> float:
    value = REGISTRY.get_sample_value("hubbub_eventlog_position_expired_total", {"topic": topic})
    return value or 0.0


async def expire_first_posts(log: EventLog, count: int) -> None:
    """Append `count` posts and wait until retention removed them, appending to an
    unexpiring topic meanwhile (an append is what runs the SQLite log's retention)."""
    await log.append([post(n) for n in range(count)])
    await asyncio.sleep(1.2)
    await log.append([rejected(1)])
    await kept(log, POSTS, [])


async def test_a_reader_behind_retention_gets_an_error_not_a_gap(open_log: OpenLog) -> None:
    log = await open_log(SHORT_LIVED)
    await log.commit("slow", POSTS, 10)
    await expire_first_posts(log, 50)
    await log.append([post(n) for n in range(50, 60)])
    await kept(log, POSTS, list(range(51, 61)))
    before = expired_reads(POSTS)

    with pytest.raises(PositionExpired) as error:
        await log.read(POSTS, 20)
    assert (error.value.position, error.value.first_kept) == (20, 51)
    assert "fell behind" in str(error.value)
    with pytest.raises(PositionExpired):
        await log.fetch("slow", POSTS, limit=100)
    assert expired_reads(POSTS) == before + 2

    fresh = await log.fetch("new-group", POSTS, limit=100)
    assert [r.event for r in fresh] == [post(n) for n in range(50, 60)]


async def test_positions_go_on_after_retention_empties_a_topic(open_log: OpenLog) -> None:
    log = await open_log(SHORT_LIVED)
    await expire_first_posts(log, 10)
    await log.close()

    restarted = await open_log(SHORT_LIVED)
    await restarted.append([post(n) for n in range(10, 15)])
    records = await restarted.read(POSTS, 1)
    assert [r.position for r in records] == list(range(11, 16))
    assert [r.event for r in records] == [post(n) for n in range(10, 15)]
    with pytest.raises(PositionExpired):
        await restarted.read(POSTS, 5)


async def test_pages_and_other_topics_are_not_expired_with_the_firehose(
    open_log: OpenLog,
) -> None:
    log = await open_log(SHORT_LIVED)
    pages: list[Event] = [follower(n) for n in range(30)]
    await log.append(pages)
    await expire_first_posts(log, 10)
    assert [r.event for r in await log.read(PAGES, 1)] == pages
    assert [r.event for r in await log.read(DEADLETTER, 1)] == [rejected(1)]


def setting(n: int, name: str, value: str) -> SettingChanged:
    return SettingChanged(id=f"set-{n}", key=name, ts=n, source="test", name=name, value=value)


def flag(n: int, name: str, enabled: bool) -> FlagChanged:
    # Flags of one scope share the envelope's key: compaction must tell them apart.
    return FlagChanged(
        id=f"flag-{n}", key="platform", ts=n, source="test", scope="platform", flag=name,
        enabled=enabled,
    )  # fmt: skip


async def test_control_keeps_the_latest_event_of_each_key(open_log: OpenLog) -> None:
    log = await open_log()
    changes: list[Event] = [
        setting(1, "mentions.serving", "memory"),
        flag(2, "route.reports", True),
        flag(3, "reports.csv", True),
        setting(4, "mentions.serving", "postgres"),
        flag(5, "route.reports", False),
        setting(6, "log.level", "debug"),
    ]
    for change in changes:  # one append each, as operators make them
        await log.append([change])
    await kept(log, CONTROL, [3, 4, 5, 6])
    live: list[Record] = await log.read(CONTROL, 1)
    assert [r.event for r in live] == [changes[2], changes[3], changes[4], changes[5]]
    assert [r.event for r in await log.read(CONTROL, 2)] == changes[2:3] + changes[3:]

    await log.append([setting(7, "log.level", "info")])
    await kept(log, CONTROL, [3, 4, 5, 7])
    stats = {t.topic: (t.count, t.last_position) for t in (await log.stats()).topics}
    assert stats[CONTROL] == (4, 7)


def person(n: int, tenant: str, user: str, role: str) -> PersonChanged:
    # People of one tenant share the envelope's key: compaction tells them apart.
    return PersonChanged(
        id=f"person-{n}", key=tenant, ts=n, source="test", tenant=tenant, user=user,
        email=f"{user}@{tenant}.test", role=role,
    )  # fmt: skip


async def test_control_keeps_each_persons_latest_entry(open_log: OpenLog) -> None:
    log = await open_log()
    changes: list[Event] = [
        person(1, "acme", "ann", "editor"),
        person(2, "acme", "bob", "viewer"),
        person(3, "globex", "ann", "owner"),  # another tenant's ann
        person(4, "acme", "ann", "admin"),
    ]
    for change in changes:
        await log.append([change])
    await kept(log, CONTROL, [2, 3, 4])
    live = [r.event for r in await log.read(CONTROL, 1)]
    assert live == [changes[1], changes[2], changes[3]]
