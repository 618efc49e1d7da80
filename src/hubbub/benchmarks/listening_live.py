"""The listening benchmark's live half: from a post appended to the log to its match on
an open live stream, at a firehose rate, with thousands of searches saved.

- **Searches.** In a fresh data directory, `searches` searches of the matching half's
  mix (`search_texts`) are announced on `control` as tenants' `SearchChanged`, and one
  more, the tracked one (`zzlive`), is saved through the listening service as a tenant
  saves it.
- **Serving.** `hubbub serve --role listening` runs in a process of its own on that
  directory (the embedded SQLite log, shared with this process), and is stopped at the
  end whatever happens.
- **Firehose.** This process appends the generated firehose's posts
  (`generated_posts`) at `rate` posts a second, in batches every `TICK_S`, for
  `seconds`; one post in `TRACKED_EVERY` carries the tracked word. Each post's append
  time is when the append returned.
- **Live.** A client holds the tracked search's `GET /v1/streams/{id}/live` open,
  signed as the gateway signs, and notes when each match arrives: the latency is that
  moment minus the post's append time, both on this machine's monotonic clock.
  `match_to_live_p99_ms` is the p99 of those latencies; matches of posts appended in
  the first two seconds (the role warming up) are left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec

from hubbub.benchmarks.listening import generated_posts, search_texts
from hubbub.bootstrap import open_event_log, open_listening, open_request_signer
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import PostPublished, SearchChanged
from hubbub.settings import Settings

TENANT: Final = "bench"
TRACKED_WORD: Final = "zzlive"
TRACKED_EVERY: Final = 100
TICK_S: Final = 0.05
WARM_UP_S: Final = 2.0
ANNOUNCE_BATCH: Final = 1000

Progress = Callable[[str], None]


def run_live(
    searches: int = 10_000,
    rate: int = 10_000,
    seconds: float = 20.0,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """Append-to-live latencies of the tracked search at `rate` posts a second."""
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-listening-") as directory:
        data = Path(directory)
        settings = Settings(data_dir=data)
        progress(f"announcing {searches:,} searches")
        stream = asyncio.run(_prepare(settings, searches))
        count = int(rate * seconds)
        progress(f"generating {count:,} posts")
        posts = _tracked(generated_posts(count))
        with _serving(data) as url:
            progress(f"appending {rate:,} posts/s for {seconds:g} s")
            latencies, appended = asyncio.run(_measure(settings, url, stream, posts, rate))
    ordered = sorted(latencies)
    tracked = sum(1 for post in posts if TRACKED_WORD in post.text)
    return {
        "match_to_live_p50_ms": round(_quantile(ordered, 0.50) * 1000, 1),
        "match_to_live_p99_ms": round(_quantile(ordered, 0.99) * 1000, 1),
        "match_to_live_max_ms": round(ordered[-1] * 1000, 1) if ordered else None,
        "live_matches_timed": len(ordered),
        "tracked_posts": tracked,
        "appended_posts_per_s": round(appended),
        "live_searches": searches + 1,
    }


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _tracked(posts: list[PostPublished]) -> list[PostPublished]:
    """The posts, one in `TRACKED_EVERY` carrying the tracked word."""
    return [
        msgspec.structs.replace(post, text=f"{post.text} {TRACKED_WORD}")
        if number % TRACKED_EVERY == 0
        else post
        for number, post in enumerate(posts)
    ]


async def _prepare(settings: Settings, searches: int) -> str:
    """Announce the searches; save the tracked one; answer its id."""
    event_log = await open_event_log(settings)
    clock = SystemClock()
    try:
        texts = search_texts(searches)
        for start in range(0, len(texts), ANNOUNCE_BATCH):
            await event_log.append([
                SearchChanged(
                    id=f"bench-search-{n}", key=f"t{n % 100}/s{n}", ts=clock.now_us(),
                    source="bench", tenant=f"t{n % 100}", search=f"s{n}", query=text,
                )
                for n, text in enumerate(texts[start : start + ANNOUNCE_BATCH], start)
            ])  # fmt: skip
        listening = open_listening(settings, event_log, clock)
        try:
            saved = await listening.save(TENANT, "bench", "tracked", TRACKED_WORD)
        finally:
            listening.store.close()
            await listening.pages.close()
        return saved.id
    finally:
        await event_log.close()


async def _measure(
    settings: Settings, url: str, stream: str, posts: list[PostPublished], rate: int
) -> tuple[list[float], float]:
    """Append the posts at `rate` while a live stream is open; the latencies of the
    tracked matches, and the rate the appends kept."""
    event_log = await open_event_log(settings)
    appended_at: dict[str, float] = {}
    latencies: list[float] = []
    path = f"/v1/streams/{stream}/live"
    signer = open_request_signer(settings)
    headers = {k.decode(): v.decode() for k, v in signer.headers("GET", path, TENANT, "bench")}
    expected = sum(1 for post in posts if TRACKED_WORD in post.text)
    connected = asyncio.Event()
    started = time.monotonic()

    async def listen() -> None:
        async with (
            httpx.AsyncClient(base_url=url, timeout=None) as client,
            client.stream("GET", path, headers=headers) as live,
        ):
            connected.set()
            async for line in live.aiter_lines():
                if not line.startswith("data: "):
                    continue
                arrived = time.monotonic()
                post = json.loads(line[6:]).get("post")
                sent = appended_at.get(post)
                if sent is not None and sent - started >= WARM_UP_S:
                    latencies.append(arrived - sent)
                if len(latencies) + _warm(appended_at, started) >= expected:
                    return

    listener = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(connected.wait(), 30)
        await asyncio.sleep(1.0)  # the stream is at the head
        per_tick = max(1, int(rate * TICK_S))
        started = time.monotonic()
        next_tick = started
        for start in range(0, len(posts), per_tick):
            batch = posts[start : start + per_tick]
            now_us = int(time.time() * 1e6)
            batch = [msgspec.structs.replace(post, ts=now_us) for post in batch]
            await event_log.append(batch)
            done = time.monotonic()
            for post in batch:
                if TRACKED_WORD in post.text:
                    appended_at[post.post] = done
            next_tick += TICK_S
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        appended_rate = len(posts) / (time.monotonic() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(listener), 30)
    finally:
        listener.cancel()
        with contextlib.suppress(BaseException):
            await listener
        await event_log.close()
    return latencies, appended_rate


def _warm(appended_at: dict[str, float], started: float) -> int:
    return sum(1 for sent in appended_at.values() if sent - started < WARM_UP_S)


@contextlib.contextmanager
def _serving(data: Path) -> Iterator[str]:
    """`hubbub serve --role listening` on `data`, until it is ready; stopped at the end."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HUBBUB_LOG_LEVEL": "warning", "HUBBUB_LISTENING_URL": url}
    env.pop("HUBBUB_DATA_DIR", None)
    command = [sys.executable, "-m", "hubbub", "--data-dir", str(data), "serve", "--role",
               "listening"]  # fmt: skip
    output = data / "listening.log"
    with output.open("wb") as sink:
        child = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if child.poll() is not None:
                tail = output.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the listening role exited {child.returncode}: {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the listening role was not ready within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
