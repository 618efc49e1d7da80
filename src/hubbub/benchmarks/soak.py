"""The soak benchmark: the whole platform for N minutes under a steady firehose and HTTP
load, watching for what only time shows: memory that grows, consumers that fall behind,
errors that come now and then.

- **Serving.** `hubbub serve` runs every role (processes of their own, embedded
  defaults, free ports, rate limits out of the way) in a fresh data directory, with a
  tenant whose keys are made in its relational store first. `startup_s` is the time
  until the gateway's `/healthz` says every role is ok. The roles' output (JSON logs,
  warnings and up) goes to the log file beside the plot.
- **Work for every role.** Through the gateway, the tenant saves a listening search per
  hashtag of the synthetic corpus and a few more, and watches those hashtags, two terms
  and some of the searches (the alert monitor checks each watch every minute; a steady
  stream with no history raises no spike, so alerts are checked, not expected).
- **Population.** Before the run, every account of the firehose's `pages` is introduced
  (its handle and display name, `introduce`) and mentions folds them: the run starts on
  a platform that knows its accounts, as one long in service does, so the index grows
  with what changes, not with accounts met for the first time (the firehose names about
  140 a second, and would take half an hour to name them all).
- **Firehose.** A feeder process (`python -m hubbub.benchmarks.soak feed`) generates the
  synthetic Jetstream firehose at `rate` events a second, its times starting now, and
  pushes it through the gateway to the ingest role in a batch every `TICK_S`, at most
  `PUSHES_IN_FLIGHT` waiting at once: a platform that cannot keep up slows it down, and
  `events_per_s` (the source events ingest answered for, a second) shows it.
- **HTTP load.** A load process (`... soak load`) sends GETs through the gateway on a
  fixed schedule (open loop, `http_rate` a second; each latency counts from the moment
  its request was due): three in four are @mention autocomplete for prefixes of the
  population's handles, one in four a report (top hashtags, mentioned, engaged pages,
  a hashtag's minute series) over the days of the run.
- **Samples**, every `sample_s`: each process's resident memory (psutil; a role's
  child processes count as the role's), each role's lag, the log's heads, the feeder's
  and the load's counts. A role's lag in a topic is how far the position its
  `/healthz` names is behind the topic's head, in seconds of event time: the smaller of
  the head's time minus the time of the last event folded, and now minus the time of
  the first event not folded (the first reads a dense topic right even when the feeder
  runs late; the second a sparse one, such as `control`, whose events are minutes
  apart). `max_lag_s` is the largest over every role, topic and sample.
- **Memory.** `rss_growth_pct` compares the summed RSS of every process at the end with
  that after the warm-up (the first `warmup_share` of the run); per role too, and the
  slope of a line fitted to the samples after the warm-up, in MB an hour. Beside it,
  the cores each role kept busy after the warm-up (`cpu_cores_by_role`).
- **Errors** (`errors`, the sum; `error_detail`, each kind): non-2xx answers and failed
  requests of the load, pushes refused or failed, roles the supervisor restarted
  ("role exited" in its log), error lines and tracebacks in the roles' log, events
  dead-lettered, and background tasks a role's `/healthz` named as failing. A
  `/healthz` that does not answer within 5 s is counted apart (`health_unanswered`): a
  busy role is slow, not wrong; so are the times the gateway found a role down
  (`gateway_found_down`, from its log), whose 503s the load counts.
- **Disk.** The data directory is a temporary one (under `TMPDIR`); a run that would not
  fit there (`BYTES_PER_EVENT` an event: ~36 GB for an hour at 10,000 a second) is
  refused before it starts.
- **Curves.** RSS in all and per role, lag per role, events per second and the load's
  p99 per sample, as a PNG at `plot` (default `test-artifacts/soak.png`, which git
  ignores), and the samples themselves beside it (`soak.samples.jsonl`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx
import msgspec
import psutil
from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from hubbub.eventlog.ports import EventLog, PositionExpired
from hubbub.ingest.service import IngestSummary
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import DEADLETTER, MATCHES, PAGES
from hubbub.settings import Settings
from hubbub.synthetic.corpus import HASHTAGS
from hubbub.synthetic.firehose import FirehoseSpec, generate_firehose, generate_population
from hubbub.synthetic.population import page as synthetic_page

ROLES: Final = (
    "ingest", "mentions", "analytics", "publishing", "notifications", "listening", "web",
    "gateway",
)  # fmt: skip
"""The roles `hubbub serve` runs, each on a port of its own here."""
FIREHOSE: Final = ("posts", "engagement", "deletes", "pages")
DEFAULT_PLOT: Final = Path("test-artifacts/soak.png")
TICK_S: Final = 0.1
PUSHES_IN_FLIGHT: Final = 8
REQUESTS_IN_FLIGHT: Final = 64
REPORT_EVERY_S: Final = 1.0
INTRODUCED_PER_PUSH: Final = 2_000
READY_TIMEOUT_S: Final = 600.0
REQUEST_TIMEOUT_S: Final = 10.0
MENTIONS_SHARE: Final = 0.75
EXTRA_SEARCHES: Final = (
    ("Coffee, any language", "coffee OR café OR Kaffee OR #coffee OR #café OR #Kaffee"),
    ("Football", '(#futebol OR #fútbol OR #Fußball OR football) NOT "fantasy"'),
    ("Japan, in Japanese", "lang:ja (#日本 OR 猫 OR 花火)"),
    ("Links about art", "has:link (art OR #art)"),
    ("Replies about music", "is:reply (música OR music OR #música)"),
)
WATCHED_TERMS: Final = ("coffee", "football")
WATCHED_SEARCHES: Final = 5
BYTES_PER_EVENT: Final = 1000
"""Disk a firehose event takes in the data directory: measured over 20,000 events, the
log ~400 B, ingest's dedupe ~120 B, DuckDB's rollups (fixed size included) the rest."""
TOTAL: Final = "total"
SUPERVISOR: Final = "supervisor"
TOKEN: Final = "HUBBUB_SOAK_TOKEN"
"""How the helper processes get their key: not in their command line, which `ps` shows."""

Show = Callable[[RenderableType], None]


@dataclass(frozen=True)
class SoakPlan:
    """What to run: `minutes` of `rate` events a second over `pages` accounts, and
    `http_rate` GETs a second, sampled every `sample_s`; the first `warmup_share` of the
    run is the warm-up."""

    minutes: float
    rate: int = 10_000
    pages: int = 100_000
    http_rate: float = 20.0
    sample_s: float = 5.0
    warmup_share: float = 0.1
    plot: Path = DEFAULT_PLOT
    seed: int = 1
    analytics_memory_limit: str = "1GB"
    """DuckDB's buffer pool in analytics (`HUBBUB_ANALYTICS_MEMORY_LIMIT`), the role's
    default unless asked. Smaller, it fills sooner but does not stop analytics growing:
    at 512 MB the hour's analytics still grew 854 to 1,048 MB (medians of the minutes
    after the warm-up and of the last five), as at 1 GB, and its lag and reports were
    slower (p99 lag 1.73 s against 1.15, reports p99 184 ms against 129: two hours at
    different commits, not side by side)."""

    def __post_init__(self) -> None:
        if self.minutes <= 0 or self.rate < 1 or self.pages < 1 or self.http_rate <= 0:
            raise ValueError(f"a soak needs minutes, rates and pages above zero: {self}")
        if self.sample_s <= 0 or not 0 < self.warmup_share < 1:
            raise ValueError(f"sample_s must be > 0 and warmup_share within (0, 1): {self}")


@dataclass
class Sample:
    """What one look at the platform saw, `t_s` seconds into the run."""

    t_s: float
    rss_mb: dict[str, float]
    cpu_s: dict[str, float]
    """CPU seconds each role has used since its process started."""
    lag_s: dict[str, float]
    events_per_s: float
    log_events_per_s: float
    http_p99_ms: dict[str, float]
    lag_s_by_topic: dict[str, dict[str, float]] = field(default_factory=dict)
    """Each role's lag in each topic it follows (`lag_s` holds the largest)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


