"""What the JetStream event log does beyond the shared contract: races, restarts, search,
and the check of each stream's configuration at start."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from hubbub.eventlog import retention
from hubbub.eventlog.jetstream import JetStreamEventLog, delete_streams
from hubbub.eventlog.ports import LogMisconfigured, LogUnavailable
from hubbub.eventlog.retention import DAY_S
from hubbub.kernel.events import CONTROL, POSTS, Event, SettingChanged
from tests.conftest import NATS_URL, post, require_service, unique_name

pytestmark = pytest.mark.services

Open = Callable[..., Awaitable[JetStreamEventLog]]


@pytest.fixture
def prefix() -> str:
    return unique_name("itest")


@pytest.fixture
async def open_log(prefix: str) -> AsyncIterator[Open]:
    """Opens logs on one fresh prefix; every log opened is closed and the streams deleted."""
    require_service("NATS", "127.0.0.1", 4222)
    opened: list[JetStreamEventLog] = []

    async def open_jetstream(**options: Any) -> JetStreamEventLog:
        options.setdefault("events_per_message", 10)
        log = await JetStreamEventLog.connect(NATS_URL, stream_prefix=prefix, **options)
        opened.append(log)
        return log

    yield open_jetstream
    for log in opened:
        await log.close()
    await delete_streams(NATS_URL, prefix)


async def test_racing_writers_keep_positions_dense_and_events_unique(open_log: Open) -> None:
    first, second = await open_log(), await open_log()
    await first.append([post(0)])
    await second.append([post(1)])
    batches = [[post(n) for n in range(start, start + 30)] for start in range(2, 302, 30)]
    results = await asyncio.gather(
        *(log.append(batch) for log in (first, second) for batch in batches)
    )
    assert sum(r.appended for r in results) == 300
    assert sum(r.duplicates for r in results) == 300
    records = await first.read(POSTS, 1, limit=1000)
    assert [r.position for r in records] == list(range(1, 303))
    assert sorted(r.event.id for r in records) == sorted(post(n).id for n in range(302))


async def test_retrying_a_batch_from_another_process_writes_nothing(open_log: Open) -> None:
    batch = [post(n) for n in range(25)]
    first = await open_log()
    await first.append(batch)
    second = await open_log()
    result = await second.append(batch)
    assert (result.appended, result.duplicates) == (0, 25)


async def test_ids_older_than_the_window_are_forgotten_after_a_restart(open_log: Open) -> None:
    log = await open_log(dedupe_window=20)
    await log.append([post(n) for n in range(50)])
    await log.close()
    reopened = await open_log(dedupe_window=20)
    recent = await reopened.append([post(n) for n in range(30, 50)])
    assert (recent.appended, recent.duplicates) == (0, 20)


async def test_read_finds_any_position_among_messages_of_mixed_sizes(open_log: Open) -> None:
    log = await open_log()
    events: list[Event] = [post(n) for n in range(700)]
    start = 0
    for size in [1, 3, 17, 40, 2, 9, 100, 5, 33] * 4:
        await log.append(events[start : start + size])
        start += size
    await log.append(events[start:])
    reader = await open_log()
    for position in [1, 2, 4, 5, 21, 61, 62, 99, 250, 333, 500, 699, 700]:
        records = await reader.read(POSTS, position, limit=7)
        expected = list(range(position, min(position + 7, 701)))
        assert [r.position for r in records] == expected
        assert [r.event for r in records] == events[position - 1 : position - 1 + len(expected)]
    assert await reader.read(POSTS, 701) == []


async def test_fetch_fills_its_limit_across_small_messages(open_log: Open) -> None:
    log = await open_log()
    for start in range(0, 60, 3):
        await log.append([post(n) for n in range(start, start + 3)])
    records = await log.fetch("g", POSTS, limit=50)
    assert [r.position for r in records] == list(range(1, 51))


async def test_a_group_that_committed_everything_resumes_on_its_consumer(open_log: Open) -> None:
    log = await open_log()
    await log.append([post(n) for n in range(40)])
    fetched = await log.fetch("g", POSTS, limit=20)
    await log.commit("g", POSTS, fetched[-1].position)
    await log.close()
    restarted = await open_log()
    await restarted.append([post(n) for n in range(40, 45)])
    resumed = await restarted.fetch("g", POSTS, limit=100)
    assert [r.position for r in resumed] == list(range(21, 46))


async def test_group_names_need_not_be_valid_nats_names(open_log: Open) -> None:
    log = await open_log()
    await log.append([post(n) for n in range(5)])
    records = await log.fetch("reports: weekly.*", POSTS, limit=2)
    await log.commit("reports: weekly.*", POSTS, records[-1].position)
    assert await log.committed("reports: weekly.*", POSTS) == 2
    stats = await log.stats()
    assert [(g.group, g.position, g.lag) for g in stats.groups] == [("reports: weekly.*", 2, 3)]


async def test_events_too_big_for_one_message_are_split(open_log: Open) -> None:
    log = await open_log(events_per_message=1000)
    events: list[Event] = [post(n, text="x" * 20_000) for n in range(200)]
    assert (await log.append(events)).appended == 200
    assert [r.event for r in await log.read(POSTS, 1, limit=500)] == events


async def test_an_unreachable_server_raises_log_unavailable_naming_it() -> None:
    started = time.monotonic()
    with pytest.raises(LogUnavailable, match=re.escape("nats://127.0.0.1:1 ")):
        await JetStreamEventLog.connect("nats://127.0.0.1:1", timeout=1.0)
    assert time.monotonic() - started < 3


async def test_append_names_every_skipped_id_in_batch_order(open_log: Open) -> None:
    log = await open_log()
    await log.append([post(1), post(2)])
    result = await log.append([post(3), post(2), post(3), post(4), post(1)])
    assert (result.appended, result.duplicates) == (2, 3)
    assert result.duplicate_ids == [post(2).id, post(3).id, post(1).id]


async def test_a_redelivered_message_older_than_the_window_is_a_duplicate(open_log: Open) -> None:
    log = await open_log(dedupe_window=10)
    batch = [post(n) for n in range(10)]
    await log.append(batch)
    await log.append([post(n) for n in range(10, 40)])
    result = await log.append(batch)
    assert (result.appended, result.duplicates) == (0, 10)
    assert (await log.stats()).topics[0].last_position == 40


async def test_a_group_survives_its_consumer_being_deleted(open_log: Open) -> None:
    log = await open_log(timeout=1.0)
    await log.append([post(n) for n in range(30)])
    first = await log.fetch("g", POSTS, limit=15)
    await delete_consumer(log, "g")
    with pytest.raises(LogUnavailable):
        await log.fetch("g", POSTS, limit=100)
    resumed = await log.fetch("g", POSTS, limit=100)
    assert [r.position for r in first + resumed] == list(range(1, 31))


async def delete_consumer(log: JetStreamEventLog, consumer: str) -> None:
    """Delete a consumer behind the log's back, as an operator might."""
    stream = log._stream(POSTS)
    await log._js.delete_consumer(stream, consumer)


