"""The gateway benchmark: the latency the gateway adds to a request.

A mentions role and a gateway in front of it run as processes of their own, over a
log seeded with a synthetic firehose. One client sends the same autocomplete query to
each in turn, one request at a time on a kept-alive connection: straight to the role
(the baseline, in the same run), then through the gateway (authentication, rate limit,
routing, proxy, metrics, usage record). The added latency is the difference of the two
distributions' percentiles, per round; the figures are the medians over the rounds.

A second baseline is a bare proxy on the same server and client libraries (uvicorn
in, aiohttp out) that does nothing but pass the request on: what one more hop costs on
this machine before the gateway does any work of its own (`bare_added_*`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from hubbub.bootstrap import build_platform, open_request_signer, open_tenant_store
from hubbub.ingest.connectors.jsonl import replay_file
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.signing import SignedAs
from hubbub.settings import Settings
from hubbub.synthetic.firehose import FirehoseSpec, write_firehose

QUERY = "/v1/mentions?q=ma&limit=10"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _seed(settings: Settings, events: int, pages: int) -> None:
    path = settings.data_dir / "firehose.jsonl"
    write_firehose(FirehoseSpec(events=events, pages=pages, seed=7), path)
    platform = await build_platform(settings)
    try:
        await replay_file(await platform.ingestor("jetstream"), path, batch_size=10_000)
    finally:
        await platform.close()
    path.unlink()


@contextmanager
def _process(argv: list[str], env: dict[str, str], health: str) -> Iterator[None]:
    """A role process, up (its /healthz answers) while the block runs."""
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            if child.poll() is not None:
                error = child.stderr.read().decode() if child.stderr else ""
                raise RuntimeError(f"{' '.join(argv)} exited {child.returncode}: {error[-2000:]}")
            try:
                if httpx.get(health, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(argv)} did not answer {health} within 120 s")
            time.sleep(0.2)
        yield
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()


def bare_proxy(port: int, upstream: str) -> None:
    """Serve a pass-through proxy to `upstream` on `port`: the floor of any gateway."""
    import aiohttp
    import uvicorn
    import uvloop
    from yarl import URL

    session: aiohttp.ClientSession | None = None

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] != "http":
            return
        session = session or aiohttp.ClientSession(auto_decompress=False)
        url = URL(f"{upstream}{scope['path']}?{scope['query_string'].decode()}", encoded=True)
        # The client's signed headers pass through: the role answers only signed requests.
        signed = {k.decode(): v.decode() for k, v in scope["headers"] if k.startswith(b"x-hubbub-")}
        async with session.get(url, headers=signed) as response:
            body = await response.read()
            headers = [(k, v) for k, v in response.raw_headers if k.lower() != b"date"]
            await send({"type": "http.response.start", "status": response.status,
                        "headers": headers})  # fmt: skip
            await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(app, port=port, log_level="warning", lifespan="off", access_log=False)
    uvloop.run(uvicorn.Server(config).serve())


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _round(clients: dict[str, httpx.Client], requests: int) -> dict[str, float]:
    """One round: `requests` to each, alternating, so all see the same noise."""
    timings: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(requests):
        for name, client in clients.items():
            started = time.perf_counter()
            response = client.get(QUERY)
            timings[name].append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
    figures = {}
    for name, samples in timings.items():
        figures[f"{name}_p50_ms"] = _percentile(samples, 0.50)
        figures[f"{name}_p99_ms"] = _percentile(samples, 0.99)
    return figures


def run_gateway_benchmark(
    *,
    requests: int = 2000,
    rounds: int = 5,
    events: int = 50_000,
    pages: int = 20_000,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-gateway-") as folder:
        data = Path(folder)
        settings = Settings(data_dir=data)
        progress(f"seeding the log with {events:,} events")
        asyncio.run(_seed(settings, events, pages))
        store = open_tenant_store(settings, SystemClock())
        tenant = store.create_tenant("bench")
        key, token = store.create_key(tenant.id, "bench", "viewer")
        store.close()
        signed = SignedAs(open_request_signer(settings), tenant.id, key.id)

        role_port, gateway_port, bare_port = _free_port(), _free_port(), _free_port()
        env = {
            **os.environ,
            "HUBBUB_DATA_DIR": str(data),
            "HUBBUB_MENTIONS_URL": f"http://127.0.0.1:{role_port}",
            "HUBBUB_ADMIN_TOKEN": secrets.token_urlsafe(16),
            "HUBBUB_RATE_LIMIT_KEY_PER_S": "1000000",
            "HUBBUB_RATE_LIMIT_KEY_BURST": "1000000",
            "HUBBUB_RATE_LIMIT_TENANT_PER_S": "1000000",
            "HUBBUB_RATE_LIMIT_TENANT_BURST": "1000000",
            "HUBBUB_LOG_LEVEL": "warning",
        }
        serve = [sys.executable, "-m", "hubbub", "serve"]
        role = [*serve, "--role", "mentions", "--port", str(role_port)]
        front = [*serve, "--role", "gateway", "--port", str(gateway_port)]
        bare = [
            sys.executable, "-c",
            "from hubbub.benchmarks.gateway import bare_proxy; "
            f"bare_proxy({bare_port}, 'http://127.0.0.1:{role_port}')",
        ]  # fmt: skip
        progress("starting the mentions role, the gateway and a bare proxy")
        with (
            _process(role, env, f"http://127.0.0.1:{role_port}/healthz"),
            _process(front, env, f"http://127.0.0.1:{gateway_port}/healthz"),
            _process(bare, env, f"http://127.0.0.1:{bare_port}/healthz"),
            # Direct and bare requests are signed as the gateway signs them (the role
            # refuses others), so the baseline pays for checking a signature too.
            httpx.Client(base_url=f"http://127.0.0.1:{role_port}", auth=signed) as direct,
            httpx.Client(base_url=f"http://127.0.0.1:{bare_port}", auth=signed) as bare_client,
            httpx.Client(
                base_url=f"http://127.0.0.1:{gateway_port}",
                headers={"Authorization": f"Bearer {token}"},
            ) as gateway,
        ):
            clients = {"direct": direct, "bare": bare_client, "gateway": gateway}
            _round(clients, 200)  # warm up connections, caches, the JIT
            results = []
            for n in range(rounds):
                progress(f"round {n + 1} of {rounds}: {requests:,} requests each way")
                results.append(_round(clients, requests))
    return _summary(results, requests, rounds, events, pages)


def _summary(
    results: list[dict[str, float]], requests: int, rounds: int, events: int, pages: int
) -> dict[str, Any]:
    def median(name: str) -> float:
        return round(statistics.median(r[name] for r in results), 3)

    def added(q: str, by: str = "gateway") -> float:
        diffs = [r[f"{by}_{q}_ms"] - r[f"direct_{q}_ms"] for r in results]
        return round(statistics.median(diffs), 3)

    return {
        "benchmark": "gateway",
        "route": QUERY,
        "requests_per_round": requests,
        "rounds": rounds,
        "seed_events": events,
        "seed_pages": pages,
        "added_p50_ms": added("p50"),
        "added_p99_ms": added("p99"),
        "bare_added_p50_ms": added("p50", "bare"),
        "bare_added_p99_ms": added("p99", "bare"),
        "direct_p50_ms": median("direct_p50_ms"),
        "direct_p99_ms": median("direct_p99_ms"),
        "gateway_p50_ms": median("gateway_p50_ms"),
        "gateway_p99_ms": median("gateway_p99_ms"),
        "target_added_p50_ms": 0.5,
        "machine_cpus": os.cpu_count(),
    }