# -- the feeder process ------------------------------------------------------------------


class FeedCounts(msgspec.Struct):
    """What the feeder sent, and what the ingest role answered for it (lines)."""

    sent: int = 0
    answered: int = 0
    accepted: int = 0
    rejected: int = 0
    unsent: int = 0
    failed_pushes: int = 0
    late_s: float = 0.0
    """How far behind its schedule it is now."""
    waited_s: float = 0.0
    """How long it waited, in all, for an answer before it could push again: the
    platform's backpressure (late with little waiting: the feeder itself is short of
    CPU)."""
    last_error: str = ""

    def took(self, summary: IngestSummary) -> None:
        self.answered += summary.total
        self.accepted += summary.accepted
        self.rejected += summary.rejected

    def failed(self, lines: int, error: str) -> None:
        self.unsent += lines
        self.failed_pushes += 1
        self.last_error = error[:300]


async def _push(client: httpx.AsyncClient, batch: list[bytes], counts: FeedCounts) -> None:
    try:
        answer = await client.post(
            "/v1/ingest/jetstream",
            content=b"\n".join(batch),
            headers={"content-type": "application/x-ndjson"},
        )
    except httpx.HTTPError as error:
        counts.failed(len(batch), f"{type(error).__name__}: {error}")
        return
    if answer.status_code != 200:
        counts.failed(len(batch), f"{answer.status_code} {answer.text[:200]}")
        return
    counts.took(msgspec.json.decode(answer.content, type=IngestSummary))


async def feed(
    client: httpx.AsyncClient,
    rate: int,
    pages: int,
    seed: int,
    stop: asyncio.Event,
    counts: FeedCounts,
) -> None:
    """Push the synthetic firehose at `rate` events a second until `stop`: a batch every
    tick, at most PUSHES_IN_FLIGHT unanswered; behind schedule, it sends without waiting
    (`late_s` says by how much it is behind)."""
    spec = FirehoseSpec(
        events=10**12, pages=pages, seed=seed, start_us=time.time_ns() // 1000, rate_per_s=rate
    )
    lines = generate_firehose(spec)
    per_tick = max(1, round(rate * TICK_S))
    in_flight: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    while not stop.is_set():
        if len(in_flight) >= PUSHES_IN_FLIGHT:
            waiting = time.monotonic()
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            counts.waited_s = round(counts.waited_s + time.monotonic() - waiting, 3)
        batch = [next(lines) for _ in range(per_tick)]
        pushing = asyncio.create_task(_push(client, batch, counts))
        in_flight.add(pushing)
        pushing.add_done_callback(in_flight.discard)
        counts.sent += len(batch)
        ahead = started + counts.sent / rate - time.monotonic()
        counts.late_s = round(max(0.0, -ahead), 3)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, ahead))
    if in_flight:
        await asyncio.wait(in_flight)


async def introduce(client: httpx.AsyncClient, pages: int, seed: int) -> int:
    """Push the population's introductions (`generate_population`: every account's
    handle and display name), one batch at a time; how many lines (see **Population**
    in the module's docstring)."""
    counts = FeedCounts()
    spec = FirehoseSpec(
        events=0, pages=pages, seed=seed, start_us=time.time_ns() // 1000 - 2 * pages
    )
    lines = generate_population(spec)
    while batch := list(itertools.islice(lines, INTRODUCED_PER_PUSH)):
        await _push(client, batch, counts)
        counts.sent += len(batch)
        if counts.failed_pushes:
            raise RuntimeError(f"introducing the population failed: {counts.last_error}")
    return counts.sent


# -- the HTTP load process ---------------------------------------------------------------


