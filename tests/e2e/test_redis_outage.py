"""Redis stops while the platform serves: the gateway's rate limiter and the reports'
cache do without it, health says so, and both use Redis again once it is back.

The real Redis on 127.0.0.1:6379 is shut down mid-run and always started again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from hubbub.bootstrap import build_gateway, build_platform
from hubbub.gateway.app import observed
from hubbub.settings import Settings
from hubbub.web.app import create_app
from tests.conftest import require_service, serving, unique_name
from tests.redis_outage import redis_stopped

pytestmark = pytest.mark.services

OPERATOR = "operator-token-for-tests"
REDIS_URL = "redis://127.0.0.1:6379/0"
REPORT = "/v1/reports/top/hashtags?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z"


@dataclass
class Served:
    gateway: httpx.AsyncClient
    analytics_url: str
    prefix: str
    token: str = ""

    async def get(self, path: str) -> httpx.Response:
        return await self.gateway.get(path, headers={"Authorization": f"Bearer {self.token}"})


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """Every role over HTTP and a gateway in front; the rate limiter and the reports'
    cache in Redis, under a prefix of this test's own (its keys deleted after)."""
    require_service("Redis", "127.0.0.1", 6379)
    prefix = unique_name("hubbub_test")
    redis_settings = {
        "stream_prefix": prefix,
        "redis_timeout_s": 0.2,
        "redis_breaker_failures": 2,
        "redis_breaker_reset_s": 0.3,
    }
    async with AsyncExitStack() as stack:
        platform = await build_platform(
            Settings(data_dir=tmp_path, cache="redis", **redis_settings)
        )
        stack.push_async_callback(platform.close)
        urls = {
            role: await stack.enter_async_context(serving(create_app(platform, role)))
            for role in ("ingest", "mentions", "analytics")
        }
        gateway = await build_gateway(
            Settings(
                data_dir=tmp_path,
                admin_token=OPERATOR,
                rate_limiter="redis",
                # A bucket refills over minutes, so its key stays in Redis to be seen.
                rate_limit_key_per_s=0.01,
                rate_limit_key_burst=1000,
                rate_limit_tenant_per_s=0.01,
                rate_limit_tenant_burst=1000,
                ingest_url=urls["ingest"],
                mentions_url=urls["mentions"],
                analytics_url=urls["analytics"],
                control_poll_s=0.05,
                **redis_settings,
            ),
            platform.clock,
        )
        stack.push_async_callback(gateway.close)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=observed(gateway)), base_url="http://gateway"
        )
        stack.push_async_callback(client.aclose)
        stack.push_async_callback(_delete_keys, prefix)
        made = await client.post(
            "/v1/tenants",
            json={"name": "newsroom"},
            headers={"Authorization": f"Bearer {OPERATOR}"},
        )
        assert made.status_code == 201, made.text
        yield Served(client, urls["analytics"], prefix, made.json()["owner_key"]["token"])


async def _delete_keys(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + ":*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _redis_keys(prefix: str) -> list[str]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        return sorted([key.decode() async for key in client.scan_iter(match=prefix + ":*")])
    finally:
        await client.aclose()


SLOW_ROLE = "a role was slow to answer its check"


async def _health(served: Served) -> tuple[str, object, dict[str, object]]:
    """What the gateway's /healthz says of itself and of Redis, and what the analytics
    role's says. A role slow to answer the gateway's check on a busy machine makes the
    gateway `degraded` too; that is not Redis's doing, so it is told apart."""
    gateway = (await served.gateway.get("/healthz")).json()
    roles_ok = set(gateway["roles"].values()) == {"ok"}
    async with httpx.AsyncClient() as direct:
        analytics = (await direct.get(f"{served.analytics_url}/healthz")).json()
    return gateway["status"] if roles_ok else SLOW_ROLE, gateway["dependencies"], analytics


async def test_requests_answer_while_redis_is_down_and_use_it_again_after(
    served: Served,
) -> None:
    assert (await served.get(REPORT)).status_code == 200
    status, dependencies, analytics = await _health(served)
    assert status in ("ok", SLOW_ROLE)
    assert dependencies == {"redis": "ok"}
    assert analytics == {"status": "ok", "dependencies": {"redis": "ok"}}

    with redis_stopped():
        started = time.perf_counter()
        answers = [await served.get(path) for path in [REPORT, "/v1/mentions?q=ma"] * 10]
        took_s = time.perf_counter() - started
        assert [a.status_code for a in answers] == [200] * 20, answers[0].text
        assert answers[0].json() == []
        assert "ratelimit-remaining" in answers[-1].headers  # counted in the process
        assert took_s < 3.0  # not a timeout per request
        status, dependencies, analytics = await _health(served)
        assert status in ("degraded", SLOW_ROLE)
        assert dependencies == {"redis": "degraded"}
        assert analytics == {"status": "degraded", "dependencies": {"redis": "degraded"}}

    assert await _redis_keys(served.prefix) == []  # Redis came back empty
    await asyncio.sleep(0.35)  # the breakers' period ends: the next calls are trials
    assert (await served.get(REPORT)).status_code == 200
    status, dependencies, analytics = await _health(served)
    assert status in ("ok", SLOW_ROLE)
    assert dependencies == {"redis": "ok"}
    assert analytics == {"status": "ok", "dependencies": {"redis": "ok"}}
    keys = await _redis_keys(served.prefix)
    assert any(key.startswith(f"{served.prefix}:ratelimit:") for key in keys), keys
    assert any(key.startswith(f"{served.prefix}:report:") for key in keys), keys
