"""The mentions benchmark: build the index over N pages, then time it in process, over
HTTP with the load in another process, under follower updates, and against postgres,
in process and over HTTP (the same role served with HUBBUB_MENTIONS_BACKEND=postgres).

Pages come from the synthetic population (`hubbub.synthetic.population.page`: multilingual
names, unique handles), generated as a stream so the benchmark holds no object per page.
Followers are Zipf-distributed over a random ranking. Queries are 1 to 4 character
prefixes (one query per keystroke, so each length is as likely) of a handle or name
word of pages drawn by popularity, since people mostly type the names of accounts many
others follow.

In-process figures: `p50_us`/`p99_us` time the index answering a prefix with page ids
and followers (`PageStore.top_k`); `answer_json_*` the whole answer of the API, query
parsing and JSON included; `suggest_*` the same as Python objects.

Against postgres: `vs_postgres_p99_ratio` is postgres's in-process p99 over the memory
backend's on the same prefixes; `vs_postgres_http_p99_ratio` the same over HTTP, at the
concurrency of the memory backend's headline run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
import psutil

from hubbub.kernel.signing import RequestSigner
from hubbub.mentions.memory import MemoryMentions
from hubbub.mentions.normalize import normalize
from hubbub.mentions.pages import Page
from hubbub.mentions.store import PageStore
from hubbub.synthetic.population import page as synthetic_page

ZIPF_EXPONENT = 1.1
TOP_FOLLOWERS = 10_000_000
UPDATES = 50_000

Progress = Callable[[str], None]


def _followers(count: int, seed: int) -> npt.NDArray[np.int64]:
    """Followers of each page: the most followed has ten million, by a random ranking."""
    ranks = np.random.default_rng(seed).permutation(count).astype(np.float64) + 1
    followers: npt.NDArray[np.int64] = (TOP_FOLLOWERS / ranks**ZIPF_EXPONENT).astype(np.int64)
    return followers


def synthetic_pages(followers: npt.NDArray[np.int64]) -> Iterator[Page]:
    for index in range(len(followers)):
        made = synthetic_page(index)
        yield Page(made.did, "jetstream", made.handle, made.display_name, int(followers[index]))


def _prefixes(followers: npt.NDArray[np.int64], count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed + 1)
    weights = followers.astype(np.float64) + 1
    drawn = rng.choice(len(followers), size=count, p=weights / weights.sum())
    lengths = rng.integers(1, 5, size=count)
    found = []
    for index, length in zip(drawn, lengths, strict=True):
        made = synthetic_page(int(index))
        keys = Page(made.did, "", made.handle, made.display_name).keys()
        found.append(keys[int(rng.integers(len(keys)))][: int(length)])
    return found


def _ms_percentiles(seconds: list[float], prefix: str) -> dict[str, float]:
    ordered = sorted(seconds)
    if not ordered:
        return {}
    return {
        f"{prefix}p50_ms": round(statistics.median(ordered) * 1000, 3),
        f"{prefix}p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 3),
    }


def _us(ordered: list[float], q: float) -> float:
    return round(ordered[int(q * (len(ordered) - 1))] * 1e6, 1)


def _rss_mb() -> float:
    return round(float(psutil.Process().memory_info().rss) / 2**20, 1)


def _time_queries(query: Callable[[str], object], prefixes: list[str]) -> list[float]:
    latencies = []
    clock = time.perf_counter
    for prefix in prefixes:
        started = clock()
        query(prefix)
        latencies.append(clock() - started)
    return latencies


HTTP_CONNECTIONS = (2, 4, 8, 16, 32)
HTTP_P99_TARGET_MS = 2.0
WRK_TIMEOUT_S = 10  # wrk's own 2 s would drop the slowest postgres answers from its p99
_WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("HUBBUB_PATHS")) do paths[#paths + 1] = line end
local headers = {}
for line in io.lines(os.getenv("HUBBUB_HEADERS")) do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  headers[name] = value
end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], headers)
end
"""
# A role answers only requests the gateway signed. The load calls the role directly with
# headers signed once, so the role is started with a secret of the benchmark's own and a
# signature life longer than any run (wrk sends the same headers all along).
_SIGNATURE_TTL_S = 86_400
_SIGNED_PATH = "/v1/mentions"


