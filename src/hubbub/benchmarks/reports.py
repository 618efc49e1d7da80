"""The reports benchmark: the analytics worker's throughput, report latency over a year
of rollups, and the same reports computed from the raw post archive.

- **Worker.** A generated Jetstream stream is ingested into a fresh SQLite log, then
  the worker folds it into fresh DuckDB rollups, timed from the first read to the last
  commit (`worker_events_per_s` counts the log records folded). The baseline, from the
  same run, is the rate at which those records are read from the log, unfolded.
- **A year.** `posts_per_year` posts are generated in DuckDB over 2025 (authors and
  mentions skewed over 20,000 pages, hashtags over 2,000), written as the post archive
  lays it out (a Parquet file per hour), and folded into every rollup tier directly,
  laid out as the worker's compaction leaves them (the bulk loader stands for a year of
  the worker; it is not timed as part of any figure).
- **Reports.** A mix of top hashtags, top pages by engagement, page and hashtag series
  (hours up to a week, days beyond, in Europe/Paris) and page summaries, over windows of
  a day, a week, a month and the year, is run twice through the functions the API
  calls; the second pass is timed (`report_p50_ms`, `report_p95_ms`).
- **Against the raw archive.** The reports the archive can answer (it holds posts, not
  engagement: top hashtags, top mentioned pages, hashtag and page post series) are
  computed from the Parquet files with DuckDB, files pruned by their hour, and from the
  rollups, twice each; `vs_raw_ratio` is the second pass's median raw time over the
  median rollup time, and every answer is checked to be the same.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import duckdb
import numpy
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hubbub.analytics import service
from hubbub.analytics.archive import hour_of
from hubbub.analytics.duckdb import DuckDBRollups, skip_pandas_lookups
from hubbub.analytics.rollups import KEYED_TIERS, TIERED, TIERS, key_hash
from hubbub.analytics.service import Bucket, Window
from hubbub.analytics.worker import BATCH, TOPICS, catch_up
from hubbub.benchmarks.firehose_log import ingest_firehose
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import SystemClock
from hubbub.synthetic.firehose import FirehoseSpec

YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
MINUTES_PER_YEAR = 365 * 24 * 60
RAW_WINDOWS = 10


async def _read_rate(log: SqliteEventLog, batch: int = BATCH) -> float:
    """The baseline: log records read per second, in the worker's batches, unfolded."""
    started, read = time.perf_counter(), 0
    for topic in TOPICS:
        position = 1
        while got := await log.read(topic, position, batch):
            read += len(got)
            position = got[-1].position + 1
    return read / (time.perf_counter() - started)


