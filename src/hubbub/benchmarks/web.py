"""The web app benchmark: the server time of its pages over a year of rollups for 100M
posts, the time from a keystroke in the compose box to suggestions drawn, in Chromium,
and the weight of a page's scripts and styles.

- **Data.** In a fresh data directory, a year of rollups for `posts_per_year` posts
  (`generate_year` and `load_rollups`, as the reports benchmark builds them) is the live
  analytics file `analytics.duckdb`, with the settings' retention already applied (the
  minute tier keeps 35 days, so of 2025 it keeps none: the analytics role would drop
  those rows as it starts, in the middle of the timings). `pages` PageSeen events
  (the synthetic population's handles and names, and a few dozen "tay..." pages) are
  in the SQLite log for the mentions role to index; a tenant and its owner, with a
  password, are in the relational store.
- **Serving.** `hubbub serve` runs every role in processes of its own on free ports
  (rate limits raised out of the way), and is stopped at the end whatever happens.
- **Pages.** One client signs in as a person does (the sign-in form, its CSRF token,
  the session cookie), then GETs each page through the gateway: each once to warm up,
  then `requests` rounds over all of them, so noise falls on all alike. A page's time
  is the client's wall time on loopback, the whole body read: gateway, web role, and
  the API calls the web role makes for it. It is measured twice, each time on a fresh
  `hubbub serve`: with the report cache off (`HUBBUB_REPORT_CACHE_TTL_S` as short as
  it goes, so every report is computed from the rollups; `page_p95_ms`, the worst
  page's p95) and with it as configured (after the warm-up every report is a cache
  hit; `page_p95_cached_ms`).
- **Keystrokes.** Debian's Chromium (Playwright) signs in, opens /mentions and types
  words like "hello @ta", "@tayl", "@jo" into the compose box, one key every 120 ms, the
  box cleared between words. app.js keeps each keystroke's time from its input event
  to suggestions drawn (Performance API) in `window.hubbubTimings`; a first word warms
  up and is not counted.
- **Assets.** Every `/static/` script and stylesheet a page names (base.html and the
  page's own template), each counted once, gzipped (level 9) one by one as a server
  would send them; `assets_kb_compressed` is the heaviest page's total (KB = 1024 B).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

import duckdb
import httpx
import numpy as np

from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.benchmarks.reports import generate_year, load_rollups
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.events import PageSeen
from hubbub.settings import Settings
from hubbub.synthetic.population import page as synthetic_page

Progress = Callable[[str], None]
PLATFORM_ROLES: Final = ("ingest", "mentions", "analytics", "publishing", "web", "gateway")
"""The roles `hubbub serve` runs, each on a port of its own here."""

CHROMIUM: Final = "/usr/bin/chromium"
# Headless, without the background traffic a closed network refuses (the browser tests
# launch it the same way, from here).
LAUNCH_ARGS: Final = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
YEAR: Final = "start=2025-01-01&end=2025-12-31"
PAGES: Final = (
    "/",
    f"/reports?what=hashtags&{YEAR}",
    f"/reports?what=mentioned&{YEAR}",
    f"/reports/series?kind=hashtag&key=tag1&bucket=day&{YEAR}",
    "/mentions",
    "/alerts",
    "/settings",
)
EMAIL: Final = "owner@bench.example"
PASSWORD: Final = "correct horse battery staple"
KEY_DELAY_MS: Final = 120
BUILD_MEMORY: Final = "6GB"
"""DuckDB's memory while it builds the year (it spills the rest to disk): without a cap
it takes 80% of the machine, which others share."""
UNCACHED_TTL_S: Final = "0.001"  # the setting must be > 0: an entry outlives no request
TARGETS: Final = {
    "page_p95_ms": 30.0,
    "keystroke_to_suggestions_p95_ms": 50.0,
    "assets_kb_compressed": 150.0,
}
TAY_GIVEN: Final = ("Taylor", "Tayo", "Tayla", "Taysir")
TAY_FAMILY: Final = (
    "Swift", "Otwell", "Brooks", "Nguyen", "Okafor", "Martin", "Silva", "Kowalski",
    "Haddad", "Moreau", "Jensen", "Rossi", "Tanaka", "Walker", "Ibrahim", "Novak",
)  # fmt: skip
FIXED_WORDS: Final = (
    "hello @ta", "@tay", "@tayl", "@taylo", "@taylor", "thanks @tayo", "@jo", "@jos",
    "@mar", "@mart", "@hina", "@ava", "@yui", "@fran", "@harut",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _p95(samples: list[float]) -> float:
    return sorted(samples)[int(0.95 * (len(samples) - 1))]


def _figures(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(_p95(samples), 2),
        "max_ms": round(max(samples), 2),
    }


# -- data ------------------------------------------------------------------------------


def _build_rollups(
    path: Path, posts_per_year: int, settings: Settings, progress: Progress
) -> dict[str, Any]:
    """The year's rollups as the live analytics file, retention applied; seconds per step."""
    DuckDBRollups(path).close()  # the schema
    db = duckdb.connect(str(path), config={"memory_limit": BUILD_MEMORY})
    steps: dict[str, Any] = {}
    try:
        progress(f"data: generating {posts_per_year:,} posts over 2025")
        started = time.perf_counter()
        generate_year(db, posts_per_year)
        steps["generate_s"] = time.perf_counter() - started
        progress("data: folding the posts into rollups")
        started = time.perf_counter()
        load_rollups(db)
        steps["rollups_s"] = time.perf_counter() - started
        (posts,) = db.execute("SELECT sum(posts) FROM page_minute").fetchone() or (0,)
    finally:
        db.close()
    progress("data: applying the rollups' retention, as the analytics role would")
    started = time.perf_counter()
    store = DuckDBRollups(path)
    try:
        now_minute = int(datetime.now(UTC).timestamp() // 60)
        steps["retention_rows_dropped"] = store.prune(settings.rollup_horizons(now_minute))
    finally:
        store.close()
    steps["retention_s"] = time.perf_counter() - started
    steps["posts"] = int(posts or 0)
    return steps


def _tay_pages() -> list[tuple[str, str]]:
    """(handle, display name) of pages whose handles start with "tay"."""
    return [
        (f"{given}{family}".lower() + ".bsky.social", f"{given} {family}")
        for given in TAY_GIVEN
        for family in TAY_FAMILY
    ]


def _page_events(count: int, seed: int = 7) -> Iterator[PageSeen]:
    """`count` pages: the synthetic population's, the last few of them "tay..." pages;
    followers Zipf-distributed over a random ranking (the top one has ten million)."""
    tay = _tay_pages()[: max(0, min(count // 2, len(TAY_GIVEN) * len(TAY_FAMILY)))]
    ranks = np.random.default_rng(seed).permutation(count).astype(np.float64) + 1
    followers = (10_000_000 / ranks**1.1).astype(np.int64)
    now_us = time.time_ns() // 1000
    for index in range(count):
        made = synthetic_page(index)
        handle, name = made.handle, made.display_name
        if index >= count - len(tay):
            handle, name = tay[index - (count - len(tay))]
        yield PageSeen(
            id=f"bench-web-seen-{index}", key=made.did, ts=now_us, source="jetstream",
            page=made.did, handle=handle, display_name=name,
            followers_count=int(followers[index]),
        )  # fmt: skip


async def _append_pages(settings: Settings, count: int) -> None:
    log = SqliteEventLog(settings.log_path)
    try:
        batch: list[PageSeen] = []
        for event in _page_events(count):
            batch.append(event)
            if len(batch) == 10_000:
                await log.append(batch)
                batch = []
        if batch:
            await log.append(batch)
    finally:
        await log.close()


def _make_person(settings: Settings) -> None:
    """A tenant and its owner, with a password, straight in the relational store."""
    from hubbub.bootstrap import open_tenant_store
    from hubbub.gateway.sessions import hash_password
    from hubbub.kernel.clock import SystemClock

    store = open_tenant_store(settings, SystemClock())
    try:
        tenant = store.create_tenant("Bench newsroom")
        user = store.add_user(tenant.id, EMAIL, "owner")
        store.set_password(tenant.id, user.id, hash_password(PASSWORD))
    finally:
        store.close()


def _build(data: Path, posts_per_year: int, pages: int, progress: Progress) -> dict[str, Any]:
    settings = Settings(data_dir=data)
    data.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    steps = _build_rollups(data / "analytics.duckdb", posts_per_year, settings, progress)
    progress(f"data: appending {pages:,} PageSeen events to the log")
    pages_started = time.perf_counter()
    asyncio.run(_append_pages(settings, pages))
    steps["pages_s"] = time.perf_counter() - pages_started
    _make_person(settings)
    steps["build_s"] = time.perf_counter() - started
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in steps.items()}


# -- serving ---------------------------------------------------------------------------


@contextlib.contextmanager
def _serving(
    data: Path, extra_env: dict[str, str], progress: Progress
) -> Iterator[tuple[str, float]]:
    """`hubbub serve` (every role, free ports) on `data`, until the gateway's /healthz
    says every role is ok; yields the gateway's URL and the seconds that took. The
    supervisor is stopped (its roles with it) when the block ends, whatever happens."""
    ports = {role: _free_port() for role in PLATFORM_ROLES}
    limits = {
        f"HUBBUB_RATE_LIMIT_{who}_{what}": "1000000"
        for who in ("KEY", "TENANT")
        for what in ("PER_S", "BURST")
    }
    env = {
        **os.environ,
        "HUBBUB_LOG_LEVEL": "warning",
        "HUBBUB_HTTP_PORT": str(ports["gateway"]),
        **{
            f"HUBBUB_{role.upper()}_URL": f"http://127.0.0.1:{ports[role]}"
            for role in PLATFORM_ROLES
            if role != "gateway"
        },
        **limits,
        **extra_env,
    }
    env.pop("HUBBUB_DATA_DIR", None)
    base = f"http://127.0.0.1:{ports['gateway']}"
    output = data / f"serve-{ports['gateway']}.log"
    command = [sys.executable, "-m", "hubbub", "--data-dir", str(data), "serve"]
    progress("serve: starting every role")
    started = time.perf_counter()
    with output.open("wb") as sink:
        child = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        _until_healthy(child, base, output)
        ready_s = time.perf_counter() - started
        progress(f"serve: every role ok after {ready_s:.1f} s")
        yield base, ready_s
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


def _until_healthy(child: subprocess.Popen[bytes], base: str, output: Path) -> None:
    deadline = time.monotonic() + 600
    expected = dict.fromkeys(PLATFORM_ROLES, "ok")
    seen: Any = None
    while True:
        if child.poll() is not None:
            tail = output.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"hubbub serve exited {child.returncode}: {tail}")
        try:
            seen = httpx.get(f"{base}/healthz", timeout=2).json().get("roles")
            if seen == expected:
                return
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"hubbub serve not healthy within 600 s: roles {seen}")
        time.sleep(0.5)


# -- pages -----------------------------------------------------------------------------


def _sign_in(client: httpx.Client) -> None:
    """Sign `client` in through the sign-in form, as a browser does: its CSRF token and
    cookie, then the session cookie it keeps."""
    form = client.get("/signin")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if form.status_code != 200 or not found:
        raise RuntimeError(f"GET /signin: {form.status_code} {form.text[:300]}")
    answer = client.post(
        "/signin", data={"email": EMAIL, "password": PASSWORD, "csrf": found.group(1)}
    )
    if answer.status_code != 303 or "hubbub_session" not in client.cookies:
        raise RuntimeError(f"POST /signin: {answer.status_code} {answer.text[:300]}")


def _time_pages(base: str, requests: int, progress: Progress, label: str) -> dict[str, list[float]]:
    """Each page once to warm up, then `requests` rounds over all pages; ms per GET."""
    timings: dict[str, list[float]] = {path: [] for path in PAGES}
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
        _sign_in(client)

        def get(path: str) -> float:
            started = time.perf_counter()
            answer = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
            return elapsed

        for path in PAGES:
            get(path)
        progress(f"pages ({label}): {requests} rounds of {len(PAGES)} pages")
        for _ in range(requests):
            for path in PAGES:
                timings[path].append(get(path))
    return timings


def _pages_summary(timings: dict[str, list[float]]) -> tuple[float, str, dict[str, Any]]:
    by_page = {path: _figures(samples) for path, samples in timings.items()}
    worst = max(by_page, key=lambda path: by_page[path]["p95_ms"])
    return by_page[worst]["p95_ms"], worst, by_page


# -- keystrokes ------------------------------------------------------------------------


def _words(pages: int, keystrokes: int, seed: int = 11) -> list[str]:
    """Words to type until `keystrokes` keys follow an `@`: the fixed ones, then
    prefixes (2 to 6 characters) of handles of the population."""
    rng = random.Random(seed)
    words: list[str] = []
    timed = 0
    fixed = iter(FIXED_WORDS)
    while timed < keystrokes:
        word = next(fixed, None)
        if word is None:
            handle = synthetic_page(rng.randrange(max(1, pages - 64))).handle
            word = "@" + handle[: rng.randint(2, 6)]
        words.append(word)
        timed += _timed_keys(word)
    return words


def _timed_keys(word: str) -> int:
    """Keys typed after the last `@`: each asks for suggestions."""
    return len(word) - word.rindex("@") - 1 if "@" in word else 0


async def _keystrokes(base: str, pages: int, keystrokes: int, progress: Progress) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    words = _words(pages, keystrokes)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = await browser.new_context(base_url=base)
            page = await context.new_page()
            await page.goto("/signin")
            await page.get_by_label("Email").fill(EMAIL)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{base}/")
            await page.goto("/mentions")
            box = page.get_by_role("combobox", name="Post")

            async def type_word(word: str) -> int:
                await box.press_sequentially(word, delay=KEY_DELAY_MS)
                await page.wait_for_timeout(300)  # the last answer lands
                shown: int = await page.evaluate(
                    "document.querySelectorAll('#compose-suggestions li').length"
                )
                await box.fill("")
                return shown

            await type_word("@av")  # warm-up: connections, the JIT, the first layout
            await page.evaluate("window.hubbubTimings.length = 0")
            progress(f"keystrokes: typing {len(words)} words in Chromium, {KEY_DELAY_MS} ms a key")
            with_suggestions = 0
            for word in words:
                with_suggestions += await type_word(word) > 0
            timings: list[float] = await page.evaluate("window.hubbubTimings")
            await context.close()
        finally:
            await browser.close()
    if not timings:
        raise RuntimeError("no keystroke timings: app.js recorded nothing")
    return {
        "keystroke_to_suggestions_p95_ms": round(_p95(timings), 2),
        "keystroke_to_suggestions_p50_ms": round(statistics.median(timings), 2),
        "keystroke_to_suggestions_max_ms": round(max(timings), 2),
        "keystrokes_timed": len(timings),
        "keystrokes_asking": sum(_timed_keys(word) for word in words),
        "keystroke_words": len(words),
        "keystroke_words_with_suggestions": with_suggestions,
        "keystroke_delay_ms": KEY_DELAY_MS,
    }


# -- assets ----------------------------------------------------------------------------

_ASSET: Final = re.compile(r'(?:src|href)="(/static/[^"?#]+\.(?:js|css))"')


def assets() -> dict[str, Any]:
    """The scripts and stylesheets each page names, gzipped (level 9) one by one; the
    heaviest page's total."""
    ui = resources.files("hubbub.ui")
    templates = {item.name: item.read_text() for item in (ui / "templates").iterdir()}
    base = set(_ASSET.findall(templates["base.html"]))
    per_page = {
        name: (
            base | set(_ASSET.findall(text)) if "base.html" in text else set(_ASSET.findall(text))
        )
        for name, text in templates.items()
        if name != "base.html"
    }
    named = sorted(set().union(*per_page.values(), base))
    sizes = {}
    for url in named:
        body = (ui / "static" / url.removeprefix("/static/")).read_bytes()
        sizes[url] = {"bytes": len(body), "gzip_bytes": len(gzip.compress(body, 9, mtime=0))}
    totals = {
        name: sum(sizes[url]["gzip_bytes"] for url in urls) for name, urls in per_page.items()
    }
    heaviest = max(totals, key=lambda name: totals[name])
    return {
        "assets_kb_compressed": round(totals[heaviest] / 1024, 1),
        "assets_kb_raw": round(sum(sizes[url]["bytes"] for url in per_page[heaviest]) / 1024, 1),
        "assets_page": heaviest,
        "assets": {url: sizes[url] for url in sorted(per_page[heaviest])},
    }


# -- the run ---------------------------------------------------------------------------


def run_web_benchmark(
    *,
    posts_per_year: int = 100_000_000,
    pages: int = 200_000,
    requests: int = 50,
    keystrokes: int = 300,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-web-") as folder:
        data = Path(folder)
        built = _build(data, posts_per_year, pages, progress)
        uncached_env = {"HUBBUB_REPORT_CACHE_TTL_S": UNCACHED_TTL_S}
        with _serving(data, uncached_env, progress) as (base, ready_uncached_s):
            uncached = _time_pages(base, requests, progress, "report cache off")
        with _serving(data, {}, progress) as (base, ready_s):
            cached = _time_pages(base, requests, progress, "report cache on")
            typed = asyncio.run(_keystrokes(base, pages, keystrokes, progress))
    page_p95, slowest, by_page = _pages_summary(uncached)
    cached_p95, cached_slowest, by_page_cached = _pages_summary(cached)
    weights = assets()
    headline = {
        "page_p95_ms": page_p95,
        "keystroke_to_suggestions_p95_ms": typed["keystroke_to_suggestions_p95_ms"],
        "assets_kb_compressed": weights["assets_kb_compressed"],
    }
    return {
        "benchmark": "web",
        "cpu_count": os.cpu_count(),
        "posts_per_year": built.pop("posts"),
        "pages": pages,
        **{f"data_{name}": value for name, value in built.items()},
        "serve_ready_s": round(max(ready_s, ready_uncached_s), 1),
        "requests_per_page": requests,
        "page_p95_ms": page_p95,
        "page_p95_basis": (
            "the worst page's p95 (client wall time of a GET through the gateway, on"
            " loopback, body read), report cache off: every report computed from the rollups"
        ),
        "page_slowest": slowest,
        "page_p95_cached_ms": cached_p95,
        "page_slowest_cached": cached_slowest,
        "page_cached_basis": (
            f"report cache on (HUBBUB_REPORT_CACHE_TTL_S default): after one warm-up GET each,"
            f" every report answer is a cache hit; off means a TTL of {UNCACHED_TTL_S} s"
        ),
        "by_page_uncached": by_page,
        "by_page_cached": by_page_cached,
        **typed,
        **weights,
        "targets": TARGETS,
        "within_targets": {name: headline[name] <= target for name, target in TARGETS.items()},
        "wall_s": round(time.perf_counter() - started, 1),
    }