@dataclass
class LoadCounts:
    """The load's answers: latencies (ms) per kind, statuses other than 2xx, failures."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    non_2xx: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    shed: int = 0
    last_error: str = ""
    _reported: dict[str, int] = field(default_factory=dict)

    def window_p99(self) -> dict[str, float]:
        """p99 (ms) per kind of the answers since the last call (kinds with some)."""
        found = {}
        for kind, values in self.latencies.items():
            start = self._reported.get(kind, 0)
            if len(values) > start:
                found[kind] = round(_percentile(sorted(values[start:]), 0.99), 2)
            self._reported[kind] = len(values)
        return found

    def summary(self) -> dict[str, dict[str, float | int]]:
        """Answers and their p50, p99 and max (ms), per kind and over all."""
        kinds = {**self.latencies, "all": [v for vs in self.latencies.values() for v in vs]}
        figures: dict[str, dict[str, float | int]] = {}
        for kind, values in kinds.items():
            ordered = sorted(values)
            figures[kind] = {
                "requests": len(ordered),
                "p50_ms": round(_percentile(ordered, 0.5), 2),
                "p99_ms": round(_percentile(ordered, 0.99), 2),
                "max_ms": round(ordered[-1], 2) if ordered else 0.0,
            }
        return figures

    def report(self) -> dict[str, Any]:
        """What the load prints every second: counts so far, p99 since the last."""
        return {
            "requests": sum(len(v) for v in self.latencies.values()),
            "non_2xx": self.non_2xx,
            "failures": self.failures,
            "shed": self.shed,
            "last_error": self.last_error,
            "window_p99_ms": self.window_p99(),
        }


async def _get(
    client: httpx.AsyncClient, kind: str, path: str, due: float, counts: LoadCounts
) -> None:
    try:
        answer = await client.get(path)
    except httpx.HTTPError as error:
        counts.failures += 1
        counts.last_error = f"{path}: {type(error).__name__}: {error}"[:300]
        return
    counts.latencies.setdefault(kind, []).append((time.perf_counter() - due) * 1000)
    if not 200 <= answer.status_code < 300:
        status = str(answer.status_code)
        counts.non_2xx[status] = counts.non_2xx.get(status, 0) + 1
        counts.last_error = f"{path}: {status} {answer.text[:200]}"


async def load(
    client: httpx.AsyncClient,
    paths: Sequence[tuple[str, str]],
    rate: float,
    stop: asyncio.Event,
    counts: LoadCounts,
) -> None:
    """GET `paths` ((kind, path), in turn) at `rate` a second until `stop`, each on its
    schedule whatever the answers before it; with REQUESTS_IN_FLIGHT unanswered, a due
    request is shed (counted) rather than sent late."""
    in_flight: set[asyncio.Task[None]] = set()
    started, n = time.perf_counter(), 0
    while not stop.is_set():
        due = started + n / rate
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, due - time.perf_counter()))
        if stop.is_set():
            break
        kind, path = paths[n % len(paths)]
        n += 1
        if len(in_flight) >= REQUESTS_IN_FLIGHT:
            counts.shed += 1
            continue
        task = asyncio.create_task(_get(client, kind, path, due, counts))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)


def load_paths(pages: int, day: datetime, seed: int, count: int = 2000) -> list[tuple[str, str]]:
    """(kind, path) of the load: autocomplete for 2 to 4 letters of handles of the
    population (popular pages first), and reports over `day` and the next."""
    rng = random.Random(seed)
    start = day.strftime("%Y-%m-%dT00:00:00Z")
    end = (day + timedelta(days=2)).strftime("%Y-%m-%dT00:00:00Z")
    window = f"start={start}&end={end}"
    tags = [tag for tags in HASHTAGS.values() for tag in tags]
    reports = [
        *(f"/v1/reports/top/{what}?{window}" for what in ("hashtags", "mentioned", "engaged")),
        *(
            f"/v1/reports/series/hashtag/{quote(tag.lower())}?{window}&bucket=minute"
            for tag in tags[::5]
        ),
    ]
    paths: list[tuple[str, str]] = []
    for n in range(count):
        if rng.random() < MENTIONS_SHARE:
            index = min(pages - 1, int(rng.paretovariate(1.0)) - 1)
            handle = synthetic_page(index if rng.random() < 0.5 else rng.randrange(pages)).handle
            prefix = handle[: rng.randint(2, 4)]
            paths.append(("mentions", f"/v1/mentions?q={quote(prefix)}&limit=10"))
        else:
            paths.append(("reports", reports[n % len(reports)]))
    return paths


# -- helper processes, seen from the run -------------------------------------------------


class Helper:
    """A helper process of the run (the feeder, the load): it prints a JSON object every
    REPORT_EVERY_S and a last one when SIGTERM stops it; `last` is the latest."""

    def __init__(self, argv: list[str], env: dict[str, str], output: Path) -> None:
        self._argv, self._env, self._output = argv, env, output
        self.last: dict[str, Any] = {}
        self._process: asyncio.subprocess.Process | None = None
        self._reading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with self._output.open("ab") as sink:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv, env=self._env, stdout=subprocess.PIPE, stderr=sink
            )
        self._reading = asyncio.create_task(self._read())

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        async for line in self._process.stdout:
            with contextlib.suppress(ValueError):
                self.last = json.loads(line)

    async def stop(self) -> dict[str, Any]:
        """SIGTERM, its last object (SIGKILL after 30 s)."""
        if self._process is None or self._process.returncode is not None:
            return self.last
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._process.wait(), 30)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        if self._reading is not None:
            await self._reading
        return self.last


# -- serving -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Serving:
    """`hubbub serve` as this run started it."""

    base: str
    urls: dict[str, str]
    pid: int
    log: Path
    startup_s: float


def _environment(data: Path, ports: dict[str, int], plan: SoakPlan) -> dict[str, str]:
    limits = {
        f"HUBBUB_RATE_LIMIT_{who}_{what}": "1000000000"
        for who in ("KEY", "TENANT")
        for what in ("PER_S", "BURST")
    }
    env = {
        **os.environ,
        "HUBBUB_LOG_LEVEL": "warning",
        "HUBBUB_LOG_FORMAT": "json",
        "HUBBUB_HTTP_PORT": str(ports["gateway"]),
        **{
            f"HUBBUB_{role.upper()}_URL": f"http://127.0.0.1:{ports[role]}"
            for role in ROLES
            if role != "gateway"
        },
        **limits,
        "HUBBUB_ANALYTICS_MEMORY_LIMIT": plan.analytics_memory_limit,
    }
    env.pop("HUBBUB_DATA_DIR", None)
    return env


@contextlib.asynccontextmanager
async def serving(
    data: Path, log: Path, env: dict[str, str], ports: dict[str, int]
) -> AsyncIterator[Serving]:
    """`hubbub serve` on `data` until every role is ok; stopped (SIGTERM, then SIGKILL)
    when the block ends, whatever happens."""
    command = [sys.executable, "-m", "hubbub", "--data-dir", str(data), "serve"]
    started = time.perf_counter()
    with log.open("ab") as sink:
        child = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{ports['gateway']}"
    try:
        await _until_healthy(child, base, log)
        urls = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
        yield Serving(base, urls, child.pid, log, round(time.perf_counter() - started, 1))
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), 40)
        except TimeoutError:
            child.kill()
            await child.wait()


async def _until_healthy(child: asyncio.subprocess.Process, base: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    seen: Any = None
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while True:
            if child.returncode is not None:
                output = await asyncio.to_thread(log.read_text, errors="replace")
                raise RuntimeError(f"hubbub serve exited {child.returncode}: {output[-3000:]}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                body = (await client.get(f"{base}/healthz")).json()
                seen = body.get("roles")
                if body.get("status") == "ok" and set(ROLES) <= set(seen or ()):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"hubbub serve not ok within {READY_TIMEOUT_S:.0f} s: {seen}")
            await asyncio.sleep(0.5)


def make_tenant(settings: Settings) -> tuple[str, str]:
    """A tenant's owner key and a key it may push to the firehose with: their tokens."""
    from hubbub.bootstrap import open_tenant_store  # not in the helper processes: 4 s

    store = open_tenant_store(settings, SystemClock())
    try:
        tenant = store.create_tenant("soak")
        _, owner = store.create_key(tenant.id, "soak", "owner")
        feeder, pusher = store.create_key(tenant.id, "soak firehose", "editor")
        store.set_permissions(tenant.id, feeder.id, frozenset({"ingest"}))
        return owner, pusher
    finally:
        store.close()


