"""The analytics worker, killed with SIGKILL at random moments, ends with exact totals.

The ground truth is computed here, straight from the events in the log, without the
worker's fold.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.cli import app
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.events import (
    DELETES,
    ENGAGEMENT,
    POSTS,
    EngagementRecorded,
    PostDeleted,
    PostEdited,
    PostPublished,
)
from hubbub.synthetic.firehose import FirehoseSpec, write_firehose

Truth = dict[str, Counter[str]]


async def ground_truth(log_path: Path) -> Truth:
    log = SqliteEventLog(log_path)
    try:
        records = {t: await log.read(t, 1, 10**7) for t in (POSTS, ENGAGEMENT, DELETES)}
    finally:
        await log.close()
    posts: dict[str, PostPublished] = {}
    for record in records[POSTS]:
        event = record.event
        if isinstance(event, PostEdited):
            if event.post in posts:
                posts[event.post] = event
        elif isinstance(event, PostPublished):
            posts.setdefault(event.post, event)
    deleted = {r.event.post for r in records[DELETES] if isinstance(r.event, PostDeleted)}
    truth: Truth = {name: Counter() for name in ("total", "tags", "posts", "mentions", "likes")}
    for post, event in posts.items():
        if post in deleted:
            continue
        truth["total"]["posts"] += 1
        truth["total"]["replies"] += event.reply_parent is not None
        truth["posts"][event.author] += 1
        truth["tags"].update(set(event.tags))
        truth["mentions"].update(set(event.mentions))
    for record in records[ENGAGEMENT]:
        event = record.event
        assert isinstance(event, EngagementRecorded)
        if event.kind != "reply":
            truth["total"][f"{event.kind}s"] += event.delta
        if event.kind == "like":
            truth["likes"][event.post_author] += event.delta
    return truth


def stored(path: Path) -> Truth:
    store = DuckDBRollups(path)
    try:
        (total,) = store.query(
            "SELECT sum(posts), sum(replies), sum(likes), sum(reposts) FROM global_minute"
        )
        tags = store.query("SELECT tag, sum(posts) FROM tag_minute GROUP BY tag")
        pages = store.query(
            "SELECT page, sum(posts), sum(mentions_received), sum(likes_received)"
            " FROM page_minute GROUP BY page"
        )
    finally:
        store.close()
    names = ("posts", "replies", "likes", "reposts")
    return {
        "total": Counter(dict(zip(names, map(int, total), strict=True))),
        "tags": Counter({tag: int(n) for tag, n in tags}),
        "posts": Counter({page: int(n) for page, n, _, _ in pages}),
        "mentions": Counter({page: int(n) for page, _, n, _ in pages}),
        "likes": Counter({page: int(n) for page, _, _, n in pages}),
    }


def folded(path: Path) -> int:
    if not path.exists():
        return 0
    store = DuckDBRollups(path)
    try:
        return sum(store.positions().values())
    finally:
        store.close()


def test_a_worker_killed_at_random_moments_counts_every_event_once(tmp_path: Path) -> None:
    firehose = tmp_path / "firehose.jsonl"
    write_firehose(FirehoseSpec(events=60_000, pages=3_000, seed=11), firehose)
    env = {**os.environ, "HUBBUB_DATA_DIR": str(tmp_path / "data"), "HUBBUB_LOG_LEVEL": "warning"}
    replayed = CliRunner().invoke(
        app, ["ingest", "replay", str(firehose), "--source", "jetstream", "--json"], env=env
    )
    assert replayed.exit_code == 0, replayed.output
    worker = [sys.executable, "-m", "hubbub", "analytics", "run", "--once", "--batch", "60"]
    rollups = tmp_path / "data" / "analytics.duckdb"
    rng = random.Random(5)
    killed_at: list[int] = []  # records folded when each kill struck mid-way
    stalled_s = 0.0  # start-up (imports, opening the store) takes 1.5 s here, or more
    for _ in range(15):  # on a busy machine: so a kill that came before any fold is not counted
        if len(killed_at) == 5:
            break
        process = subprocess.Popen(worker, env=env, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 2.5) + stalled_s)
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        now = folded(rollups)
        if now > (killed_at[-1] if killed_at else 0):
            killed_at.append(now)
        else:
            stalled_s += 1.0  # it had not folded anything yet: wait longer next time
    finished = subprocess.run(worker, env=env, capture_output=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr
    final = folded(rollups)
    assert len([n for n in killed_at if 0 < n < final]) >= 3, (killed_at, final)

    truth = asyncio.run(ground_truth(tmp_path / "data" / "eventlog.db"))
    found = stored(tmp_path / "data" / "analytics.duckdb")
    assert truth["total"]["posts"] > 1000
    for name in truth:
        assert +found[name] == +truth[name], name  # `+` drops the zero counts
