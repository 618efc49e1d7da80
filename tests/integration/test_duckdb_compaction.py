"""The DuckDB rollups compact beside the fold: batches applied while every table is
merged and rewritten, over and over, are all counted once, and the fold never waits
for a compaction to end."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.rollups import Deltas

BATCHES = 300


def _deltas(rng: random.Random, batch: int) -> Deltas:
    deltas = Deltas()
    for _ in range(200):
        page, minute = f"did:plc:{rng.randrange(500)}", 1_000 + batch // 3 + rng.randrange(5)
        deltas.pages[(page, minute)]["posts"] += 1
        deltas.tags[(f"tag{rng.randrange(50)}", minute)] += 1
    return deltas


def test_batches_applied_while_compacting_are_counted_once(tmp_path: Path) -> None:
    store = DuckDBRollups(tmp_path / "analytics.duckdb")
    rng = random.Random(7)
    expected_pages: Counter[str] = Counter()
    expected_tags: Counter[str] = Counter()
    folding = threading.Event()
    failures: list[BaseException] = []
    compactions = 0
    compacting = (0, False)  # which compaction, and whether it runs
    within: Counter[int] = Counter()  # batches applied from start to end within each one

    def compact_all_the_time() -> None:
        nonlocal compactions, compacting
        try:
            while not folding.is_set():
                compacting = (compacting[0] + 1, True)
                compactions += store.compact(force=True)
                compacting = (compacting[0], False)
        except BaseException as error:
            failures.append(error)

    seed = Deltas()  # years of hours: each compaction then rewrites 100,000 rows or more
    for n in range(100_000):
        seed.pages[(f"did:plc:seed{n % 5000}", n * 7)]["posts"] += 1
        expected_pages[f"did:plc:seed{n % 5000}"] += 1
    store.apply(seed, {"posts": 1}, {"posts": 0})
    compactor = threading.Thread(target=compact_all_the_time)
    compactor.start()
    try:
        for batch in range(BATCHES):
            deltas = _deltas(rng, batch)
            for (page, _), counts in deltas.pages.items():
                expected_pages[page] += counts["posts"]
            for (tag, _), posts in deltas.tags.items():
                expected_tags[tag] += posts
            started = compacting
            store.apply(deltas, {"posts": batch + 2}, {"posts": batch + 1})
            if started[1] and compacting == started:
                within[started[0]] += 1
    finally:
        folding.set()
        compactor.join()
    try:
        assert failures == []
        assert compactions > 10
        # Waiting for the compaction, at most the batch already being applied (or two,
        # as the threads take turns) would be.
        assert max(within.values(), default=0) >= 5, f"the batches waited for compactions: {within}"
        store.compact(force=True)
        for tier in ("minute", "hour", "day", "week", "fourweek"):
            pages = dict(store.query(f"SELECT page, sum(posts) FROM page_{tier} GROUP BY page"))
            assert pages == dict(expected_pages), tier
            tags = dict(store.query(f"SELECT tag, sum(posts) FROM tag_{tier} GROUP BY tag"))
            assert tags == dict(expected_tags), tier
        # merged: one row per bucket, and no notes of a tail left to merge
        (rows,) = store.query("SELECT count(*) FROM page_hour")[0]
        (buckets,) = store.query(
            "SELECT count(*) FROM (SELECT DISTINCT page, minute FROM page_hour)"
        )[0]
        assert rows == buckets
        assert store.query("SELECT count(*) FROM tail_note") == [(0,)]
        assert store.positions() == {"posts": BATCHES + 1}
    finally:
        store.close()