async def give_work(base: str, token: str) -> dict[str, int]:
    """Searches and watches of the tenant, saved through the gateway; how many of each."""
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=base, headers=auth, timeout=30, trust_env=False
    ) as client:
        return await _give_work(client)


async def _give_work(client: httpx.AsyncClient) -> dict[str, int]:
    tags = sorted({tag for tags in HASHTAGS.values() for tag in tags})
    searches = [(f"#{tag}", f"#{tag}") for tag in tags] + list(EXTRA_SEARCHES)
    saved = []
    for name, query in searches:
        answer = await client.post("/v1/streams", json={"name": name, "query": query})
        if answer.status_code != 201:
            raise RuntimeError(f"saving the search {query!r}: {answer.status_code} {answer.text}")
        saved.append(answer.json()["id"])
    watches = [("hashtag", tag) for tag in tags] + [("term", term) for term in WATCHED_TERMS]
    watches += [("search", search) for search in saved[-WATCHED_SEARCHES:]]
    for kind, target in watches:
        answer = await client.post("/v1/watches", json={"kind": kind, "target": target})
        if answer.status_code != 201:
            raise RuntimeError(f"watching {kind} {target!r}: {answer.status_code} {answer.text}")
    return {"searches": len(saved), "watches": len(watches)}


# -- looking at the platform -------------------------------------------------------------


def role_of(command: Sequence[str]) -> str | None:
    """The role a `hubbub serve --role NAME` command line runs, if it is one."""
    for n, part in enumerate(command[:-1]):
        if part == "--role":
            return command[n + 1]
    return None


def processes_by_role(serve_pid: int) -> dict[str, list[psutil.Process]]:
    """The supervisor's process, and each role's with its own children (replicas,
    workers), which count as the role's."""
    found: dict[str, list[psutil.Process]] = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(serve_pid)
        found[SUPERVISOR] = [root]
        for child in root.children():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                role = role_of(child.cmdline()) or "other"
                found.setdefault(role, []).extend([child, *child.children(recursive=True)])
    return found


def rss_mb(processes: Sequence[psutil.Process]) -> float:
    """Their resident memory, summed, in MB (a process gone counts nothing)."""
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_info().rss
    return round(total / 2**20, 1)


def cpu_s(processes: Sequence[psutil.Process]) -> float:
    """The CPU time (user and system) they have used, summed, in seconds."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            total += times.user + times.system
    return round(total, 2)


class EventTimes:
    """The time (µs) of the event at a position of a topic, read from the log."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def at(self, topic: str, position: int) -> int | None:
        """The time of the first event kept at or after `position`; None when none is."""
        try:
            records = await self._log.read(topic, max(1, position), 1)
        except PositionExpired:
            records = await self._log.read(topic, 1, 1)
        return records[0].event.ts if records else None

    async def lag_s(self, topic: str, position: int, head: int, now_us: int) -> float:
        """How far `position` (the last event folded) is behind `head`, in seconds (see
        the module's docstring)."""
        if position >= head:
            return 0.0
        head_ts = await self.at(topic, head)
        first_not_folded = await self.at(topic, position + 1)
        if head_ts is None or first_not_folded is None:
            return 0.0
        folded = await self.at(topic, position) if position > 0 else first_not_folded
        behind_head = head_ts - (folded or first_not_folded)
        return round(max(0.0, min(behind_head, now_us - first_not_folded) / 1e6), 3)


