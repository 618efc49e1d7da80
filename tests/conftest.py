"""Shared test helpers: real services on 127.0.0.1, skipped (or failed in CI) when absent."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from hubbub.bootstrap import Platform, open_request_signer
from hubbub.kernel.events import PostPublished
from hubbub.kernel.signing import SignedAs
from hubbub.settings import Settings
from hubbub.web.app import create_app

FIXTURES = Path(__file__).parent / "fixtures"
NATS_URL = os.environ.get("HUBBUB_TEST_NATS_URL", "nats://127.0.0.1:4222")


def service_missing(reason: str) -> NoReturn:
    """Skip the test for a service it needs and cannot have; fail it instead when CI
    demands services (HUBBUB_REQUIRE_SERVICES=1), where a skip would hide the gap."""
    if os.environ.get("HUBBUB_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and HUBBUB_REQUIRE_SERVICES=1")
    pytest.skip(reason)


def require_service(name: str, host: str, port: int) -> None:
    """Skip the test when a server is not listening; fail instead when CI demands services."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as error:
        service_missing(f"{name} is not reachable on {host}:{port} ({error})")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


POSTGRES_ADMIN_DSN = os.environ.get(
    "HUBBUB_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/postgres"
)


@contextmanager
def postgres_database(prefix: str = "hubbub_test") -> Iterator[str]:
    """A database of its own on the real PostgreSQL, dropped after; yields its URL."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(POSTGRES_ADMIN_DSN)
    require_service(
        "PostgreSQL", str(params.get("host", "127.0.0.1")), int(params.get("port", 5432))
    )
    name = unique_name(prefix)
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(POSTGRES_ADMIN_DSN, dbname=name)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def running(
    start: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> AsyncIterator[asyncio.Task[None]]:
    """Run a connector while the block runs; stop it through its `stop` event after."""
    stop = asyncio.Event()
    task = asyncio.create_task(start(stop))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task


def signed(settings: Settings, tenant: str = "t-test") -> SignedAs:
    """Requests signed as the gateway signs them for `tenant`, in the deployment of
    `settings` (its secret)."""
    return SignedAs(open_request_signer(settings), tenant, "test-key")


@asynccontextmanager
async def api_client(
    platform: Platform, role: str = "analytics", tenant: str = "t-test"
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app a process of `role` serves, over this platform, whose
    requests come signed as the gateway's for `tenant`."""
    transport = httpx.ASGITransport(app=create_app(platform, role))
    auth = signed(platform.settings, tenant)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hubbub", auth=auth
    ) as client:
        yield client


@asynccontextmanager
async def serving(app: Any, port: int = 0) -> AsyncIterator[str]:
    """Serve an ASGI app over real HTTP on `port` (by default a free one) while the
    block runs; yields its base URL."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        timeout_graceful_shutdown=5,  # a live stream left open does not hold the test
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll `check` until it holds; fail after about five seconds."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not hold within 5 s")


def post(n: int, text: str = "hello") -> PostPublished:
    """A post event numbered `n`, by one of seven authors."""
    return PostPublished(
        id=f"post-{n:08d}",
        key=f"did:plc:author{n % 7}",
        ts=1_700_000_000_000_000 + n,
        source="test",
        post=f"at://did:plc:author{n % 7}/app.bsky.feed.post/{n}",
        author=f"did:plc:author{n % 7}",
        text=f"{text} {n} ✨ café",
        tags=["demo"],
    )


@pytest.fixture
def jetstream_lines() -> list[bytes]:
    return (FIXTURES / "jetstream-sample.jsonl").read_bytes().splitlines()


@pytest.fixture
def mastodon_status() -> bytes:
    return (FIXTURES / "mastodon-status-example.json").read_bytes()