async def _worker_rate(events: int, directory: Path) -> tuple[int, float, float]:
    """Records folded, the seconds it took, and the baseline read rate."""
    spec = FirehoseSpec(events=events, pages=max(1000, events // 10))
    log = await ingest_firehose(directory, spec)
    store = DuckDBRollups(directory / "analytics.duckdb")
    try:
        baseline = await _read_rate(log)
        started = time.perf_counter()
        folded = await catch_up(store, log, clock=SystemClock())
        seconds = time.perf_counter() - started
    finally:
        store.close()
        await log.close()
    return folded, seconds, baseline


def generate_year(db: duckdb.DuckDBPyConnection, posts_per_year: int) -> None:
    """A year of raw posts in table `raw`, in time order: authors and mentioned pages
    skewed over 20,000 pages, hashtags over 2,000 (60% of posts carry one, 30% mention
    a page). Only the columns these reports read are made; the archive's others (text,
    languages, ...) sit in columns of their own that they never touch."""
    first = int(YEAR_START.timestamp() // 60)
    db.execute("SELECT setseed(0.42)")
    db.execute(
        "CREATE TEMPORARY TABLE raw AS SELECT"
        f" {first} + (i * {MINUTES_PER_YEAR} // {posts_per_year})::BIGINT AS minute,"
        " 'did:plc:page' || floor(20000 * pow(random(), 2))::INT AS author,"
        " CASE WHEN random() < 0.6 THEN ['tag' || floor(2000 * pow(random(), 2))::INT]"
        " ELSE []::VARCHAR[] END AS tags,"
        " CASE WHEN random() < 0.3 THEN ['did:plc:page' || floor(20000 * pow(random(), 3))::INT]"
        " ELSE []::VARCHAR[] END AS mentions"
        f" FROM range({posts_per_year}) t(i)"
    )


def write_archive(db: duckdb.DuckDBPyConnection, root: Path) -> None:
    """Table `raw` as the post archive lays it out: a Parquet file per hour."""
    reader = db.execute("SELECT * FROM raw ORDER BY minute").fetch_record_batch(1_000_000)
    pending: list[pa.RecordBatch] = []
    for chunk in reader:
        hours = pc.divide(chunk.column("minute"), 60)
        pending.append(chunk.append_column("h", hours))
        table = pa.Table.from_batches(pending)
        last = table.column("h")[-1].as_py()
        done = table.filter(pc.less(table.column("h"), last))
        _write_hours(done, root)
        pending = table.filter(pc.equal(table.column("h"), last)).to_batches()
    if pending:
        _write_hours(pa.Table.from_batches(pending), root)


def _write_hours(table: pa.Table, root: Path) -> None:
    if not table.num_rows:
        return
    hours = table.column("h").to_numpy()
    cuts = [0, *(numpy.flatnonzero(numpy.diff(hours)) + 1).tolist(), len(hours)]
    for lo, hi in itertools.pairwise(cuts):
        part = table.slice(lo, hi - lo).drop_columns(["h"])
        hour = hour_of(int(hours[lo]) * 3_600_000_000)
        folder = root / "posts" / f"hour={hour}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, folder / f"{lo}-{hi}.parquet", compression="zstd")


def load_rollups(db: duckdb.DuckDBPyConnection) -> None:
    """The rollups of table `raw` (engagement made up from the posts, as the archive has
    none) at every tier, laid out as the worker's compaction leaves them."""
    keys = [r[0] for r in db.execute(
        "SELECT DISTINCT author FROM raw UNION SELECT DISTINCT unnest(mentions) FROM raw"
        " UNION SELECT DISTINCT unnest(tags) FROM raw"
    ).fetchall()]  # fmt: skip
    db.register("key_hashes", pa.table({"k": keys, "h": [key_hash(k) for k in keys]}))
    db.execute(
        "INSERT INTO tag_minute SELECT h, tag, minute, count(*) FROM"
        " (SELECT unnest(tags) AS tag, minute FROM raw) JOIN key_hashes ON k = tag"
        " GROUP BY ALL ORDER BY minute, h"
    )
    db.execute(
        "INSERT INTO page_minute (h, page, minute, posts, mentions_received, likes_received,"
        " reposts_received, replies_received) SELECT h, page, minute, sum(posts), sum(mentions),"
        " sum(posts) * 9, sum(posts) * 2, sum(posts) FROM ("
        " SELECT author AS page, minute, 1 AS posts, 0 AS mentions FROM raw UNION ALL"
        " SELECT unnest(mentions), minute, 0, 1 FROM raw) JOIN key_hashes ON k = page"
        " GROUP BY h, page, minute ORDER BY minute, h"
    )
    for key, counters in TIERED.items():
        for tier, minutes in TIERS[1:]:
            sums = ", ".join(f"sum({name})" for name in counters)
            order = "h, 3" if tier in KEYED_TIERS else "3, h"
            db.execute(
                f"INSERT INTO {key}_{tier} SELECT h, {key}, minute - minute % {minutes}, {sums}"
                f" FROM {key}_minute GROUP BY 1, 2, 3 ORDER BY {order}"
            )
        for tier, _ in TIERS:
            db.execute(
                f"INSERT OR REPLACE INTO compacted SELECT '{key}_{tier}', count(*), NULL"
                f" FROM {key}_{tier}"
            )


PARIS: Final = ZoneInfo("Europe/Paris")
Mix = list[tuple[str, Any, tuple[Any, ...]]]


def _draws(
    rng: random.Random, count: int, tags: int, pages: int
) -> Iterator[tuple[Window, Bucket, str, str]]:
    """Windows of a day, a week, a month or the year within 2025, their series bucket,
    and a hashtag and a page drawn among the first `tags` and `pages`."""
    for _ in range(count):
        days = rng.choice([1, 7, 30, 365])
        start = YEAR_START + timedelta(days=rng.randrange(0, 366 - days))
        bucket: Bucket = "hour" if days <= 7 else "day"
        tag, page = f"tag{rng.randrange(tags)}", f"did:plc:page{rng.randrange(pages)}"
        yield Window(start, start + timedelta(days=days)), bucket, tag, page


def _report_mix(rng: random.Random) -> Mix:
    mix: Mix = []
    for window, bucket, tag, page in _draws(rng, 40, 2000, 20000):
        mix += [
            ("top hashtags", service.top, ("hashtags", window, 20, 0)),
            ("top engaged", service.top, ("engaged", window, 20, 0)),
            ("hashtag series", service.series, ("hashtag", tag, window, bucket, PARIS)),
            ("page series", service.series, ("page", page, window, bucket, PARIS, "engagement")),
            ("page summary", service.page_summary, (page, window)),
        ]
    return mix


def _compare_mix(rng: random.Random) -> Mix:
    """Reports the archive can answer too (it holds posts, not engagement)."""
    mix: Mix = []
    for window, bucket, tag, page in _draws(rng, RAW_WINDOWS, 200, 2000):
        mix += [
            ("top hashtags", service.top, ("hashtags", window, 20, 0)),
            ("top mentioned", service.top, ("mentioned", window, 20, 0)),
            ("hashtag series", service.series, ("hashtag", tag, window, bucket, PARIS)),
            ("page series", service.series, ("page", page, window, bucket, PARIS, "posts")),
        ]
    return mix


_RAW_ROWS: Final = {
    "hashtags": "SELECT unnest(tags) AS k FROM {posts} WHERE {where}",
    "mentioned": "SELECT unnest(mentions) AS k FROM {posts} WHERE {where}",
}
_RAW_MATCH: Final = {"hashtag": "list_contains(tags, ?)", "page": "author = ?"}


class RawReports:
    """The same reports computed from the archive's Parquet files with DuckDB: what a
    report would cost with no rollups. Files are pruned by their hour partition."""

    def __init__(self, root: Path) -> None:
        skip_pandas_lookups()  # as the rollups get: the comparison is like for like
        self._db = duckdb.connect()
        self._posts = (
            f"read_parquet('{root}/posts/*/*.parquet', hive_partitioning = true,"
            " hive_types = {'hour': VARCHAR})"
        )

    def _where(self, first: int, last: int) -> tuple[str, list[Any]]:
        hours = [hour_of(first * 60_000_000), hour_of((last - 1) * 60_000_000)]
        return "hour >= ? AND hour <= ? AND minute >= ? AND minute < ?", [*hours, first, last]

    def top(self, what: str, window: Window, limit: int, offset: int) -> list[tuple[str, int]]:
        where, parameters = self._where(*window.minutes)
        rows = _RAW_ROWS[what].format(posts=self._posts, where=where)
        sql = (
            f"SELECT k, count(*) AS n FROM ({rows}) GROUP BY k ORDER BY n DESC, k LIMIT ? OFFSET ?"
        )
        return [
            (k, int(n)) for k, n in self._db.execute(sql, [*parameters, limit, offset]).fetchall()
        ]

    def series(
        self,
        kind: str,
        key: str,
        window: Window,
        bucket: Bucket,
        tz: ZoneInfo,
        metric: str = "posts",
    ) -> list[tuple[datetime, int]]:
        """Posts per bucket, bucketed as `service.series` does (`metric` is posts)."""

        def counts(spans: list[tuple[int, int, int]], size: int) -> list[tuple[Any, ...]]:
            found = []
            for lo, hi, offset in spans:
                where, parameters = self._where(lo, hi)
                sql = (
                    f"SELECT floor((minute + ?) / ?), ?, count(*) FROM {self._posts}"
                    f" WHERE {where} AND {_RAW_MATCH[kind]} GROUP BY 1"
                )
                found += self._db.execute(sql, [offset, size, offset, *parameters, key]).fetchall()
            return found

        return service.bucketed(window, bucket, tz, counts)

    def close(self) -> None:
        self._db.close()


def _timed(call: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = call(*args)
    return time.perf_counter() - started, answer


def _p95(times: list[float]) -> float:
    return sorted(times)[int(0.95 * (len(times) - 1))]


def _build_year(directory: Path, posts_per_year: int, progress: Any) -> dict[str, float]:
    """The raw archive and the rollups of one generated year; seconds each step took."""
    path = directory / "year.duckdb"
    DuckDBRollups(path).close()  # the schema
    db = duckdb.connect(str(path))
    try:
        steps = {}
        progress(f"year: generating {posts_per_year:,} posts")
        steps["generate_s"], _ = _timed(generate_year, db, posts_per_year)
        progress("year: writing the Parquet archive, a file per hour")
        steps["archive_s"], _ = _timed(write_archive, db, directory / "archive")
        progress("year: folding the posts into rollups")
        steps["rollups_s"], _ = _timed(load_rollups, db)
    finally:
        db.close()
    return {name: round(seconds, 1) for name, seconds in steps.items()}


def run_reports_benchmark(
    *, events: int, posts_per_year: int, progress: Any = lambda _: None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-reports-") as tmp:
        directory = Path(tmp)
        progress(f"worker: ingesting and folding {events:,} events")
        folded, seconds, baseline = asyncio.run(_worker_rate(events, directory / "worker"))
        steps = _build_year(directory, posts_per_year, progress)
        store = DuckDBRollups(directory / "year.duckdb")
        raw = RawReports(directory / "archive")
        try:
            (posts,) = store.query("SELECT sum(posts) FROM page_minute")[0]
            mix = _report_mix(random.Random(3))
            progress(f"reports: timing {len(mix) * 2} reports")
            latencies: dict[str, list[float]] = {}
            for run in range(2):  # the first pass warms the file's pages
                for name, report, args in mix:
                    elapsed, _ = _timed(report, store.query, *args)
                    if run:
                        latencies.setdefault(name, []).append(elapsed)
            compare = _compare_mix(random.Random(5))
            progress(f"raw: timing {len(compare)} reports from the rollups and the archive")
            pairs: dict[str, list[tuple[float, float]]] = {}
            mismatches = 0
            for run in range(2):  # both sides warmed by a first pass, as above
                for name, report, args in compare:
                    rolled, expected = _timed(report, store.query, *args)
                    from_raw, got = _timed(getattr(raw, report.__name__), *args)
                    mismatches += sorted(got) != sorted(expected)
                    if run:
                        pairs.setdefault(name, []).append((rolled, from_raw))
        finally:
            raw.close()
            store.close()
    everything = sorted(t for times in latencies.values() for t in times)
    rolled_all = [r for times in pairs.values() for r, _ in times]
    raw_all = [w for times in pairs.values() for _, w in times]
    return {
        "benchmark": "reports",
        "events": events,
        "worker_records": folded,
        "worker_events_per_s": round(folded / seconds),
        "baseline_log_read_per_s": round(baseline),
        "worker_vs_baseline": round(folded / seconds / baseline, 3),
        "posts_per_year": int(posts),
        **steps,
        "reports": len(everything),
        "report_p50_ms": round(statistics.median(everything) * 1000, 2),
        "report_p95_ms": round(_p95(everything) * 1000, 2),
        "by_report_p95_ms": {
            name: round(_p95(times) * 1000, 2) for name, times in latencies.items()
        },
        "raw_reports": len(raw_all),
        "raw_p50_ms": round(statistics.median(raw_all) * 1000, 1),
        "raw_answers_differing": mismatches,
        "vs_raw_ratio": round(statistics.median(raw_all) / statistics.median(rolled_all), 1),
        "vs_raw_by_report": {
            name: round(
                statistics.median(w for _, w in times) / statistics.median(r for r, _ in times), 1
            )
            for name, times in pairs.items()
        },
    }