@dataclass
class LogWatch:
    """The roles' log, read on from where the run started: error lines (tracebacks
    too), restarts by the supervisor, a few messages as examples."""

    path: Path
    offset: int = 0
    error_lines: int = 0
    restarts: dict[str, int] = field(default_factory=dict)
    upstream_down: dict[str, int] = field(default_factory=dict)
    """Times the gateway found a role not answering its health check: it answers 503
    for the role's routes meanwhile (which the load counts)."""
    examples: list[str] = field(default_factory=list)

    def skip_to_end(self) -> None:
        self.offset = self.path.stat().st_size

    def read_on(self) -> None:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1
        self.offset += complete
        for line in chunk[:complete].splitlines():
            self._see(line.decode(errors="replace"))

    def _see(self, line: str) -> None:
        if line.startswith("Traceback"):
            self._error(line)
            return
        try:
            entry = json.loads(line)
        except ValueError:
            return
        if not isinstance(entry, dict):
            return
        if entry.get("event") == "role exited":
            role = str(entry.get("role"))
            self.restarts[role] = self.restarts.get(role, 0) + 1
            self._example(line)
        elif entry.get("event") == "upstream is down":
            role = str(entry.get("upstream"))
            self.upstream_down[role] = self.upstream_down.get(role, 0) + 1
        elif entry.get("level") in ("error", "critical", "exception"):
            self._error(line)

    def _error(self, line: str) -> None:
        self.error_lines += 1
        self._example(line)

    def _example(self, line: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(line[:500])


@dataclass
class Watcher:
    """Samples the platform: memory, lag, rates, errors."""

    serving: Serving
    log: EventLog
    feeder: Helper
    loader: Helper
    log_watch: LogWatch
    client: httpx.AsyncClient
    samples: list[Sample] = field(default_factory=list)
    failing_tasks: set[str] = field(default_factory=set)
    unanswered_health: int = 0
    heads: dict[str, int] = field(default_factory=dict)
    first_heads: dict[str, int] = field(default_factory=dict)
    answered_at_start: int = 0
    started: float = 0.0
    """When the run's clock started (monotonic)."""
    lag_by_topic: dict[str, dict[str, float]] = field(default_factory=dict)
    _last: tuple[float, int, int] | None = None

    async def positions(self) -> dict[str, dict[str, int]]:
        """Each role's folded positions per topic, as its /healthz says; failing tasks
        noted."""
        found: dict[str, dict[str, int]] = {}
        for role, url in self.serving.urls.items():
            try:
                body = (await self.client.get(f"{url}/healthz")).json()
            except (httpx.HTTPError, ValueError):
                self.unanswered_health += 1
                continue
            for task in body.get("failing_tasks") or ():
                self.failing_tasks.add(f"{role}: {task}")
            if role != "gateway" and body.get("positions"):
                found[role] = {k: int(v) for k, v in body["positions"].items()}
        return found

    async def lags(self, positions: dict[str, dict[str, int]]) -> dict[str, float]:
        """Each role's largest lag over the topics it follows, in seconds."""
        times, now_us = EventTimes(self.log), time.time_ns() // 1000
        found = {}
        for role, topics in positions.items():
            by_topic = {
                topic: await times.lag_s(topic, position, self.heads.get(topic, 0), now_us)
                for topic, position in topics.items()
            }
            self.lag_by_topic[role] = by_topic
            found[role] = max(by_topic.values(), default=0.0)
        return found

    async def sample(self, t_s: float) -> Sample:
        """Look once, `t_s` seconds into the run: heads, memory and CPU, positions and
        lags, the roles' log, rates since the last look."""
        stats = await self.log.stats()
        self.heads = {topic.topic: topic.last_position for topic in stats.topics}
        if not self.samples:
            self.first_heads = dict(self.heads)
            self.answered_at_start = int(self.feeder.last.get("answered", 0))
        processes = processes_by_role(self.serving.pid)
        if SUPERVISOR not in processes:
            raise RuntimeError(f"hubbub serve exited during the run; see {self.serving.log}")
        rss = {role: rss_mb(found) for role, found in processes.items()}
        rss[TOTAL] = round(sum(rss.values()), 1)
        cpu = {role: cpu_s(found) for role, found in processes.items()}
        lag = await self.lags(await self.positions())
        self.log_watch.read_on()
        answered = int(self.feeder.last.get("answered", 0))
        appended = sum(self.heads.get(topic, 0) for topic in FIREHOSE)
        events_per_s = log_per_s = 0.0
        if self._last is not None:
            then, answered_then, appended_then = self._last
            span = max(1e-6, t_s - then)
            events_per_s = (answered - answered_then) / span
            log_per_s = (appended - appended_then) / span
        self._last = (t_s, answered, appended)
        sample = Sample(
            t_s=round(t_s, 1), rss_mb=rss, cpu_s=cpu, lag_s=lag,
            events_per_s=round(events_per_s, 1), log_events_per_s=round(log_per_s, 1),
            http_p99_ms=dict(self.loader.last.get("window_p99_ms") or {}),
            lag_s_by_topic={role: dict(lags) for role, lags in self.lag_by_topic.items()},
        )  # fmt: skip
        self.samples.append(sample)
        return sample

    def errors(self) -> dict[str, int]:
        """Each kind of error seen so far (see the module's docstring)."""
        feed, http = self.feeder.last, self.loader.last
        dead = self.heads.get(DEADLETTER, 0) - self.first_heads.get(DEADLETTER, 0)
        return {
            "http_non_2xx": sum((http.get("non_2xx") or {}).values()),
            "http_failures": int(http.get("failures", 0)),
            "http_shed": int(http.get("shed", 0)),
            "push_failures": int(feed.get("failed_pushes", 0)),
            "restarts": sum(self.log_watch.restarts.values()),
            "error_log_lines": self.log_watch.error_lines,
            "dead_letters": dead,
            "failing_tasks": len(self.failing_tasks),
        }


# -- the run -----------------------------------------------------------------------------


def _helper_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "hubbub.benchmarks.soak", *args]


async def _run(plan: SoakPlan, data: Path, log_path: Path, show: Show) -> dict[str, Any]:
    """Serve, give every role work, feed and load it while sampling; the figures. The
    data directory holds `load-paths.json` already."""
    ports = {role: _free_port() for role in ROLES}
    env = _environment(data, ports, plan)
    settings = Settings(data_dir=data)
    owner, pusher = await asyncio.to_thread(make_tenant, settings)
    show(Text(f"starting every role (`hubbub serve`); their log: {log_path}"))
    async with serving(data, log_path, env, ports) as served:
        show(Text(f"every role ok after {served.startup_s} s; saving searches and watches"))
        feed_args = (served.base, str(plan.rate), str(plan.pages), str(plan.seed))
        feeder = Helper(_helper_argv("feed", *feed_args), {**env, TOKEN: pusher}, log_path)
        load_args = (served.base, str(plan.http_rate), str(data / "load-paths.json"))
        loader = Helper(_helper_argv("load", *load_args), {**env, TOKEN: owner}, log_path)
        try:
            giving = time.perf_counter()
            work = await give_work(served.base, owner)
            work_setup_s = round(time.perf_counter() - giving, 1)
            show(
                Text(f"introducing the {plan.pages:,} accounts; waiting for mentions to fold them")
            )
            introduced = await introduce_population(served, settings, pusher, plan)
            await feeder.start()
            await loader.start()
            watcher, measured_s = await _watch(plan, settings, served, feeder, loader, show)
        finally:
            await feeder.stop()
            await loader.stop()
        result = summarize(plan, served, watcher, work, feeder.last, loader.last, measured_s)
        return result | {"work_setup_s": work_setup_s} | introduced


