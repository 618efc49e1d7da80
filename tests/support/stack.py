"""The gateway in front of the three roles, each on a real local port, for the tests
that call the platform as a client would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from hubbub.bootstrap import Platform, build_gateway, build_platform, build_web
from hubbub.gateway.app import Gateway, observed
from hubbub.settings import Settings
from hubbub.web.app import create_app
from tests.conftest import serving
from tests.support.net import free_port

OPERATOR = "operator-token-for-tests"
ROLES = ("ingest", "mentions", "analytics", "publishing", "notifications", "listening")


@dataclass
class Stack:
    """Three services on ports of their own, a gateway in front, and a client of it."""

    platform: Platform
    gateway: Gateway
    client: httpx.AsyncClient
    gateway_settings: Settings
    servers: dict[str, Any] = field(default_factory=dict)
    url: str = ""
    """The gateway over real HTTP (the web app's pages are under it, at `/`)."""
    legacy: FastAPI | None = None
    """The legacy application behind the gateway."""

    async def tenant(self, name: str) -> dict[str, str]:
        """A new tenant; answers its id and its owner key's token."""
        answer = await self.client.post(
            "/v1/tenants", json={"name": name}, headers={"Authorization": f"Bearer {OPERATOR}"}
        )
        assert answer.status_code == 201, answer.text
        made = answer.json()
        return {"id": made["tenant"]["id"], "token": made["owner_key"]["token"]}

    async def key(self, owner: dict[str, str], role: str) -> str:
        return (await self.made_key(owner, role))["token"]

    async def made_key(self, owner: dict[str, str], role: str) -> dict[str, str]:
        answer = await self.client.post(
            "/v1/keys", json={"name": role, "role": role}, headers=auth(owner["token"])
        )
        assert answer.status_code == 201, answer.text
        made: dict[str, str] = answer.json()
        return made

    async def pusher(self, owner: dict[str, str]) -> str:
        """A key of the tenant that the operator granted `ingest`; its token."""
        made = await self.made_key(owner, "editor")
        granted = await self.client.put(
            f"/v1/tenants/{owner['id']}/keys/{made['id']}/permissions",
            json={"permissions": ["ingest"]}, headers=auth(OPERATOR),
        )  # fmt: skip
        assert granted.status_code == 200, granted.text
        assert granted.json()["permissions"] == ["ingest"]
        return made["token"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def legacy_app() -> FastAPI:
    """The application being replaced: it answers the same paths, in its own way."""
    app = FastAPI()

    @app.get("/v1/mentions")
    async def mentions(q: str = "") -> dict[str, str]:
        return {"from": "legacy", "q": q}

    @app.get("/v1/legacy/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(5):
                yield b"chunk %d\n" % n
                await asyncio.sleep(0.01)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/v1/legacy/forever")
    async def forever() -> StreamingResponse:
        """A chunk every tenth of a second until the client goes; `app.state.ended`
        counts the streams that ended."""

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.1)
            finally:
                app.state.ended = getattr(app.state, "ended", 0) + 1

        return StreamingResponse(chunks(), media_type="text/event-stream")

    @app.get("/v1/legacy/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(2)
        return {"from": "legacy"}

    @app.get("/v1/legacy/whoami")
    async def whoami(request: Request) -> dict[str, str | None]:
        return {"tenant": request.headers.get("x-hubbub-tenant")}

    return app


async def start_stack(
    data_dir: Path, platform_settings: dict[str, Any] | None = None, **settings: Any
) -> tuple[Stack, AsyncExitStack]:
    """The stack; `platform_settings` for the roles, `settings` for the gateway."""
    stack = AsyncExitStack()
    ports = {"publishing": free_port()}  # listening's inbox answers through publishing
    platform = await build_platform(Settings(
        data_dir=data_dir, publishing_url=f"http://127.0.0.1:{ports['publishing']}",
        **(platform_settings or {}),
    ))  # fmt: skip
    stack.push_async_callback(platform.close)
    urls = {}
    servers = {}
    for role in ROLES:
        server_cm = serving(create_app(platform, role), ports.get(role, 0))
        urls[role] = await stack.enter_async_context(server_cm)
        servers[role] = server_cm
    old_app = legacy_app()
    legacy = await stack.enter_async_context(serving(old_app))
    gateway_port = free_port()
    web, close_web = build_web(
        Settings(data_dir=data_dir, gateway_url=f"http://127.0.0.1:{gateway_port}")
    )
    stack.push_async_callback(close_web)
    urls["web"] = await stack.enter_async_context(serving(web))
    gateway_settings = Settings(
        data_dir=data_dir, admin_token=OPERATOR, legacy_url=legacy, legacy_timeout_s=0.5,
        ingest_url=urls["ingest"], mentions_url=urls["mentions"],
        analytics_url=urls["analytics"], publishing_url=urls["publishing"], web_url=urls["web"],
        notifications_url=urls["notifications"], listening_url=urls["listening"],
        control_poll_s=0.05, **settings,
    )  # fmt: skip
    gateway = await build_gateway(gateway_settings, platform.clock)
    stack.push_async_callback(gateway.close)
    url = await stack.enter_async_context(serving(observed(gateway), gateway_port))
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=observed(gateway)), base_url="http://gateway"
    )
    stack.push_async_callback(client.aclose)
    return Stack(platform, gateway, client, gateway_settings, servers, url, old_app), stack
