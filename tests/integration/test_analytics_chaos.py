"""Chaos: a generated firehose replayed at a steady rate into a running analytics worker
that is killed with SIGKILL every few seconds and started again. Afterwards the live
rollups hold exactly what `hubbub analytics rebuild` makes of the same log, every
counter of every table, `deleted` included.

The suite runs a CI-sized version; the full size is run by hand:

    .venv/bin/python -m tests.integration.test_analytics_chaos \\
        --events 400000 --rate 40000 --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

from hubbub.analytics.duckdb import DuckDBRollups, live_path
from hubbub.analytics.worker import BATCH, TOPICS
from hubbub.eventlog.sqlite import SqliteEventLog
from tests.support.rollups import everything

HUBBUB = [sys.executable, "-m", "hubbub"]


@dataclass
class ChaosRun:
    """What one run did and found."""

    events: int
    kills: int
    replay_s: float
    catch_up_s: float
    live: dict[str, list[tuple[Any, ...]]]
    rebuilt: dict[str, list[tuple[Any, ...]]]
    live_totals: dict[str, Any]
    rebuilt_totals: dict[str, Any]

    def differences(self) -> list[str]:
        """The tables whose counters differ between the live and the rebuilt rollups."""
        return [name for name in self.live if self.live[name] != self.rebuilt.get(name)]


def hubbub(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [*HUBBUB, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def counters(data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    store = DuckDBRollups(live_path(data_dir))
    try:
        return everything(store)
    finally:
        store.close()


async def logged(data_dir: Path) -> int:
    """The records of the analytics topics in the log."""
    log = SqliteEventLog(data_dir / "eventlog.db")
    try:
        return sum(t.count for t in (await log.stats()).topics if t.topic in TOPICS)
    finally:
        await log.close()


def kill_while_replaying(
    env: dict[str, str],
    firehose: Path,
    rate: int,
    rng: random.Random,
    every_s: tuple[float, float],
    worker: list[str],
) -> tuple[int, float]:
    """Replay the firehose at `rate` while an analytics worker (the `worker` command)
    runs, killing it with SIGKILL every `every_s` seconds (drawn) and starting it again;
    returns the kills and the replay's time. The last worker is killed too."""
    started = time.monotonic()
    replay_args = ["ingest", "replay", str(firehose), "--source", "jetstream", "--rate", str(rate)]
    errors = firehose.with_suffix(".replay.err")
    with errors.open("wb") as stderr:
        replay = subprocess.Popen([*HUBBUB, *replay_args], env=env, stdout=DEVNULL, stderr=stderr)
    kills = 0
    running: subprocess.Popen[bytes] | None = None
    try:
        while replay.poll() is None:
            running = subprocess.Popen(worker, env=env, stdout=DEVNULL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                replay.wait(timeout=rng.uniform(*every_s))
            running.kill()  # SIGKILL
            running.wait()
            kills += 1
    finally:
        if running is not None and running.poll() is None:
            running.kill()
            running.wait()
        if replay.poll() is None:
            replay.kill()
        replay.wait()
    assert replay.returncode == 0, errors.read_text()
    return kills, time.monotonic() - started


def chaos_run(
    directory: Path,
    *,
    events: int,
    rate: int,
    seed: int,
    every_s: tuple[float, float] = (2.0, 4.0),
    batch: int = BATCH,
) -> ChaosRun:
    """One run in `directory`: generate, replay under kills, catch up, then rebuild.

    After each start the worker catches up with what was logged while it was down, in
    batches of `batch` records a topic, before it follows the log: the smaller topics
    (deletes) then run ahead of the posts. The CI run scales the batch down with the
    firehose, as 150,000 is to a 400,000-event run."""
    data_dir = directory / "data"
    env = {**os.environ, "HUBBUB_DATA_DIR": str(data_dir), "HUBBUB_LOG_LEVEL": "warning"}
    firehose = directory / "firehose.jsonl"
    hubbub(
        env, "generate", "firehose", "--events", str(events), "--pages", "20000",
        "--seed", str(seed), "--out", str(firehose),
    )  # fmt: skip
    worker = [*HUBBUB, "analytics", "run", "--batch", str(batch)]
    rng = random.Random(seed)
    kills, replay_s = kill_while_replaying(env, firehose, rate, rng, every_s, worker)
    started = time.monotonic()
    hubbub(env, "analytics", "run", "--once")
    catch_up_s = time.monotonic() - started
    store = DuckDBRollups(live_path(data_dir))
    try:
        assert sum(store.positions().values()) == asyncio.run(logged(data_dir))
    finally:
        store.close()
    live, live_totals = counters(data_dir), json.loads(hubbub(env, "analytics", "totals", "--json"))
    hubbub(env, "analytics", "rebuild")
    rebuilt = counters(data_dir)
    rebuilt_totals = json.loads(hubbub(env, "analytics", "totals", "--json"))
    return ChaosRun(events, kills, replay_s, catch_up_s, live, rebuilt, live_totals, rebuilt_totals)


def test_live_rollups_under_repeated_kills_equal_a_rebuild(tmp_path: Path) -> None:
    run = chaos_run(tmp_path, events=60_000, rate=6_000, seed=3, every_s=(1.5, 3.0), batch=200)
    assert run.kills >= 3
    assert run.live_totals["posts"] > 1_000
    assert run.live_totals["deleted"] > 10
    assert run.live_totals == run.rebuilt_totals
    assert run.differences() == []


def main() -> None:
    """The full-size chaos runs, each in a fresh directory; prints one JSON line a run."""
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--rate", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    for seed in range(arguments.runs):
        with tempfile.TemporaryDirectory() as directory:
            run = chaos_run(
                Path(directory), events=arguments.events, rate=arguments.rate, seed=seed
            )
        figures = {
            "seed": seed, "events": run.events, "kills": run.kills,
            "replay_s": round(run.replay_s, 1), "catch_up_s": round(run.catch_up_s, 1),
            "live": run.live_totals, "rebuilt": run.rebuilt_totals,
            "tables_differing": run.differences(),
        }  # fmt: skip
        print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