async def introduce_population(
    served: Serving, settings: Settings, token: str, plan: SoakPlan
) -> dict[str, Any]:
    """`introduce` the plan's accounts through the gateway, then wait until mentions has
    folded every page event up to the log's head, so that the run starts from there:
    how many lines, and the seconds both took."""
    from hubbub.bootstrap import open_event_log  # not in the helper processes: 4 s

    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=served.base, headers=headers, timeout=REQUEST_TIMEOUT_S, trust_env=False
    ) as client:
        lines = await introduce(client, plan.pages, plan.seed)
    log = await open_event_log(settings)
    try:
        stats = await log.stats()
    finally:
        await log.close()
    head = next((t.last_position for t in stats.topics if t.topic == PAGES), 0)
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5, trust_env=False) as plain:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                health = (await plain.get(f"{served.urls['mentions']}/healthz")).json()
                if int(health["positions"][PAGES]) >= head:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"mentions did not fold the population's {head} page events")
            await asyncio.sleep(0.5)
    return {"introduced": lines, "introduce_s": round(time.perf_counter() - started, 1)}


async def _watch(
    plan: SoakPlan,
    settings: Settings,
    served: Serving,
    feeder: Helper,
    loader: Helper,
    show: Show,
) -> tuple[Watcher, float]:
    """Sample the platform for the plan's minutes, stop the feeder and the load, and
    sample once more when their last answers have had their effects."""
    from hubbub.bootstrap import open_event_log  # not in the helper processes: 4 s

    log = await open_event_log(settings)
    log_watch = LogWatch(served.log)
    log_watch.skip_to_end()
    try:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as plain:
            watcher = Watcher(served, log, feeder, loader, log_watch, plain)
            try:
                measured_s = await _sample_until_done(plan, watcher, show)
            finally:
                await feeder.stop()
                await loader.stop()
            await asyncio.sleep(min(plan.sample_s, 2.0))
            await watcher.sample(time.monotonic() - watcher.started)
            return watcher, measured_s
    finally:
        await log.close()


async def _sample_until_done(plan: SoakPlan, watcher: Watcher, show: Show) -> float:
    """Once the feeder and the load report, sample every `sample_s` for the plan's
    minutes; the seconds measured."""
    await _until_reporting(watcher.feeder, watcher.loader)
    await watcher.sample(0.0)
    started = watcher.started = time.monotonic()
    end = started + plan.minutes * 60
    n = 1
    while (now := time.monotonic()) < end:
        await asyncio.sleep(max(0.0, min(started + n * plan.sample_s, end) - now))
        n += 1
        await watcher.sample(time.monotonic() - started)
        show(render(plan, watcher))
        for helper, name in ((watcher.feeder, "feeder"), (watcher.loader, "HTTP load")):
            if not helper.running():
                path = watcher.log_watch.path
                raise RuntimeError(f"the soak's {name} process stopped; see {path}")
    return time.monotonic() - started


async def _until_reporting(*helpers: Helper) -> None:
    """Wait until each helper has said how it does (once its imports are done), so
    that the clock starts with the load, not with Python starting."""
    deadline = time.monotonic() + 120
    while not all(helper.last for helper in helpers):
        if not all(helper.running() for helper in helpers) or time.monotonic() > deadline:
            raise RuntimeError("the soak's feeder or load did not start (see the log)")
        await asyncio.sleep(0.1)


def _growth(before: float, after: float) -> float:
    return round((after - before) / before * 100, 1) if before else 0.0


def _slope_mb_per_h(samples: Sequence[Sample], role: str) -> float:
    points = [(s.t_s, s.rss_mb[role]) for s in samples if role in s.rss_mb]
    if len(points) < 3 or points[-1][0] <= points[0][0]:
        return 0.0
    slope = statistics.linear_regression([t for t, _ in points], [m for _, m in points]).slope
    return round(slope * 3600, 1)


def memory(samples: Sequence[Sample], warmup_s: float) -> dict[str, Any]:
    """RSS after the warm-up and at the end, growth between them, per role and in all."""
    settled = [s for s in samples if s.t_s >= warmup_s] or list(samples)
    first, last = settled[0], samples[-1]
    roles = sorted(set(first.rss_mb) & set(last.rss_mb))
    return {
        "rss_growth_pct": _growth(first.rss_mb[TOTAL], last.rss_mb[TOTAL]),
        "rss_growth_pct_by_role": {
            role: _growth(first.rss_mb[role], last.rss_mb[role]) for role in roles
        },
        "rss_mb_after_warmup": {role: first.rss_mb[role] for role in roles},
        "rss_mb_end": {role: last.rss_mb[role] for role in roles},
        "rss_mb_peak": {role: max(s.rss_mb.get(role, 0.0) for s in samples) for role in roles},
        "rss_slope_mb_per_h": {role: _slope_mb_per_h(settled, role) for role in roles},
        "cpu_cores_by_role": _cores(first, last),
    }


def _cores(first: Sample, last: Sample) -> dict[str, float]:
    """The cores each role kept busy on average between two samples; a role whose CPU
    time went back (restarted in between) is left out."""
    span = last.t_s - first.t_s
    if span <= 0:
        return {}
    return {
        role: round((last.cpu_s[role] - first.cpu_s[role]) / span, 2)
        for role in sorted(set(first.cpu_s) & set(last.cpu_s))
        if last.cpu_s[role] >= first.cpu_s[role]
    }


