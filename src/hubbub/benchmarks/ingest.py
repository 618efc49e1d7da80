"""The ingest benchmark: a real-mix synthetic stream through the full ingest path.

Measures decode, validate, map, dedupe and append (refs included) from a JSONL file to
the event log, the way `hubbub ingest replay` runs. Generation is not timed. A baseline
measured in the same run (decoding the same lines with msgspec into plain dicts) lets
figures from a noisy machine be compared: `vs_baseline` is events_per_s over it.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec

from hubbub.bootstrap import build_platform
from hubbub.ingest.connectors.jsonl import read_batches, replay_file
from hubbub.settings import Settings
from hubbub.synthetic.firehose import FirehoseSpec, write_firehose


def baseline_decode_rate(path: Path) -> float:
    """Lines per second for a bare msgspec decode (to dicts): the machine's yardstick.

    Read in batches like the replay, so the yardstick does not set the peak memory.
    """
    decoder = msgspec.json.Decoder()
    lines = seconds = 0.0
    for batch, _ in read_batches(path, 20_000):
        started = time.perf_counter()
        for line in batch:
            decoder.decode(line)
        seconds += time.perf_counter() - started
        lines += len(batch)
    return lines / seconds


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


async def one_run(path: Path, settings: Settings) -> dict[str, float]:
    platform = await build_platform(settings)
    try:
        ingestor = await platform.ingestor("jetstream")
        cpu, wall = _cpu_seconds(), time.perf_counter()
        summary = await replay_file(ingestor, path, batch_size=settings.batch_size)
        wall = time.perf_counter() - wall
    finally:
        await platform.close()  # joins the workers, so their CPU time is counted
    cpu = _cpu_seconds() - cpu
    return {
        "events": summary.total,
        "seconds": wall,
        "events_per_s": summary.total / wall,
        "cpu_s_per_million": cpu / summary.total * 1e6,
        "accepted": summary.accepted,
        "skipped": summary.skipped,
        "rejected": summary.rejected,
        "duplicates": summary.duplicates,
    }


async def _cleanup(settings: Settings) -> None:
    if settings.event_log == "jetstream":
        from hubbub.eventlog.jetstream import delete_streams

        await delete_streams(settings.nats_url.get_secret_value(), settings.stream_prefix)


def _peak_rss_mb() -> float:
    """The largest resident set of this process or of any one worker process."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, workers) / 1024, 1)


def run_ingest_benchmark(
    *,
    events: int,
    pages: int,
    log: str,
    runs: int,
    batch_size: int,
    workers: int,
    base: Settings,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-") as scratch:
        root = Path(scratch)
        stream = root / "firehose.jsonl"
        write_firehose(FirehoseSpec(events=events, pages=pages, seed=42), stream)
        baseline = baseline_decode_rate(stream)
        results = []
        for run in range(runs):
            settings = base.model_copy(
                update={
                    "data_dir": root / f"run{run}",
                    "event_log": log,
                    "batch_size": batch_size,
                    "ingest_workers": workers,
                    "stream_prefix": f"bench_{uuid.uuid4().hex[:10]}",
                }
            )
            try:
                results.append(asyncio.run(one_run(stream, settings)))
            finally:
                asyncio.run(_cleanup(settings))
    rates = [r["events_per_s"] for r in results]
    median_rate = statistics.median(rates)
    last = results[-1]
    return {
        "benchmark": "ingest",
        "log": log,
        "events": events,
        "pages": pages,
        "batch_size": batch_size,
        "workers": workers,
        "runs": runs,
        "events_per_s": round(median_rate),
        "events_per_s_runs": [round(r) for r in rates],
        "cpu_s_per_million": round(statistics.median(r["cpu_s_per_million"] for r in results), 2),
        "peak_rss_mb": _peak_rss_mb(),
        "baseline_decode_events_per_s": round(baseline),
        "vs_baseline": round(median_rate / baseline, 3),
        "outcomes": {k: int(last[k]) for k in ("accepted", "skipped", "rejected", "duplicates")},
    }
