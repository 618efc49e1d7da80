"""The analytics fold at the size of its live batches: how long each batch's write takes.

    python bench/fold_batches.py EVENTS [--batch 5000] [--threads N] [--readers 5] [--rounds 1]

Makes an embedded log of EVENTS synthetic firehose events (10,000 a second over 100,000
accounts; kept in `--dir` for the next run), then folds it into a fresh DuckDB store as
the analytics worker does (`catch_up`), `--batch` records a topic at a time: about what
half a second of a 10,000 events/s firehose holds. `--readers` runs that many top-list
reports a second beside the fold; `--rounds` folds the log again that many times into
the same store (its positions set back), to see whether a batch costs more as the
store grows. Prints one JSON object: records, batches, seconds, and each round's median
and 90th percentile of a batch's write (`apply`) in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hubbub.analytics import service
from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.rollups import Deltas
from hubbub.analytics.service import Window
from hubbub.analytics.worker import catch_up
from hubbub.benchmarks.firehose_log import ingest_firehose
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import SystemClock
from hubbub.settings import Settings
from hubbub.synthetic.firehose import FirehoseSpec

START_US = FirehoseSpec(events=1, pages=1).start_us


class TimedRollups(DuckDBRollups):
    """The store, noting how long each batch's write took."""

    applies: list[float]

    def apply(self, deltas: Deltas, positions: dict[str, int], since: dict[str, int]) -> None:
        started = time.perf_counter()
        super().apply(deltas, positions, since)
        self.applies.append(time.perf_counter() - started)


async def make_log(directory: Path, events: int) -> None:
    """The synthetic firehose, ingested into the embedded log in `directory` (once)."""
    done = directory / "log-made"
    if done.exists() and done.read_text() == str(events):
        return
    shutil.rmtree(directory, ignore_errors=True)
    spec = FirehoseSpec(events=events, pages=100_000, rate_per_s=10_000)
    await (await ingest_firehose(directory, spec)).close()
    done.write_text(str(events))


def start_readers(store: DuckDBRollups, rate: float) -> tuple[threading.Event, list[float]]:
    """Top-list reports over the firehose's two days, `rate` a second, in a thread."""
    stop, times = threading.Event(), []
    day = datetime.fromtimestamp(START_US / 1e6, UTC).replace(hour=0, minute=0, second=0)
    window = Window(day, day + timedelta(days=2))

    def read() -> None:
        kinds = ("hashtags", "mentioned", "engaged")
        while not stop.is_set():
            started = time.perf_counter()
            service.top(store.query, kinds[len(times) % 3], window, 10, 0)  # type: ignore[arg-type]
            times.append(time.perf_counter() - started)
            stop.wait(max(0.0, 1 / rate - (time.perf_counter() - started)))

    threading.Thread(target=read, daemon=True).start()
    return stop, times


def _ms(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    await make_log(args.dir, args.events)
    log = SqliteEventLog(Settings(data_dir=args.dir).log_path)
    path = args.dir / "rollups.duckdb"
    for old in args.dir.glob("rollups*"):
        old.unlink()
    store = TimedRollups(path, threads=args.threads or None)
    store.applies = []
    stop, reads = start_readers(store, args.readers) if args.readers else (None, [])
    rounds, folded, started = [], 0, time.perf_counter()
    try:
        for round_ in range(args.rounds):
            if round_:
                store.query("UPDATE consumer_position SET position = 0")
            folded += await catch_up(store, log, batch=args.batch, clock=SystemClock())
            rounds.append({"batches": len(store.applies), **_ms(store.applies)})
            store.applies = []
    finally:
        if stop is not None:
            stop.set()
        store.close()
        await log.close()
    seconds = time.perf_counter() - started
    return {
        "events": args.events,
        "batch": args.batch,
        "threads": args.threads or "duckdb's default",
        "records": folded,
        "seconds": round(seconds, 1),
        "records_per_s": round(folded / seconds),
        "apply_by_round": rounds,
        "reads": {"count": len(reads), **(_ms(reads) if reads else {})},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("events", type=int)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=0, help="0: DuckDB's default")
    parser.add_argument("--readers", type=float, default=0.0, help="reports a second")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=Path("test-artifacts/fold-batches"))
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