def summarize(
    plan: SoakPlan,
    served: Serving,
    watcher: Watcher,
    work: dict[str, int],
    feed_last: dict[str, Any],
    load_last: dict[str, Any],
    measured_s: float,
) -> dict[str, Any]:
    """The run's figures (see the module's docstring), with the curves drawn."""
    warmup_s = plan.minutes * 60 * plan.warmup_share
    heads, first = watcher.heads, watcher.first_heads
    return {
        "benchmark": "soak",
        "minutes": plan.minutes,
        "measured_s": round(measured_s, 1),
        "startup_s": served.startup_s,
        "machine_cpus": os.cpu_count(),
        "analytics_memory_limit": plan.analytics_memory_limit,
        **_rates(plan, watcher, feed_last, measured_s, warmup_s),
        **memory(watcher.samples, warmup_s),
        "warmup_s": round(warmup_s, 1),
        **_lags(watcher, warmup_s),
        **_errors(watcher, feed_last, load_last),
        **_http(plan, load_last),
        "work": {
            **work,
            "matches": heads.get(MATCHES, 0) - first.get(MATCHES, 0),
            "pages_seen": heads.get(PAGES, 0),
            "ingest_accepted": int(feed_last.get("accepted", 0)),
        },
        "samples": len(watcher.samples),
        "sample_s": plan.sample_s,
        "plot": str(draw(plan, watcher.samples, warmup_s)),
        "curves": str(write_samples(plan, watcher.samples)),
        "log": str(served.log),
    }


def _rates(
    plan: SoakPlan,
    watcher: Watcher,
    feed_last: dict[str, Any],
    measured_s: float,
    warmup_s: float,
) -> dict[str, Any]:
    """Source events ingest answered for, and log appends, a second; how late the
    feeder ran, and how long the platform held it back."""
    answered = int(feed_last.get("answered", 0)) - watcher.answered_at_start
    loaded = [s for s in watcher.samples if warmup_s <= s.t_s <= measured_s]
    appended = sum(watcher.heads.get(t, 0) - watcher.first_heads.get(t, 0) for t in FIREHOSE)
    return {
        "target_events_per_s": plan.rate,
        "events_per_s": round(answered / measured_s),
        "events_per_s_after_warmup": round(
            statistics.fmean(s.events_per_s for s in loaded) if loaded else 0.0
        ),
        "log_events_per_s": round(appended / measured_s),
        "events": answered,
        "feeder_late_s": float(feed_last.get("late_s", 0.0)),
        "feeder_waited_s": float(feed_last.get("waited_s", 0.0)),
    }


def _lags(watcher: Watcher, warmup_s: float) -> dict[str, Any]:
    samples = watcher.samples
    settled = [lag for s in samples if s.t_s >= warmup_s for lag in s.lag_s.values()]
    return {
        "max_lag_s": max((lag for s in samples for lag in s.lag_s.values()), default=0.0),
        "max_lag_s_after_warmup": max(settled, default=0.0),
        "max_lag_s_by_role": {
            role: max((s.lag_s.get(role, 0.0) for s in samples), default=0.0)
            for role in sorted({role for s in samples for role in s.lag_s})
        },
        "lag_s_end_by_topic": watcher.lag_by_topic,
    }


def _errors(
    watcher: Watcher, feed_last: dict[str, Any], load_last: dict[str, Any]
) -> dict[str, Any]:
    errors = watcher.errors()
    return {
        "errors": sum(errors.values()),
        "error_detail": errors,
        "error_examples": [
            *watcher.log_watch.examples,
            *sorted(watcher.failing_tasks),
            *(f"feeder: {why}" for why in [feed_last.get("last_error")] if why),
            *(f"load: {why}" for why in [load_last.get("last_error")] if why),
        ],
        "restarts_by_role": watcher.log_watch.restarts,
        "health_unanswered": watcher.unanswered_health,
        "gateway_found_down": watcher.log_watch.upstream_down,
    }


def _http(plan: SoakPlan, load_last: dict[str, Any]) -> dict[str, Any]:
    http = load_last.get("summary") or {}
    every = http.get("all", {})
    return {
        "http_rate": plan.http_rate,
        "http_requests": int(every.get("requests", 0)),
        "http_p50_ms": every.get("p50_ms", 0.0),
        "http_p99_ms": every.get("p99_ms", 0.0),
        "http_by_kind": {kind: figures for kind, figures in http.items() if kind != "all"},
    }


def check_room(plan: SoakPlan, data: Path) -> None:
    """Fail at once, saying how much is needed, when the disk under `data` cannot hold
    what the run appends (`BYTES_PER_EVENT` for every event)."""
    needed = plan.rate * plan.minutes * 60 * BYTES_PER_EVENT
    free = shutil.disk_usage(data).free
    if free < needed:
        raise RuntimeError(
            f"the soak needs about {needed / 2**30:.1f} GiB under {data.parent} and"
            f" {free / 2**30:.1f} GiB are free: set TMPDIR to a larger disk, or run fewer"
            " minutes or events a second"
        )


