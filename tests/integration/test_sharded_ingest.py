"""Ingest sharded over worker processes gives the log a single process would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from hubbub.bootstrap import build_platform, ingest_worker_main
from hubbub.eventlog.ports import LogStats
from hubbub.ingest.service import IngestSummary
from hubbub.ingest.worker import ShardedIngestor, WorkerFailed, shard_of
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import ENGAGEMENT, EngagementRecorded
from hubbub.settings import Settings
from hubbub.synthetic.firehose import FirehoseSpec, generate_firehose


async def ingest(settings: Settings, batches: list[list[bytes]]) -> tuple[IngestSummary, LogStats]:
    platform = await build_platform(settings)
    try:
        ingestor = await platform.ingestor("jetstream")
        futures = [await ingestor.submit(batch) for batch in batches]
        total = IngestSummary()
        for summary in await asyncio.gather(*futures):
            total.add(summary)
        return total, await platform.event_log.stats()
    finally:
        await platform.close()


def batches_timed() -> float:
    count = REGISTRY.get_sample_value("hubbub_ingest_batch_seconds_count", {"source": "jetstream"})
    return count or 0.0


def batches_of(lines: list[bytes], size: int) -> list[list[bytes]]:
    return [lines[i : i + size] for i in range(0, len(lines), size)]


async def test_two_workers_write_what_one_process_writes(tmp_path: Path) -> None:
    spec = FirehoseSpec(events=6000, pages=300, seed=7)
    batches = batches_of(list(generate_firehose(spec)), 500)
    single, single_stats = await ingest(Settings(data_dir=tmp_path / "one"), batches)
    timed_before = batches_timed()
    sharded, sharded_stats = await ingest(
        Settings(data_dir=tmp_path / "two", ingest_workers=2), batches
    )
    assert sharded == single
    # The workers' batches show in this process's /metrics.
    assert batches_timed() - timed_before == len(batches)
    assert sharded_stats.topics == single_stats.topics
    # Deletes of likes and follows found the refs their creates left in another batch.
    assert single.skipped_reasons.get("like delete of a record never seen", 0) == 0
    again, _ = await ingest(Settings(data_dir=tmp_path / "two", ingest_workers=2), batches)
    assert again.duplicates == sharded.accepted


async def test_positions_stay_dense_when_workers_append_together(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ingest_workers=2)
    spec = FirehoseSpec(events=3000, pages=100, seed=3)
    await ingest(settings, batches_of(list(generate_firehose(spec)), 200))
    platform = await build_platform(settings)
    try:
        records = await platform.event_log.read(ENGAGEMENT, 1, 100_000)
    finally:
        await platform.close()
    assert [r.position for r in records] == list(range(1, len(records) + 1))
    assert all(isinstance(r.event, EngagementRecorded) for r in records)


def test_an_account_always_maps_to_the_same_worker(jetstream_lines: list[bytes]) -> None:
    for line in jetstream_lines:
        did = line.split(b'"did":"')[1].split(b'"')[0]
        other = b'{"did": "' + did + b'", "time_us": 1, "kind": "identity"}'
        assert shard_of(line, 4) == shard_of(other, 4)
    assert shard_of(b"not json at all", 4) == 0


async def test_a_worker_that_cannot_start_says_why(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, event_log="jetstream", nats_url="nats://127.0.0.1:1", ingest_workers=2
    )
    ingestor = ShardedIngestor(
        settings, "jetstream", workers=2, main=ingest_worker_main, clock=SystemClock()
    )
    with pytest.raises(WorkerFailed, match=r"127\.0\.0\.1:1"):
        await ingestor.start()
