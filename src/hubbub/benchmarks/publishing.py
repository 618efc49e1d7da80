"""The publishing benchmark: how late jobs are published when many fall due at once, how
many posts a second reach each network's server, and that none is published twice or
skipped.

- **Servers.** The Mastodon sandbox (`hubbub.sandbox.mastodon`, the API as documented,
  its rate limit raised out of the way) serves in a thread of this process; Bluesky's
  own PDS (`hubbub.sandbox.bluesky`, `make pds`) runs as a Node process, when installed.
- **Publishers.** `replicas` processes of `hubbub serve --role publishing` on one data
  directory (SQLite, or PostgreSQL with `--relational-url`), as a deployment runs them.
- **Accounts.** The jobs are spread over `accounts` Mastodon accounts (and
  `pds_accounts` on the PDS), as a platform's are over its tenants' accounts: each
  account's budget (Mastodon's 300 requests in 5 minutes, Bluesky's 5,000 points an
  hour) is spent by the publishers, so one account could not take 1,000 posts a second.
- **Lateness.** `jobs` posts to the Mastodon channels fall due evenly over `window_s`
  seconds, starting a few seconds after the publishers answer. A job's lateness is the
  moment it was recorded published minus its due time; `lateness_p50_ms` and
  `lateness_p99_ms` over all of them.
- **Rates.** `burst` jobs due at once on the Mastodon channels, and `pds_burst` on the
  Bluesky channels: posts published per second from the first due to the last recorded
  (`mastodon_posts_per_s`, `pds_posts_per_s`).
- **Exactly once.** Every status on the sandbox and every record in the PDS repository
  is counted against the jobs: `duplicates` (a text published more than once) and
  `skipped` (a job not published) over all runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import httpx
import sqlalchemy as sa

from hubbub.bootstrap import open_publishing
from hubbub.kernel.clock import SystemClock
from hubbub.publishing.ports import OPEN_STATES
from hubbub.publishing.sql import jobs, posts
from hubbub.publishing.tid import tid
from hubbub.sandbox.mastodon import MastodonState, create_app
from hubbub.settings import Settings

FAR_US: Final = 4_102_444_800_000_000  # 2100-01-01: where jobs wait until the start
LEAD_S: Final = 3.0
LOOPBACK: Final = "127.0.0.0/8"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def _mastodon_sandbox(state: MastodonState) -> Iterator[str]:
    """The sandbox served by uvicorn on a free port, in a thread of its own."""
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(state), host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        timeout_keep_alive=60, backlog=4096,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _publishers(data: Path, replicas: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    children = []
    for _ in range(replicas):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "hubbub", "--data-dir", str(data), "serve",
                   "--role", "publishing", "--port", str(port)]  # fmt: skip
        child = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        child.port = port  # type: ignore[attr-defined]
        children.append(child)
    for child in children:
        _until_answering(child)
    return children


def _until_answering(child: subprocess.Popen[bytes], within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    url = f"http://127.0.0.1:{child.port}/healthz"  # type: ignore[attr-defined]
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError("a publishing process exited as it started")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("a publishing process did not answer within a minute")


def _schedule(url: str, channels: list[str], count: int, tag: str) -> list[str]:
    """`count` posts spread over `channels` in turn, waiting far in the future, written in
    one transaction as `JobStore.schedule` writes them one by one (each job its own TID);
    answers their texts."""
    now = time.time_ns() // 1000
    texts = [f"{tag} {n}" for n in range(count)]
    post_rows, job_rows = [], []
    for n, text in enumerate(texts):
        post = secrets.token_hex(8)
        post_rows.append({"id": post, "version": 1, "tenant": "bench", "author": "bench",
                          "text": text, "variants": {}, "language": None, "spoiler": None,
                          "visibility": "public", "created_us": now})  # fmt: skip
        job_rows.append({"id": secrets.token_hex(8), "tenant": "bench", "post": post,
                         "version": 1, "channel": channels[n % len(channels)],
                         "due_us": FAR_US + n,
                         "state": "scheduled", "idempotency_key": tid(), "check_first": False,
                         "attempts": 0, "updated_us": now})  # fmt: skip
    engine = sa.create_engine(url)
    try:
        with engine.begin() as db:
            db.execute(posts.insert(), post_rows)
            db.execute(jobs.insert(), job_rows)
    finally:
        engine.dispose()
    return texts


def _release(url: str, channels: list[str], start_us: int, window_us: int, count: int) -> None:
    """Bring the waiting jobs of `channels` due from `start_us`, evenly over `window_us`."""
    step = window_us / max(1, count)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as db:
            db.execute(
                jobs.update()
                .where(jobs.c.channel.in_(channels) & (jobs.c.due_us >= FAR_US))  # waiting only
                .values(due_us=start_us + ((jobs.c.due_us - FAR_US) * step).cast(sa.BigInteger))
            )
    finally:
        engine.dispose()


def _until_final(url: str, channels: list[str], within_s: float) -> list[tuple[str, int, int]]:
    """Wait until no job of `channels` is open (or `within_s` passed); answers every job's
    (state, due, last change)."""
    engine = sa.create_engine(url)
    mine = jobs.c.channel.in_(channels)
    still_open = mine & jobs.c.state.in_(OPEN_STATES)
    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            with engine.connect() as db:
                left = db.execute(sa.select(sa.func.count()).where(still_open)).scalar_one()
            if not left:
                break
            time.sleep(0.5)
        with engine.connect() as db:
            rows = db.execute(sa.select(jobs.c.state, jobs.c.due_us, jobs.c.updated_us).where(mine))
            return [(row.state, row.due_us, row.updated_us) for row in rows]
    finally:
        engine.dispose()


def run_publishing_benchmark(
    *,
    jobs_count: int,
    window_s: float,
    burst: int,
    pds_burst: int,
    replicas: int,
    relational_url: str | None,
    base: Settings,
    accounts: int = 1000,
    pds_accounts: int = 10,
) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "publishing", "cpu_count": os.cpu_count(),
                              "replicas": replicas, "accounts": accounts,
                              "pds_accounts": pds_accounts}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-publishing-") as tmp:
        data = Path(tmp) / "data"
        settings = base.model_copy(
            update={
                "data_dir": data,
                "publish_allowed_networks": [ipaddress.ip_network(LOOPBACK)],
                **({"relational_url": relational_url} if relational_url else {}),
            }
        )
        env = {"HUBBUB_PUBLISH_ALLOWED_NETWORKS": LOOPBACK, "HUBBUB_LOG_FORMAT": "json",
               "HUBBUB_LOG_LEVEL": "warning"}  # fmt: skip
        if relational_url:
            env["HUBBUB_RELATIONAL_URL"] = relational_url
        asyncio.run(_measure(settings, data, env, jobs_count, window_s, burst, pds_burst,
                             replicas, accounts, pds_accounts, result))  # fmt: skip
    result["targets"] = {"lateness_p99_ms": 1000.0, "mastodon_posts_per_s": 1000.0}
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


async def _measure(
    settings: Settings, data: Path, env: dict[str, str], jobs_count: int, window_s: float,
    burst: int, pds_burst: int, replicas: int, accounts: int, pds_accounts: int,
    result: dict[str, Any],
) -> None:  # fmt: skip
    url = settings.relational
    sandbox = MastodonState()
    sandbox.config.rate_limit = 1_000_000_000
    logins = [sandbox.add_account(f"bench{n}") for n in range(accounts)]
    parts = open_publishing(settings, SystemClock(), None)
    children: list[subprocess.Popen[bytes]] = []
    try:
        with _mastodon_sandbox(sandbox) as mastodon_url:
            channels = await _mastodon_channels(parts, mastodon_url, logins)
            texts = await asyncio.to_thread(_schedule, url, channels, jobs_count, "due over")
            children = await asyncio.to_thread(_publishers, data, replicas, env)
            cpu_at_start = _cpu_s(children)

            # Lateness: due evenly over the window, from a moment just ahead.
            start_us = time.time_ns() // 1000 + int(LEAD_S * 1e6)
            await asyncio.to_thread(
                _release, url, channels, start_us, int(window_s * 1e6), jobs_count
            )
            done = await asyncio.to_thread(_until_final, url, channels, window_s + 600)
            late = [(changed - due) / 1000 for st, due, changed in done if st == "published"]
            result.update(
                jobs=jobs_count, window_s=window_s,
                lateness_p50_ms=round(statistics.median(late), 1) if late else None,
                lateness_p99_ms=round(_percentile(late, 0.99), 1) if late else None,
                lateness_max_ms=round(max(late), 1) if late else None,
            )  # fmt: skip

            # Throughput: a burst due at once.
            texts += await asyncio.to_thread(_schedule, url, channels, burst, "due at once")
            burst_start = time.time_ns() // 1000 + int(LEAD_S * 1e6)
            await asyncio.to_thread(_release, url, channels, burst_start, 0, burst)
            done = await asyncio.to_thread(_until_final, url, channels, 600)
            result["mastodon_posts_per_s"] = _rate(done, burst_start)
            published_count = sum(1 for st, _, _ in done if st == "published")
            result["publisher_cpu_ms_per_post"] = round(
                (_cpu_s(children) - cpu_at_start) * 1000 / max(1, published_count), 3
            )
            published = Counter(
                s.text for login in logins for s in sandbox.statuses_by(login.account)
            )
            result["states"] = dict(Counter(st for st, _, _ in done))
        duplicates = sum(n - 1 for n in published.values() if n > 1)
        skipped = sum(1 for text in texts if text not in published)
        result["pds_posts_per_s"] = await _pds_rate(parts, url, pds_burst, pds_accounts, result)
        result["duplicates"] = duplicates + result.pop("pds_duplicates", 0)
        result["skipped"] = skipped + result.pop("pds_skipped", 0)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                await asyncio.to_thread(child.wait, 30)
            except subprocess.TimeoutExpired:
                child.kill()
        await parts.close()


async def _mastodon_channels(parts: Any, mastodon_url: str, logins: list[Any]) -> list[str]:
    """A channel per sandbox account: the first connected as a person connects one (its
    limits read from the instance), the others written beside it with the same limits."""
    first = await parts.service.add_channel(
        "bench", "mastodon", "bench0@127.0.0.1", mastodon_url,
        {"access_token": logins[0].access_token},
    )  # fmt: skip
    store, box = parts.service.store, parts.service.box
    others = [
        replace(first, id=secrets.token_hex(8), account=f"bench{n}@127.0.0.1",
                sealed_credentials=box.seal(json.dumps({"access_token": login.access_token})))
        for n, login in enumerate(logins[1:], start=1)
    ]  # fmt: skip
    for channel in others:
        await asyncio.to_thread(store.add_channel, channel)
    return [first.id, *(channel.id for channel in others)]


def _cpu_s(children: list[subprocess.Popen[bytes]]) -> float:
    """CPU seconds the publishing processes spent so far (user and system, from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for child in children:
        fields = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _rate(done: list[tuple[str, int, int]], start_us: int) -> float:
    """Jobs published a second, from when they fell due (together, at `start_us`) to the
    last one recorded published."""
    published = [changed for state, due, changed in done if state == "published"
                 and due == start_us]  # fmt: skip
    if not published:
        return 0.0
    return round(len(published) / max((max(published) - start_us) / 1e6, 1e-6), 1)


async def _pds_rate(
    parts: Any, url: str, count: int, accounts: int, result: dict[str, Any]
) -> float | None:
    """Posts a second to Bluesky's own PDS, over `accounts` accounts, when `make pds`
    installed it (else None and the reason in `pds_note`)."""
    from hubbub.sandbox.bluesky import PdsMissing, local_pds

    if count <= 0:
        return None
    try:
        async with local_pds() as pds:
            authors, channels = [], []
            for _ in range(accounts):
                author = await pds.create_account()
                password = await pds.create_app_password(author)
                made = await parts.service.add_channel(
                    "bench", "bluesky", author.handle, pds.url,
                    {"identifier": author.handle, "password": password},
                )  # fmt: skip
                authors.append(author)
                channels.append(made.id)
            texts = await asyncio.to_thread(_schedule, url, channels, count, "to the PDS")
            start = time.time_ns() // 1000 + int(LEAD_S * 1e6)
            await asyncio.to_thread(_release, url, channels, start, 0, count)
            done = await asyncio.to_thread(_until_final, url, channels, 600)
            seen = Counter([text for author in authors for text in await pds.records(author.did)])
            result["pds_duplicates"] = sum(n - 1 for n in seen.values() if n > 1)
            result["pds_skipped"] = sum(1 for text in texts if text not in seen)
            return _rate(done, start)
    except PdsMissing as missing:
        result["pds_note"] = str(missing)
        return None
