"""Changes to pages show in suggestions within 2 s while ingest runs at 10,000 events/s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from hubbub.bootstrap import build_platform
from hubbub.kernel.events import Event, FollowersChanged, PageDeactivated, PageSeen
from hubbub.mentions.service import MentionsReplica
from hubbub.settings import Settings
from hubbub.synthetic.firehose import FirehoseSpec, generate_firehose

RATE = 10_000
PROBE = "did:plc:freshprobe"


def probe(n: int, **fields: object) -> Event:
    kind = fields.pop("kind", PageSeen)
    return kind(id=f"probe-{n}", key=PROBE, ts=n, source="jetstream", page=PROBE, **fields)  # type: ignore[operator, no-any-return]


async def visible_within(
    replica: MentionsReplica, check: Callable[[list[tuple[str, int]]], bool], query: str
) -> float:
    started = time.monotonic()
    while True:
        _, found = await replica.suggest(query)
        if check([(page.handle or "", page.followers) for page in found]):
            return time.monotonic() - started
        await asyncio.sleep(0.01)
        if time.monotonic() - started > 5:
            raise AssertionError(f"not visible after 5 s: {query}")


async def test_changes_are_suggested_within_two_seconds_at_10k_events_per_second(
    tmp_path: Path,
) -> None:
    platform = await build_platform(Settings(data_dir=tmp_path))
    replica = await platform.mentions()
    ingestor = await platform.ingestor("jetstream")
    stop = asyncio.Event()
    sent = 0

    spec = FirehoseSpec(events=RATE * 30, pages=200_000, rate_per_s=RATE, seed=3)
    lines = list(generate_firehose(spec))  # made before, so making them costs no ingest time

    async def firehose() -> None:
        nonlocal sent
        started = time.monotonic()
        while not stop.is_set() and sent < len(lines):
            await ingestor.submit(lines[sent : sent + RATE // 20])
            sent += RATE // 20
            await asyncio.sleep(max(0.0, started + sent / RATE - time.monotonic()))

    async def after(events: list[Event], check: Awaitable[float]) -> float:
        await platform.event_log.append(events)
        return await check

    feeding = asyncio.create_task(firehose())
    try:
        await asyncio.sleep(1.0)  # the firehose is flowing
        started, sent_before = time.monotonic(), sent
        delays = {
            "new page": await after(
                [probe(1, handle="freshprobe.example", display_name="Fresh Probe")],
                visible_within(replica, lambda f: ("freshprobe.example", 0) in f, "freshpr"),
            ),
            "followers": await after(
                [probe(2, kind=FollowersChanged, follower="did:plc:fan", delta=7)],
                visible_within(replica, lambda f: ("freshprobe.example", 7) in f, "freshpr"),
            ),
            "rename": await after(
                [probe(3, handle="renamedprobe.example")],
                visible_within(replica, lambda f: ("renamedprobe.example", 7) in f, "renamedpr"),
            ),
            "removal": await after(
                [probe(4, kind=PageDeactivated, status="deactivated")],
                visible_within(replica, lambda f: f == [], "renamedpr"),
            ),
        }
        rate = (sent - sent_before) / (time.monotonic() - started)
    finally:
        stop.set()
        await feeding
        await platform.close()
    assert rate > RATE * 0.9, f"the firehose ran at {rate:.0f} events/s"
    assert max(delays.values()) < 2.0, delays
    print(f"at {rate:,.0f} events/s, visible after (s): {delays}")
