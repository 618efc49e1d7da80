"""The reports benchmark: the analytics worker's throughput, and report latency over a
year of rollups.

- **Worker.** A generated Jetstream stream is ingested into a fresh SQLite log, then
  the worker folds it into fresh rollups, timed from the first read to the last commit.
- **Reports.** A bulk loader writes a year of minute rollups straight into DuckDB, as a
  worker would have after `posts_per_year` posts: every minute, a rotating set of
  hashtags and of pages gets counts drawn so that the year sums to about that many
  posts. Then a mix of reports (top hashtags, top pages, page and hashtag series by
  hour and day in a time zone, page summaries) over windows from a day to the year is
  timed through the same functions the API calls.

The comparison against the raw post archive (`vs_raw_ratio`) waits for the archive.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hubbub.analytics import reports
from hubbub.analytics.duckdb_store import DuckDBRollups
from hubbub.analytics.reports import Window
from hubbub.analytics.rollups import TIERED, TIERS
from hubbub.analytics.worker import catch_up
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.ingest.generate import FirehoseSpec, generate_firehose
from hubbub.ingest.pipeline import Ingestor
from hubbub.ingest.sqlite import SqliteIngestState
from hubbub.kernel.clock import SystemClock
from hubbub.settings import Settings

YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
MINUTES_PER_YEAR = 365 * 24 * 60
TAGS_PER_MINUTE = 20
PAGES_PER_MINUTE = 30


async def _worker_rate(events: int, directory: Path) -> tuple[int, float]:
    from hubbub.bootstrap import mapping_for

    settings = Settings(data_dir=directory)
    log = SqliteEventLog(settings.log_path)
    state = SqliteIngestState(settings.ingest_state_path)
    clock = SystemClock()
    ingestor = Ingestor(mapping_for("jetstream", settings, clock), log, state, clock)
    await ingestor.start()
    lines = generate_firehose(FirehoseSpec(events=events, pages=max(1000, events // 10)))
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) == 50_000:
            await ingestor.submit(batch)
            batch = []
    if batch:
        await ingestor.submit(batch)
    await ingestor.stop()
    await state.close()
    store = DuckDBRollups(directory / "analytics.duckdb")
    try:
        started = time.perf_counter()
        folded = await catch_up(store, log)
        seconds = time.perf_counter() - started
    finally:
        store.close()
        await log.close()
    return folded, seconds


def bulk_load_year(store: DuckDBRollups, posts_per_year: int) -> None:
    """A year of minute rollups, written directly (see the module docstring)."""
    first = int(YEAR_START.timestamp() // 60)
    per_tag = max(1, 2 * posts_per_year // (MINUTES_PER_YEAR * TAGS_PER_MINUTE))
    per_page = max(1, 2 * posts_per_year // (MINUTES_PER_YEAR * PAGES_PER_MINUTE))
    statements = [
        "INSERT INTO tag_minute SELECT 'tag' || ((k * 37 + m) % 2000), ?::BIGINT + m,"
        f" 1 + hash(m * 31 + k) % {per_tag} FROM range({MINUTES_PER_YEAR}) t(m),"
        f" range({TAGS_PER_MINUTE}) s(k)",
        "INSERT INTO page_minute (page, minute, posts, mentions_received, likes_received,"
        " reposts_received, replies_received) SELECT 'did:plc:page' || ((k * 53 + m) % 20000),"
        f" ?::BIGINT + m, 1 + hash(m * 17 + k) % {per_page}, hash(m + k) % 3,"
        " hash(m * 7 + k) % 40, hash(m * 3 + k) % 8, hash(m * 5 + k) % 5"
        f" FROM range({MINUTES_PER_YEAR}) t(m), range({PAGES_PER_MINUTE}) s(k)",
    ]
    for statement in statements:
        store.query(statement, [first])
    for key, counters in TIERED.items():  # the coarser tiers, as the worker keeps them
        for tier, minutes in TIERS[1:]:
            sums = ", ".join(f"sum({name})" for name in counters)
            store.query(
                f"INSERT INTO {key}_{tier} SELECT {key}, minute - minute % {minutes}, {sums}"
                f" FROM {key}_minute GROUP BY 1, 2 ORDER BY 2"
            )


def _report_mix(rng: random.Random) -> list[tuple[str, Any, tuple[Any, ...]]]:
    paris = ZoneInfo("Europe/Paris")
    mix: list[tuple[str, Any, tuple[Any, ...]]] = []
    for _ in range(40):
        days = rng.choice([1, 7, 30, 365])
        start = YEAR_START + timedelta(days=rng.randrange(0, 366 - days))
        window = Window(start, start + timedelta(days=days))
        bucket = "hour" if days <= 7 else "day"
        tag, page = f"tag{rng.randrange(2000)}", f"did:plc:page{rng.randrange(20000)}"
        mix += [
            ("top hashtags", reports.top, ("hashtags", window, 20, 0)),
            ("top engaged", reports.top, ("engaged", window, 20, 0)),
            ("hashtag series", reports.series, ("hashtag", tag, window, bucket, paris)),
            ("page series", reports.series, ("page", page, window, bucket, paris, "engagement")),
            ("page summary", reports.page_summary, (page, window)),
        ]
    return mix


def run_reports_benchmark(
    *, events: int, posts_per_year: int, progress: Any = lambda _: None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-reports-") as tmp:
        directory = Path(tmp)
        progress(f"worker: ingesting and folding {events:,} events")
        folded, seconds = asyncio.run(_worker_rate(events, directory / "worker"))
        progress(f"reports: loading a year of rollups for {posts_per_year:,} posts")
        store = DuckDBRollups(directory / "year.duckdb")
        try:
            started = time.perf_counter()
            bulk_load_year(store, posts_per_year)
            load_s = time.perf_counter() - started
            (posts,) = store.query("SELECT sum(posts) FROM page_minute")[0]
            mix = _report_mix(random.Random(3))
            progress(f"reports: timing {len(mix) * 2} reports")
            latencies: dict[str, list[float]] = {}
            for run in range(2):  # the first pass warms the file's pages
                for name, report, args in mix:
                    started = time.perf_counter()
                    report(store.query, *args)
                    if run:
                        latencies.setdefault(name, []).append(time.perf_counter() - started)
        finally:
            store.close()
    everything = sorted(t for times in latencies.values() for t in times)
    return {
        "benchmark": "reports",
        "events": events,
        "worker_records": folded,
        "worker_events_per_s": round(folded / seconds),
        "posts_per_year": int(posts),
        "bulk_load_s": round(load_s, 1),
        "reports": len(everything),
        "report_p50_ms": round(statistics.median(everything) * 1000, 2),
        "report_p95_ms": round(everything[int(0.95 * (len(everything) - 1))] * 1000, 2),
        "by_report_p95_ms": {
            name: round(sorted(times)[int(0.95 * (len(times) - 1))] * 1000, 2)
            for name, times in latencies.items()
        },
        "vs_raw_ratio": None,
    }