@pytest.fixture
async def js() -> AsyncIterator[JetStreamContext]:
    """A plain JetStream client, for what an operator (or an old version) did by hand."""
    require_service("NATS", "127.0.0.1", 4222)
    nc = await nats.connect(NATS_URL)
    yield nc.jetstream()
    await nc.close()


async def test_a_stream_kept_in_memory_stops_the_start(
    open_log: Open, prefix: str, js: JetStreamContext
) -> None:
    await js.add_stream(
        StreamConfig(
            name=f"{prefix}_posts", subjects=[f"{prefix}.posts"], storage=StorageType.MEMORY
        )
    )
    with pytest.raises(
        LogMisconfigured, match=f"stream {prefix}_posts keeps its messages in memory"
    ):
        await open_log()


async def test_a_stream_with_a_shorter_life_is_updated_to_the_settings(
    open_log: Open, prefix: str, js: JetStreamContext
) -> None:
    stream = f"{prefix}_posts"
    await js.add_stream(
        StreamConfig(
            name=stream, subjects=[f"{prefix}.posts"], storage=StorageType.FILE, max_age=60.0,
            max_msgs=1000, duplicate_window=60.0,
        )
    )  # fmt: skip
    await open_log(retention=retention.policy(firehose_days=30))
    config = (await js.stream_info(stream)).config
    assert (config.max_age, config.max_msgs, config.num_replicas) == (30 * DAY_S, -1, 1)


async def test_replicas_a_single_server_cannot_hold_stop_the_start_with_the_reason(
    open_log: Open, prefix: str, js: JetStreamContext
) -> None:
    await js.add_stream(
        StreamConfig(name=f"{prefix}_posts", subjects=[f"{prefix}.posts"], storage=StorageType.FILE)
    )
    with pytest.raises(
        LogMisconfigured, match=r"has 1 copy\(ies\) where HUBBUB_NATS_REPLICAS asks 3"
    ):
        await open_log(replicas=3)


async def test_a_control_stream_of_packed_events_is_not_compacted_away(
    open_log: Open, prefix: str, js: JetStreamContext
) -> None:
    await js.add_stream(
        StreamConfig(
            name=f"{prefix}_control", subjects=[f"{prefix}.control"], storage=StorageType.FILE
        )
    )
    await js.publish(f"{prefix}.control", b"packed control events")
    with pytest.raises(LogMisconfigured, match="compacting it would keep only the last message"):
        await open_log()
    assert (await js.stream_info(f"{prefix}_control")).state.messages == 1


async def test_control_events_of_one_key_replace_each_other_on_the_server(
    open_log: Open, prefix: str, js: JetStreamContext
) -> None:
    log = await open_log()
    for n, value in enumerate(["a", "b", "c"]):
        await log.append(
            [SettingChanged(id=f"s{n}", key="k", ts=n, source="t", name="log.level", value=value)]
        )
    info = await js.stream_info(f"{prefix}_control")
    assert (info.state.messages, info.config.max_msgs_per_subject) == (1, 1)
    assert [r.event.value for r in await log.read(CONTROL)] == ["c"]  # type: ignore[attr-defined]


async def test_replicas_asked_of_a_single_server_stop_the_start_of_a_new_log(
    open_log: Open,
) -> None:
    with pytest.raises(LogMisconfigured, match="HUBBUB_NATS_REPLICAS"):
        await open_log(replicas=3)