def _signed_role(env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """`env` for a role that checks signatures with a fresh secret, and the
    "Name: value" header lines that sign the benchmark's requests to it."""
    secret = secrets.token_hex(32)
    signer = RequestSigner(secret.encode(), ttl_s=_SIGNATURE_TTL_S)
    headers = signer.headers("GET", _SIGNED_PATH, "bench", "bench")
    lines = [f"{name.decode()}: {value.decode()}" for name, value in headers]
    signed_env = {
        **env,
        "HUBBUB_INTERNAL_SECRET": secret,
        "HUBBUB_SIGNATURE_TTL_S": str(_SIGNATURE_TTL_S),
    }
    return signed_env, lines


def _serve_and_load(
    workdir: Path,
    prefixes: list[str],
    seconds: float,
    replicas: int,
    progress: Progress,
    backend: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start `hubbub serve --role mentions --replicas N` on the snapshot (or on the
    backend the `backend` environment names), then load it from another process at
    several concurrencies, `seconds` each.

    The load comes from wrk when it is installed (`apt install wrk`): written in C, it
    leaves the cores to the server. Otherwise it comes from `hubbub.benchmarks.loadgen`,
    which spends about as much CPU per request as the server, on the same two cores.
    Returns the runs, how long the replicas took to listen, and their memory.
    """
    port = _free_port()
    env, headers = _signed_role(
        {
            **os.environ,
            "HUBBUB_LOG_LEVEL": "warning",
            "HUBBUB_DATA_DIR": str(workdir),
            **(backend or {}),
        }
    )
    command = [sys.executable, "-m", "hubbub", "serve", "--role", "mentions", "--port", str(port)]
    started = time.perf_counter()
    server = subprocess.Popen(
        [*command, "--replicas", str(replicas)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tool = "wrk" if shutil.which("wrk") else "hubbub.benchmarks.loadgen"
    try:
        ready_s = _wait_listening(port, server, started, replicas)
        paths = workdir / "paths.txt"
        paths.write_text(
            "\n".join(f"{_SIGNED_PATH}?q={quote(prefix)}&limit=10" for prefix in prefixes)
        )
        runs = []
        for connections in HTTP_CONNECTIONS:
            progress(f"HTTP: {connections} connections, {tool}")
            if tool == "wrk":
                runs.append(_wrk(port, paths, headers, seconds, connections))
            else:
                runs.append(_loadgen(port, paths, headers, seconds, connections))
        replica_memory = [_memory(child.pid) for child in psutil.Process(server.pid).children()]
    finally:
        server.terminate()
        server.wait(30)
    return {"runs": runs, "ready_s": ready_s, "memory": replica_memory, "tool": tool}


def _headline(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run quoted: the most requests/s among those whose p99 is within 2 ms (or,
    when none is, the one with the lowest p99)."""
    within = [run for run in runs if run["p99_ms"] <= HTTP_P99_TARGET_MS]
    return max(within, key=lambda run: run["rps"]) if within else min(runs, key=_p99_ms)


def _memory_http(served: dict[str, Any], replicas: int) -> dict[str, Any]:
    """The memory backend's HTTP figures."""
    runs, replica_memory, tool = served["runs"], served["memory"], served["tool"]
    best = _headline(runs)
    return {
        "restart_ready_s": round(served["ready_s"], 2),
        # The replica using most memory: all of it (`rss_mb`, the figure the targets are
        # about), its own, and the snapshot's pages it mapped (page cache, shared by the
        # replicas of a host).
        "rss_mb": max(memory["rss"] for memory in replica_memory),
        "replica_anon_mb": max(memory["anon"] for memory in replica_memory),
        "replica_file_mb": max(memory["file"] for memory in replica_memory),
        "http_replicas": replicas,
        "http_load_generator": tool,
        "http_rps": best["rps"],
        "http_p50_ms": best["p50_ms"],
        "http_p99_ms": best["p99_ms"],
        "http_connections": best["connections"],
        "http_max_rps": max(run["rps"] for run in runs),
        "http_errors": sum(run["errors"] for run in runs),
        "http_runs": runs,
    }


def _forget(snapshot: Path) -> None:
    """Drop the snapshot's files from the page cache, as after a reboot: the replicas
    then map only what they read, not what this process just wrote."""
    for path in snapshot.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _memory(pid: int) -> dict[str, float]:
    """Resident MB of a process: in all, anonymous (its own), and mapped from files."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )

    def mb(name: str) -> float:
        return round(int(fields[name].split()[0]) / 1024, 1)

    return {"rss": mb("VmRSS"), "anon": mb("RssAnon"), "file": mb("RssFile")}


def _p99_ms(run: dict[str, Any]) -> float:
    return float(run["p99_ms"])


def _wrk(
    port: int, paths: Path, headers: list[str], seconds: float, connections: int
) -> dict[str, Any]:
    script = paths.with_suffix(".lua")
    script.write_text(_WRK_SCRIPT)
    header_file = paths.with_suffix(".headers")
    header_file.write_text("\n".join(headers))
    env = {**os.environ, "HUBBUB_PATHS": str(paths), "HUBBUB_HEADERS": str(header_file)}
    done = subprocess.run(
        [
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", f"{WRK_TIMEOUT_S}s",
            "-s", str(script), f"http://127.0.0.1:{port}",
        ],
        capture_output=True, check=True, text=True, env=env,
    )  # fmt: skip
    out = done.stdout
    latency = {
        q: _wrk_ms(float(value), unit)
        # wrk pads a value in seconds ("1.64s ") and may print minutes ("1.02m").
        for q, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    }
    if set(latency) != {"50", "99"}:
        raise RuntimeError(f"wrk answered no latency distribution:\n{out}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    rps = float(re.findall(r"Requests/sec:\s+([\d.]+)", out)[0])
    return {
        "connections": connections,
        "rps": round(rps),
        "p50_ms": latency["50"],
        "p99_ms": latency["99"],
        "errors": errors,
    }


def _wrk_ms(value: float, unit: str) -> float:
    return round(value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit], 3)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_listening(
    port: int, server: subprocess.Popen[bytes], started: float, count: int
) -> float:
    """Seconds until `count` processes of the server listen on `port` (each replica
    listens once its index is loaded and caught up)."""
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the mentions server exited with {server.returncode}")
        listening = 0
        for process in [psutil.Process(server.pid), *psutil.Process(server.pid).children()]:
            with contextlib.suppress(psutil.Error):
                listening += any(
                    c.status == psutil.CONN_LISTEN and c.laddr.port == port
                    for c in process.net_connections("tcp")
                )
        if listening >= count:
            return time.perf_counter() - started
        time.sleep(0.05)


def _loadgen(
    port: int, paths: Path, headers: list[str], seconds: float, connections: int
) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable, "-m", "hubbub.benchmarks.loadgen", "--port", str(port),
            "--paths", str(paths), "--seconds", str(seconds), "--connections", str(connections),
            *(part for line in headers for part in ("--header", line)),
        ],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    found = json.loads(done.stdout)
    return {key: found[key] for key in ("connections", "rps", "p50_ms", "p99_ms", "errors")}


@contextlib.contextmanager
def _postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database for the benchmark, dropped after; yields its URL."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"hubbub_bench_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(admin_url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _against_postgres(
    url: str,
    followers: npt.NDArray[np.int64],
    prefixes: list[str],
    memory: MemoryMentions,
    progress: Progress,
) -> dict[str, Any]:
    """Load the same pages into the database at `url` and time the same queries on both
    backends, in process."""
    from hubbub.mentions.postgres import PostgresMentions

    async def work() -> dict[str, Any]:
        backend = await PostgresMentions.connect(url)
        try:
            progress("postgres: bulk load")
            started = time.perf_counter()
            await backend.bulk_load(synthetic_pages(followers))
            load_s = time.perf_counter() - started
            progress(f"postgres: {len(prefixes)} queries")
            pg: list[float] = []
            for prefix in prefixes:
                started = time.perf_counter()
                await backend.suggest(prefix)
                pg.append(time.perf_counter() - started)
        finally:
            await backend.close()
        mem = _time_queries(memory.suggest_now, prefixes)
        by_length = _ms_by_length(prefixes, pg)
        short = [i for i, prefix in enumerate(prefixes) if len(prefix) <= 2]
        pg_short = sorted(pg[i] for i in short)
        mem_short = sorted(mem[i] for i in short)
        pg.sort()
        mem.sort()
        return {
            "postgres_load_s": round(load_s, 1),
            "postgres_queries": len(prefixes),
            **_ms_percentiles(pg, "postgres_"),
            "vs_postgres_p50_ratio": round(statistics.median(pg) / statistics.median(mem)),
            "vs_postgres_p99_ratio": round(pg[int(0.99 * (len(pg) - 1))] / _p99(mem)),
            # Up to three characters come from the top table, longer ones from a range scan.
            "postgres_ms_by_length": by_length,
            "vs_postgres_short_p50_ratio": (
                round(statistics.median(pg_short) / statistics.median(mem_short)) if short else None
            ),
        }

    return asyncio.run(work())


def _postgres_http(served: dict[str, Any], memory_best: dict[str, Any] | None) -> dict[str, Any]:
    """The postgres backend's HTTP figures, and its p99 over the memory backend's at the
    concurrency of the memory backend's headline (the same load on both)."""
    runs = served["runs"]
    best = _headline(runs)
    figures: dict[str, Any] = {
        "postgres_http_rps": best["rps"],
        "postgres_http_p50_ms": best["p50_ms"],
        "postgres_http_p99_ms": best["p99_ms"],
        "postgres_http_connections": best["connections"],
        "postgres_http_max_rps": max(run["rps"] for run in runs),
        "postgres_http_errors": sum(run["errors"] for run in runs),
        "postgres_http_runs": runs,
        "vs_postgres_http_p99_ratio": None,
    }
    if memory_best is not None:
        same = next(r for r in runs if r["connections"] == memory_best["connections"])
        figures["vs_postgres_http_connections"] = same["connections"]
        figures["vs_postgres_http_p99_ratio"] = round(same["p99_ms"] / memory_best["p99_ms"], 1)
    return figures


def _ms_by_length(prefixes: list[str], seconds: list[float]) -> dict[int, dict[str, float]]:
    """p50 and p99 in ms of the queries of each length of prefix."""
    by: dict[int, list[float]] = {}
    for prefix, took in zip(prefixes, seconds, strict=True):
        by.setdefault(len(prefix), []).append(took)
    return {length: _ms_percentiles(by[length], "") for length in sorted(by)}


def _p99(ordered: list[float]) -> float:
    return ordered[int(0.99 * (len(ordered) - 1))]


def run_mentions_benchmark(
    *,
    pages: int,
    queries: int = 20_000,
    http_seconds: float = 3.0,
    http_replicas: int = 2,
    postgres_url: str | None = None,
    postgres_queries: int = 200,
    seed: int = 7,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """Run every part of the benchmark; returns the one JSON object it prints."""
    followers = _followers(pages, seed)
    rss_before = _rss_mb()
    progress(f"building the index of {pages:,} pages")
    started = time.perf_counter()
    store = PageStore.build(synthetic_pages(followers))
    build_s = time.perf_counter() - started
    build_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_built = _rss_mb()
    memory = MemoryMentions(store)

    progress(f"timing {queries:,} prefixes in process")
    prefixes = _prefixes(followers, queries, seed)
    normalized = [normalize(prefix) for prefix in prefixes]
    _time_queries(store.top_k, normalized[:1000])  # warm the kernels and caches
    index = sorted(_time_queries(store.top_k, normalized))
    whole = sorted(_time_queries(memory.suggest_now, prefixes))
    answered = sorted(_time_queries(memory.suggest_json_now, prefixes))

    progress(f"{UPDATES:,} follower updates")
    rng = np.random.default_rng(seed + 2)
    weights = followers.astype(np.float64) + 1
    drawn = rng.choice(pages, size=UPDATES, p=weights / weights.sum())
    ids = [synthetic_page(int(i)).did for i in drawn]
    started = time.perf_counter()
    for page_id in ids:
        page = store.get(page_id)
        if page is not None:
            page.followers += 1
            store.put(page)
    update_s = time.perf_counter() - started

    result: dict[str, Any] = {
        "benchmark": "mentions",
        "backend": "memory",
        "pages": pages,
        "build_s": round(build_s, 1),
        "build_rss_mb": rss_built,
        "build_peak_rss_mb": round(build_peak_mb, 1),
        "index_mb": round(store.nbytes / 2**20, 1),
        "bytes_per_page": round(store.nbytes / pages, 1),
        "queries": queries,
        "p50_us": _us(index, 0.5),
        "p99_us": _us(index, 0.99),
        "max_us": _us(index, 1.0),
        "suggest_p50_us": _us(whole, 0.5),
        "suggest_p99_us": _us(whole, 0.99),
        "answer_json_p50_us": _us(answered, 0.5),
        "answer_json_p99_us": _us(answered, 0.99),
        "updates_per_s": round(UPDATES / update_s),
        "rss_before_build_mb": rss_before,
    }
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-mentions-") as tmp:
        workdir = Path(tmp)
        progress("saving the snapshot")
        started = time.perf_counter()
        memory.save(workdir / "mentions")
        _forget(workdir / "mentions")
        result["snapshot_save_s"] = round(time.perf_counter() - started, 2)
        memory_best = None
        if http_seconds > 0:
            served = _serve_and_load(workdir, prefixes, http_seconds, http_replicas, progress)
            result |= _memory_http(served, http_replicas)
            memory_best = _headline(served["runs"])
        if not postgres_url:
            return result | {"vs_postgres_p99_ratio": None, "vs_postgres_http_p99_ratio": None}
        with _postgres_database(postgres_url) as url:
            sample = prefixes[:postgres_queries]
            result |= _against_postgres(url, followers, sample, memory, progress)
            if http_seconds > 0:
                progress("postgres over HTTP")
                backend = {
                    "HUBBUB_MENTIONS_BACKEND": "postgres",
                    "HUBBUB_MENTIONS_POSTGRES_URL": url,
                }
                served = _serve_and_load(
                    workdir, prefixes, http_seconds, http_replicas, progress, backend
                )
                result |= _postgres_http(served, memory_best)
    return result
