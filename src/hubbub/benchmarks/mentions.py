"""The mentions benchmark, in-process part: build the index, then time queries.

Pages come from the synthetic population (`hubbub.ingest.generate.page`: multilingual
names, unique handles); followers are Zipf-distributed. Queries are 1 to 4 character
prefixes of the handles and name words of pages drawn by popularity, since people
mostly type the names of accounts many others follow. The update rate is measured with
follower changes on pages drawn the same way.
"""

from __future__ import annotations

import gc
import random
import resource
import statistics
import time
from typing import Any

from hubbub.ingest.generate import page
from hubbub.mentions.index import MentionsIndex
from hubbub.mentions.normalize import normalize, words

ZIPF_EXPONENT = 1.1


def _followers(rank: int) -> int:
    """Zipf: the most followed page has about ten million followers."""
    return int(10_000_000 / rank**ZIPF_EXPONENT)


def _pages(count: int, rng: random.Random) -> list[tuple[str, list[str], int]]:
    ranks = list(range(1, count + 1))
    rng.shuffle(ranks)
    found = []
    for index in range(count):
        synthetic = page(index)
        keys = list(dict.fromkeys([normalize(synthetic.handle), *words(synthetic.display_name)]))
        found.append((synthetic.did, keys, _followers(ranks[index])))
    return found


def _prefixes(pages: list[tuple[str, list[str], int]], count: int, rng: random.Random) -> list[str]:
    weights = [score + 1 for _, _, score in pages]
    drawn = rng.choices(pages, weights=weights, k=count)
    prefixes = []
    for _, keys, _ in drawn:
        key = rng.choice(keys)
        prefixes.append(key[: rng.choice((1, 2, 2, 3, 3, 4))])
    return prefixes


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mentions_benchmark(*, pages: int, queries: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    population = _pages(pages, rng)
    rss_before = _rss_mb()
    started = time.perf_counter()
    index = MentionsIndex.build(population)
    build_s = time.perf_counter() - started
    gc.collect()
    prefixes = _prefixes(population, queries, rng)
    latencies = []
    for prefix in prefixes:
        started = time.perf_counter_ns()
        index.top_k(prefix, 10)
        latencies.append((time.perf_counter_ns() - started) / 1000)
    latencies.sort()
    updates = [
        (pid, score + rng.randint(1, 100)) for pid, _, score in rng.choices(population, k=50_000)
    ]
    started = time.perf_counter()
    for page_id, score in updates:
        index.set_score(page_id, score)
    update_s = time.perf_counter() - started
    return {
        "benchmark": "mentions",
        "backend": "memory",
        "pages": pages,
        "keys": sum(len(keys) for _, keys, _ in population),
        "build_s": round(build_s, 2),
        "rss_mb": round(_rss_mb(), 1),
        "build_rss_increase_mb": round(_rss_mb() - rss_before, 1),
        "queries": queries,
        "p50_us": round(statistics.median(latencies), 1),
        "p99_us": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "max_us": round(latencies[-1], 1),
        "updates_per_s": round(len(updates) / update_s),
        "http_p99_ms": None,
        "http_rps": None,
        "vs_postgres_p99_ratio": None,
    }
