"""Who the gateway tells publishing is calling, over real HTTP: a key's tenant and role,
signed; and for public paths (`/v1/public/...`, no account) nobody: no credential a client
sends gets past, no spelling of another route gets through as public, and a client
address is limited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hubbub.bootstrap import build_gateway, open_request_signer
from hubbub.gateway.app import Gateway, observed
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.ratelimit import Quota
from hubbub.kernel.signing import SignedOnly, role_of
from hubbub.settings import Settings
from tests.conftest import serving
from tests.support.net import free_port
from tests.support.stack import OPERATOR, Stack, auth, start_stack

TRICKS = (
    "/v1/public/../v1/posts",
    "/v1/public/./../v1/posts",
    "/v1/public/%2e%2e/v1/posts",
    "/v1/public/%2E%2E/%2E%2E/v1/posts",
    "/v1/public/..%2fv1%2fposts",
    "/v1/public%2f..%2fposts",
    "/v1/%70ublic/../posts",
    "/v1/public//v1/posts",
    "/v1/public/review/",
    "/v1/public/review%00/x",
    "/v1/public/review%252e%252e/x",
    "/v1/public/review\\..\\x",
)
"""Paths that look public once decoded, but are not written plainly: refused (400)."""
BESIDE = ("/v1/posts/../public/x", "/v1/posts/%2e%2e/public/x", "/v1/publicity/../posts")
"""Paths that are not public once decoded: they need an account (401)."""


@dataclass
class Publishing:
    """What stands for publishing: it checks the gateway's signature as every role does,
    and answers what it was told, keeping each path it was asked."""

    seen: list[str] = field(default_factory=list)

    def app(self, settings: Settings) -> SignedOnly:
        async def told(request: Request) -> JSONResponse:
            if request.url.path.startswith("/v1/"):  # not the gateway's health checks
                self.seen.append(request.url.path)
            return JSONResponse({
                "path": request.url.path,
                "tenant": request.headers.get("x-hubbub-tenant"),
                "key": request.headers.get("x-hubbub-key"),
                "role": role_of(request.headers),
                "authorization": request.headers.get("authorization"),
                "cookie": request.headers.get("cookie"),
                "api_key": request.headers.get("x-api-key"),
            })  # fmt: skip

        routes = [Route("/{rest:path}", told, methods=["GET", "POST"])]
        return SignedOnly(Starlette(routes=routes), open_request_signer(settings))


@dataclass
class Front:
    gateway: Gateway
    url: str
    publishing: Publishing


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    async with AsyncExitStack() as stack:
        publishing = Publishing()
        nowhere = f"http://127.0.0.1:{free_port()}"
        base = Settings(data_dir=tmp_path, admin_token=OPERATOR)
        url = await stack.enter_async_context(serving(publishing.app(base)))
        settings = base.model_copy(
            update={"publishing_url": url, "ingest_url": nowhere, "mentions_url": nowhere,
                    "analytics_url": nowhere, "web_url": nowhere}
        )  # fmt: skip
        gateway = await build_gateway(settings, SystemClock())
        stack.push_async_callback(gateway.close)
        gateway_url = await stack.enter_async_context(serving(observed(gateway)))
        yield Front(gateway, gateway_url, publishing)


async def raw_request(base_url: str, target: str, method: str = "GET") -> tuple[int, str]:
    """The status and body of a request sent with `target` exactly as written (an HTTP
    client library would remove its dot segments first)."""
    where = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: {where.netloc}\r\nConnection: close\r\n"
            f"Content-Length: 0\r\n\r\n".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


async def test_a_keys_role_reaches_the_service_signed(front: Front) -> None:
    async with httpx.AsyncClient(base_url=front.url) as client:
        made = await client.post("/v1/tenants", json={"name": "newsroom"}, headers=auth(OPERATOR))
        owner, tenant = made.json()["owner_key"]["token"], made.json()["tenant"]["id"]
        for role in ("editor", "viewer"):
            key = await client.post(
                "/v1/keys", json={"name": role, "role": role}, headers=auth(owner)
            )
            forged = {**auth(key.json()["token"]), "X-Hubbub-Role": "owner"}
            told = (await client.get("/v1/posts", headers=forged)).json()
            assert (told["tenant"], told["key"], told["role"]) == (tenant, key.json()["id"], role)
        told = (await client.get("/v1/posts", headers=auth(owner))).json()
        assert told["role"] == "owner"


async def test_a_public_path_needs_no_account_and_speaks_for_nobody(front: Front) -> None:
    async with httpx.AsyncClient(base_url=front.url) as client:
        plain = await client.get("/v1/public/review/abc.DEF-123_~=?x=1")
        assert plain.status_code == 200, plain.text
        assert plain.json() == {
            "path": "/v1/public/review/abc.DEF-123_~=", "tenant": "public", "key": "anonymous",
            "role": "viewer", "authorization": None, "cookie": None, "api_key": None,
        }  # fmt: skip
        assert plain.headers["ratelimit-limit"] == "60"
        dressed = await client.post(
            "/v1/public/review/abc/approve",
            headers={
                "Authorization": "Bearer hk_some_key", "X-API-Key": "hk_other",
                "Cookie": "hubbub_session=hs_someone", "X-Hubbub-Tenant": "t1",
                "X-Hubbub-Key": "k1", "X-Hubbub-Role": "owner",
            },
        )  # fmt: skip
        assert dressed.status_code == 200, dressed.text
        assert dressed.json() | {"path": ""} == {
            "path": "", "tenant": "public", "key": "anonymous", "role": "viewer",
            "authorization": None, "cookie": None, "api_key": None,
        }  # fmt: skip
        # Not public: the prefix alone, or a path beside it, still needs an account.
        for other in ("/v1/public", "/v1/publicity/x", "/v1/posts"):
            assert (await client.get(other)).status_code == 401


async def test_no_spelling_of_another_route_gets_through_as_public(front: Front) -> None:
    for trick in TRICKS:
        status, body = await raw_request(front.url, trick)
        assert status == 400, (trick, status, body)
        assert "a public path is /v1/public/ then segments" in body, (trick, body)
    for beside in BESIDE:
        status, body = await raw_request(front.url, beside)
        assert status == 401, (beside, status, body)
    assert front.publishing.seen == []
    status, _ = await raw_request(front.url, "/v1/public/review/abc")
    assert (status, front.publishing.seen) == (200, ["/v1/public/review/abc"])
    status, body = await raw_request(front.url, "/v1/public/review/abc%3D%3D")  # escaped, plain
    assert status == 200, body
    assert front.publishing.seen[-1] == "/v1/public/review/abc=="


async def test_public_requests_are_limited_per_client_address_and_counted(front: Front) -> None:
    front.gateway.public_quota = Quota(1.0, 3, "client address")
    async with httpx.AsyncClient(base_url=front.url) as client:
        answers = [await client.get(f"/v1/public/calendar/token{n}.ics") for n in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[3].headers["retry-after"] == "1"
        assert "too many requests for this client address" in answers[3].json()["detail"]
        metrics = (await client.get("/metrics", headers=auth(OPERATOR))).text
    assert (
        'hubbub_http_requests_total{method="GET",route="/v1/public",service="gateway",'
        'status="200"}' in metrics
    )
    assert "token0" not in metrics  # a link's token is never a label


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, exits = await start_stack(tmp_path / "data")
    async with exits:
        yield built


async def test_publishing_accepts_a_public_request_and_refuses_the_tricks(stack: Stack) -> None:
    answer = await stack.client.get("/v1/public/review/not-a-real-token")
    assert answer.status_code not in (401, 403), answer.text  # the signature is accepted
    assert answer.status_code < 500, answer.text
    for trick in TRICKS:
        assert (await raw_request(stack.url, trick))[0] == 400, trick
    for beside in BESIDE:
        assert (await raw_request(stack.url, beside))[0] == 401, beside
