"""The ingest service through bootstrap, on embedded adapters: what a user would see."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub.bootstrap import Platform, build_platform
from hubbub.eventlog.ports import AppendResult, EventLog, LogUnavailable
from hubbub.ingest.service import Ingestor
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import DEADLETTER, ENGAGEMENT, Event, InputRejected
from hubbub.settings import Settings


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    built = await build_platform(Settings(data_dir=tmp_path, max_event_bytes=16_384), FixedClock())
    yield built
    await built.close()


async def dead_letters(platform: Platform) -> list[InputRejected]:
    records = await platform.event_log.read(DEADLETTER, 1, 10_000)
    return [r.event for r in records if isinstance(r.event, InputRejected)]


LIKE = (
    b'{"did":"did:plc:a","time_us":1,"kind":"commit","commit":{"rev":"3a","operation":'
    b'"create","collection":"app.bsky.feed.like","rkey":"3r","record":{"$type":"app.bsky.feed.like","subject":'
    b'{"uri":"at://did:plc:b/app.bsky.feed.post/3p","cid":"c"},"createdAt":"%s"}}}'
)

BAD_INPUT = {
    "malformed JSON": b'{"did": "did:plc:a", "time_us": ',
    "invalid UTF-8": b'{"did": "did:plc:\xc3\x28", "time_us": 1, "kind": "identity"}',
    "wrong type": b'{"did": "did:plc:a", "time_us": "soon", "kind": "commit"}',
    "missing field": b'{"time_us": 1, "kind": "commit"}',
    "oversized": b'{"did": "did:plc:a", "pad": "' + b"x" * 20_000 + b'"}',
    "pathological nesting": b'{"did": "did:plc:a", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    "invalid value": LIKE % b"not a date",
}


async def test_every_kind_of_bad_input_is_dead_lettered_with_its_reason(
    platform: Platform,
) -> None:
    ingestor = await platform.ingestor("jetstream")
    summary = await ingestor.ingest([*list(BAD_INPUT.values()), LIKE % b"2026-07-04T14:38:08Z"])
    assert (summary.accepted, summary.rejected) == (1, len(BAD_INPUT))
    letters = await dead_letters(platform)
    assert [letter.reason.split(":")[0] for letter in letters] == [
        "malformed JSON",
        "invalid UTF-8",
        "wrong type",
        "missing field",
        "oversized",
        "pathological nesting",
        "invalid value",
    ]
    for letter, raw in zip(letters, BAD_INPUT.values(), strict=True):
        assert letter.source == "jetstream"
        assert letter.trace.startswith("00-")
        if b"pad" not in raw:
            assert letter.raw == raw
    assert "max_event_bytes" in letters[4].reason
    assert len(letters[4].raw) < len(BAD_INPUT["oversized"])
    assert "createdAt" in letters[6].reason


async def test_a_redelivered_event_is_appended_once(
    platform: Platform, jetstream_lines: list[bytes]
) -> None:
    ingestor = await platform.ingestor("jetstream")
    first = await ingestor.ingest(jetstream_lines)
    overlap = await ingestor.ingest(jetstream_lines[100:] + jetstream_lines[:10])
    assert first.duplicates == 0
    assert overlap.accepted == 0
    assert overlap.duplicates + overlap.skipped == 62
    engagement = await platform.event_log.read(ENGAGEMENT, 1, 10_000)
    assert len(engagement) == 128


async def test_counts_add_up_to_the_lines_sent(
    platform: Platform, jetstream_lines: list[bytes]
) -> None:
    ingestor = await platform.ingestor("jetstream")
    lines = jetstream_lines + list(BAD_INPUT.values())
    summary = await ingestor.ingest(lines)
    assert summary.total == len(lines)
    assert summary.skipped_reasons["collection not used"] == 3


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(
                        st.sampled_from(
                            [
                                "did",
                                "time_us",
                                "kind",
                                "commit",
                                "record",
                                "operation",
                                "collection",
                                "rkey",
                                "rev",
                                "identity",
                                "account",
                                "x",
                            ]
                        ),
                        inner,
                        max_size=6,
                    )
                ),
                max_leaves=20,
            ).map(lambda value: json.dumps(value).encode()),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_no_input_crashes_the_pipeline(tmp_path: Path, lines: list[bytes]) -> None:
    async def scenario() -> None:
        built = await build_platform(Settings(data_dir=tmp_path / "fuzz"), FixedClock())
        try:
            summary = await (await built.ingestor("jetstream")).ingest(lines)
            assert summary.total == len(lines)
            mastodon = await (await built.ingestor("mastodon")).ingest(lines)
            assert mastodon.total == len(lines)
        finally:
            await built.close()

    asyncio.run(scenario())


class SlowLog:
    """The real SQLite log behind a slow disk: every append takes 50 ms longer."""

    def __init__(self, inner: EventLog) -> None:
        self.inner = inner

    async def append(self, events: Sequence[Event]) -> AppendResult:
        await asyncio.sleep(0.05)
        return await self.inner.append(events)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_a_slow_log_slows_the_source_down_and_nothing_is_dropped(
    platform: Platform, jetstream_lines: list[bytes]
) -> None:
    slow: EventLog = SlowLog(platform.event_log)  # type: ignore[assignment]
    mapping = (await platform.ingestor("jetstream")).mapping
    ingestor = Ingestor(mapping, slow, platform.ingest_state, FixedClock(), queue_batches=2)
    batches = [jetstream_lines[i : i + 8] for i in range(0, len(jetstream_lines), 8)]
    async with ingestor:
        loop = asyncio.get_running_loop()
        started = loop.time()
        futures = [await ingestor.submit(batch) for batch in batches]
        submitting = loop.time() - started
        summaries = await asyncio.gather(*futures)
    # 19 batches, at most ~4 in flight: the source waited for most of the appends.
    assert submitting >= 0.05 * (len(batches) - 5)
    assert sum(s.total for s in summaries) == len(jetstream_lines)
    assert len(await platform.event_log.read(ENGAGEMENT, 1, 10_000)) == 128


async def test_a_line_sent_twice_in_one_batch_is_one_event_and_one_duplicate(
    platform: Platform, jetstream_lines: list[bytes]
) -> None:
    ingestor = await platform.ingestor("jetstream")
    like = jetstream_lines[0]
    summary = await ingestor.ingest([like, like])
    assert (summary.accepted, summary.duplicates) == (1, 1)
    assert len(await platform.event_log.read(ENGAGEMENT)) == 1


class FailingOnceLog(SlowLog):
    """The real log, except that its first append fails as a lost connection would."""

    failed = False

    async def append(self, events: Sequence[Event]) -> AppendResult:
        if not self.failed:
            self.failed = True
            raise LogUnavailable("connection lost")
        return await self.inner.append(events)


UNLIKE = (
    b'{"did":"did:plc:a","time_us":2,"kind":"commit","commit":{"rev":"3b","operation":'
    b'"delete","collection":"app.bsky.feed.like","rkey":"3r"}}'
)


async def test_a_delete_whose_batch_failed_is_undone_when_the_batch_is_sent_again(
    platform: Platform,
) -> None:
    mapping = (await platform.ingestor("jetstream")).mapping
    await (await platform.ingestor("jetstream")).ingest([LIKE % b"2026-07-04T14:38:08Z"])
    flaky: EventLog = FailingOnceLog(platform.event_log)  # type: ignore[assignment]
    async with Ingestor(mapping, flaky, platform.ingest_state, FixedClock()) as ingestor:
        with pytest.raises(LogUnavailable):
            await ingestor.ingest([UNLIKE])
        again = await ingestor.ingest([UNLIKE])
    assert again.accepted == 1
    deltas = [r.event.delta for r in await platform.event_log.read(ENGAGEMENT)]
    assert deltas == [1, -1]


async def test_a_caller_that_gives_up_does_not_stop_the_pipeline(
    platform: Platform, jetstream_lines: list[bytes]
) -> None:
    ingestor = await platform.ingestor("jetstream")
    abandoned = await ingestor.submit(jetstream_lines[:50])
    abandoned.cancel()
    summary = await ingestor.ingest(jetstream_lines[50:])
    assert summary.total == len(jetstream_lines) - 50
