"""What a role is told by the gateway, signed: the tenant, the key and the caller's role.
A role trusts the role it reads (`role_of`) because the signature covers it."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hubbub.kernel.clock import FixedClock
from hubbub.kernel.signing import (
    PUBLIC_KEY,
    PUBLIC_TENANT,
    RequestSigner,
    SignedAs,
    SignedOnly,
    role_of,
)

SECRET = b"a secret of the deployment, 32 b"


def whoami(request: Request) -> JSONResponse:
    return JSONResponse({
        "tenant": request.headers.get("x-hubbub-tenant"),
        "role": role_of(request.headers),
    })  # fmt: skip


def client(signer: RequestSigner) -> httpx.AsyncClient:
    app = SignedOnly(Starlette(routes=[Route("/v1/whoami", whoami)]), signer)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://role")


def signed(signer: RequestSigner, role: str, path: str = "/v1/whoami") -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in signer.headers("GET", path, "t1", "k1", role)}


async def test_a_role_reads_the_callers_role_as_the_gateway_signed_it() -> None:
    signer = RequestSigner(SECRET, clock=FixedClock())
    async with client(signer) as role:
        for each in ("owner", "admin", "editor", "viewer"):
            answer = await role.get("/v1/whoami", headers=signed(signer, each))
            assert answer.json() == {"tenant": "t1", "role": each}
        as_editor = SignedAs(signer, "t1", "k1", "editor")
        assert (await role.get("/v1/whoami", auth=as_editor)).json()["role"] == "editor"


async def test_a_role_changed_after_signing_is_refused() -> None:
    signer = RequestSigner(SECRET, clock=FixedClock())
    async with client(signer) as role:
        raised = {**signed(signer, "viewer"), "x-hubbub-role": "owner"}
        answer = await role.get("/v1/whoami", headers=raised)
        assert answer.status_code == 401
        assert "signature is not valid" in answer.json()["detail"]
        dropped = signed(signer, "editor")
        del dropped["x-hubbub-role"]
        assert (await role.get("/v1/whoami", headers=dropped)).status_code == 401


def test_an_absent_or_unknown_role_reads_as_the_least() -> None:
    assert role_of({}) == "viewer"
    assert role_of({"x-hubbub-role": "superuser"}) == "viewer"
    assert role_of({"x-hubbub-role": "admin"}) == "admin"


def test_only_known_roles_are_signed() -> None:
    signer = RequestSigner(SECRET, clock=FixedClock())
    with pytest.raises(ValueError, match="unknown role 'root'"):
        signer.headers("GET", "/v1/whoami", "t1", "k1", "root")
    with pytest.raises(ValueError, match="unknown role"):
        SignedAs(signer, "t1", "k1", "Owner")


async def test_a_public_request_is_signed_for_nobody() -> None:
    signer = RequestSigner(SECRET, clock=FixedClock())
    headers = {
        k.decode(): v.decode()
        for k, v in signer.headers("GET", "/v1/whoami", PUBLIC_TENANT, PUBLIC_KEY, "viewer")
    }
    async with client(signer) as role:
        answer = await role.get("/v1/whoami", headers=headers)
    assert answer.json() == {"tenant": "public", "role": "viewer"}
    assert (PUBLIC_TENANT, PUBLIC_KEY) == ("public", "anonymous")