def run_soak_benchmark(plan: SoakPlan, show: Show = lambda _: None) -> dict[str, Any]:
    """Run the soak (see the module's docstring) in a fresh data directory; the figures."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-soak-") as folder:
        data = Path(folder)
        check_room(plan, data)
        log_path = plan.plot.with_suffix(".log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_bytes(b"")
        paths = load_paths(plan.pages, datetime.now(UTC), plan.seed)
        (data / "load-paths.json").write_text(json.dumps(paths))
        result = asyncio.run(_run(plan, data, log_path, show))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


# -- what people see ---------------------------------------------------------------------


def render(plan: SoakPlan, watcher: Watcher) -> RenderableType:
    """The run so far: progress, rates, memory, lag and cores busy per role, the load,
    errors."""
    sample = watcher.samples[-1]
    total_s = plan.minutes * 60
    done = f"{sample.t_s / 60:5.1f} of {plan.minutes:g} min"
    bar = ProgressBar(total=total_s, completed=min(sample.t_s, total_s), width=40)
    head = Table.grid(padding=(0, 2))
    head.add_row(bar, done)
    http = watcher.loader.last
    p99 = ", ".join(f"{kind} {ms:,.0f} ms" for kind, ms in sample.http_p99_ms.items())
    figures = Text(
        f"events/s {sample.events_per_s:,.0f} of {plan.rate:,}"
        f" · log appends/s {sample.log_events_per_s:,.0f}\n"
        f"HTTP {int(http.get('requests', 0)):,} answers · p99 since the last sample: {p99}"
    )
    cores = _cores(watcher.samples[-2], sample) if len(watcher.samples) > 1 else {}
    roles = Table("role", "RSS MB", "lag s", "cores", box=None)
    for role in sorted(sample.rss_mb):
        lag, busy = sample.lag_s.get(role), cores.get(role)
        roles.add_row(
            role,
            f"{sample.rss_mb[role]:,.0f}",
            "" if lag is None else f"{lag:.2f}",
            "" if busy is None else f"{busy:.2f}",
        )
    errors = watcher.errors()
    style = "red" if any(errors.values()) else "green"
    shown = ", ".join(f"{k} {v}" for k, v in errors.items() if v) or "none"
    return Group(head, figures, roles, Text(f"errors: {shown}", style=style))


def draw(plan: SoakPlan, samples: Sequence[Sample], warmup_s: float) -> Path:
    """The curves as a PNG at the plan's `plot`: RSS in all and per role, lag per role,
    events a second, the load's p99 per sample; the warm-up shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t_s / 60 for s in samples]
    figure, axes = plt.subplots(5, 1, figsize=(11, 16), sharex=True)
    total, rss, lag, rate, p99 = axes
    total.plot(minutes, [s.rss_mb[TOTAL] for s in samples], "k-", label="every process")
    for role in sorted({r for s in samples for r in s.rss_mb} - {TOTAL}):
        rss.plot(minutes, [s.rss_mb.get(role, float("nan")) for s in samples], label=role)
    for role in sorted({r for s in samples for r in s.lag_s}):
        lag.plot(minutes, [s.lag_s.get(role, float("nan")) for s in samples], label=role)
    rate.plot(minutes[1:], [s.events_per_s for s in samples[1:]], label="source events/s")
    rate.plot(minutes[1:], [s.log_events_per_s for s in samples[1:]], label="log appends/s")
    rate.axhline(plan.rate, color="grey", linestyle=":", label="target")
    for kind in sorted({k for s in samples for k in s.http_p99_ms}):
        p99.plot(minutes, [s.http_p99_ms.get(kind, float("nan")) for s in samples], label=kind)
    titles = (
        "RSS, every process (MB)", "RSS per role (MB)", "lag per role (s)",
        "events per second", "HTTP p99 per sample (ms)",
    )  # fmt: skip
    for axis, title in zip(axes, titles, strict=True):
        axis.set_title(title)
        axis.axvspan(0, warmup_s / 60, color="grey", alpha=0.15)
        axis.legend(loc="upper left", fontsize="small", ncol=3)
        axis.grid(alpha=0.3)
    p99.set_xlabel("minutes (shaded: the warm-up)")
    figure.suptitle(f"hubbub soak: {plan.minutes:g} min at {plan.rate:,} events/s")
    figure.tight_layout()
    plan.plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(plan.plot, dpi=90)
    plt.close(figure)
    return plan.plot


def write_samples(plan: SoakPlan, samples: Sequence[Sample]) -> Path:
    """The curves' samples beside the plot (`soak.samples.jsonl`, one JSON object a
    sample), to read a moment of the run again."""
    path = plan.plot.with_name(f"{plan.plot.stem}.samples.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for sample in samples:
            out.write(json.dumps(asdict(sample)) + "\n")
    return path


# -- the helper processes' entry point ---------------------------------------------------


async def _helper_main(args: argparse.Namespace, paths: list[tuple[str, str]]) -> None:
    """Run the feeder or the load until SIGTERM, a JSON object a second on stdout."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    token = os.environ[TOKEN]
    client = httpx.AsyncClient(
        base_url=args.gateway,
        headers={"Authorization": f"Bearer {token}"},
        timeout=REQUEST_TIMEOUT_S,
        trust_env=False,
        limits=httpx.Limits(max_connections=REQUESTS_IN_FLIGHT),
    )
    counts: FeedCounts | LoadCounts
    if args.helper == "feed":
        counts = FeedCounts()
        work = feed(client, args.rate, args.pages, args.seed, stop, counts)
    else:
        counts = LoadCounts()
        work = load(client, paths, args.rate, stop, counts)

    def report(last: bool = False) -> None:
        body = msgspec.to_builtins(counts) if isinstance(counts, FeedCounts) else counts.report()
        if last and isinstance(counts, LoadCounts):
            body["summary"] = counts.summary()
        sys.stdout.write(json.dumps(body) + "\n")
        sys.stdout.flush()

    async with client:
        working = asyncio.create_task(work)
        while not working.done():
            await asyncio.wait({working}, timeout=REPORT_EVERY_S)
            report()
        await working
    report(last=True)


def main() -> None:
    """`python -m hubbub.benchmarks.soak feed|load ...`: a helper process of the run."""
    parser = argparse.ArgumentParser(description="The soak benchmark's helper processes.")
    helpers = parser.add_subparsers(dest="helper", required=True)
    feeder = helpers.add_parser("feed", help="Push the synthetic firehose through the gateway.")
    feeder.add_argument("gateway")
    feeder.add_argument("rate", type=int)
    feeder.add_argument("pages", type=int)
    feeder.add_argument("seed", type=int)
    loader = helpers.add_parser("load", help="GET the load's paths through the gateway.")
    loader.add_argument("gateway")
    loader.add_argument("rate", type=float)
    loader.add_argument("paths", help="A JSON file of [kind, path] pairs.")
    args = parser.parse_args()
    paths = []
    if args.helper == "load":
        paths = [(kind, path) for kind, path in json.loads(Path(args.paths).read_text())]
    asyncio.run(_helper_main(args, paths))


if __name__ == "__main__":
    main()
