"""Requests from the gateway to the roles behind it, signed with the deployment's secret.

The roles (ingest, mentions, analytics, publishing) trust the gateway's word on who is
calling: the tenant in `X-Hubbub-Tenant`, the key in `X-Hubbub-Key` and the caller's role
(owner, admin, editor or viewer) in `X-Hubbub-Role`, read with `role_of`. A port reachable
by anything but the gateway would make that word anyone's, so the gateway signs what it
says:

    X-Hubbub-Time:      unix seconds when it was signed
    X-Hubbub-Signature: hex HMAC-SHA256, with the secret, of
                        "<METHOD>\\n<raw path>\\n<tenant>\\n<key id>\\n<role>\\n<time>"

and a role answers only a request whose signature is right and at most `ttl_s` old (or
early, for clocks a little apart); `/healthz`, `/readyz` and `/metrics` aside. The path
is the one the client encoded, without the query: the route, not its arguments, is what
a signature grants, for the few seconds it lives.

A request to a public path (`/v1/public/...`: an external reviewer's link, a calendar
feed, where the token in the path is the credential) has no caller: the gateway signs it
for the tenant `PUBLIC_TENANT` and the key `PUBLIC_KEY`, as a viewer, so a role knows it
vouches for nobody.

The secret is `HUBBUB_INTERNAL_SECRET`, which every process of a deployment shares, or
else a file made in the data directory on first use, readable by its owner only, so one
machine (where every role shares the data directory) works with no configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Final

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from hubbub.kernel.clock import Clock, SystemClock
from hubbub.kernel.keyfile import kept_secret

TENANT_HEADER: Final = "x-hubbub-tenant"
"""The header that tells a role the caller's tenant (signed, with the key and time)."""
TENANT: Final = TENANT_HEADER.encode()
KEY: Final = b"x-hubbub-key"
ROLE_HEADER: Final = "x-hubbub-role"
"""The header that tells a role the caller's role (signed): read it with `role_of`."""
ROLE: Final = ROLE_HEADER.encode()
TIME: Final = b"x-hubbub-time"
SIGNATURE: Final = b"x-hubbub-signature"
SIGNED_HEADERS: Final = frozenset({TENANT, KEY, ROLE, TIME, SIGNATURE})
ROLES: Final = ("owner", "admin", "editor", "viewer")
"""The roles a caller may have, highest first."""
LEAST_ROLE: Final = "viewer"
PUBLIC_TENANT: Final = "public"
"""The tenant a request to a public path is signed for: it speaks for no tenant (tenant ids
are random hex, so none is named this)."""
PUBLIC_KEY: Final = "anonymous"
"""The key a request to a public path is signed for: nobody's."""


def role_of(headers: Mapping[str, str]) -> str:
    """The caller's role, from a signed request's headers (as `request.headers`): one of
    `ROLES`, and `"viewer"`, the least, when the header is absent or names no role.

    Only meaningful behind `SignedOnly`, which refuses a request whose role the gateway did
    not sign."""
    found = headers.get(ROLE_HEADER, LEAST_ROLE)
    return found if found in ROLES else LEAST_ROLE


class RequestSigner:
    """Signs requests (the gateway) and checks them (every role), with one secret."""

    def __init__(self, secret: bytes, ttl_s: float = 60.0, clock: Clock | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("the internal secret must be at least 16 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock or SystemClock()

    def _digest(self, method: str, path: str, tenant: str, key: str, role: str, at: str) -> str:
        message = f"{method}\n{path}\n{tenant}\n{key}\n{role}\n{at}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def headers(
        self, method: str, path: str, tenant: str, key: str, role: str = LEAST_ROLE
    ) -> list[tuple[bytes, bytes]]:
        """The five headers that tell a role, verifiably, who this request is for: its
        tenant, key and `role` (one of `ROLES`, else ValueError), signed with the time."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        at = str(self._clock.now_us() // 1_000_000)
        signature = self._digest(method, path, tenant, key, role, at)
        return [
            (TENANT, tenant.encode()),
            (KEY, key.encode()),
            (ROLE, role.encode()),
            (TIME, at.encode()),
            (SIGNATURE, signature.encode()),
        ]

    def refusal(self, method: str, path: str, found: dict[bytes, str]) -> str | None:
        """Why a request with the signed headers `found` must be refused (None: it is
        the gateway's, for the tenant it names)."""
        signature, at = found.get(SIGNATURE), found.get(TIME)
        if not signature or not at:
            return (
                "this service answers only requests signed by the gateway: call it through"
                " the gateway with an API key"
            )
        tenant, key, role = found.get(TENANT, ""), found.get(KEY, ""), found.get(ROLE, "")
        expected = self._digest(method, path, tenant, key, role, at)
        if not hmac.compare_digest(expected, signature):
            return (
                "the request's signature is not valid: every process of a deployment needs"
                " the same HUBBUB_INTERNAL_SECRET (or the same data directory)"
            )
        try:
            age = self._clock.now_us() / 1_000_000 - int(at)
        except ValueError:
            return "the request's signature time is not a number"
        if abs(age) > self.ttl_s:
            return f"the request's signature is {age:.0f} s old: at most {self.ttl_s:.0f} s"
        if not tenant:
            return "the request names no tenant: call the service through the gateway"
        return None


def secret_file(path: Path) -> bytes:
    """The internal secret kept in `path`, made (owner-only) if there is none yet."""
    return kept_secret(path, lambda: secrets.token_hex(32).encode(), least=64)


OPEN_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})


class SignedOnly:
    """ASGI middleware of every role: a request that is not signed by the gateway, for a
    tenant, is answered 401 with the reason; `open_paths` (health, readiness, metrics)
    answer anyone. What a client sent under the signed headers' names never gets past:
    the signature covers them."""

    def __init__(
        self, app: ASGIApp, signer: RequestSigner, open_paths: frozenset[str] = OPEN_PATHS
    ) -> None:
        self.app, self.signer, self.open_paths = app, signer, open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        found = {k: v.decode("latin-1") for k, v in scope["headers"] if k in SIGNED_HEADERS}
        raw_path = scope.get("raw_path") or scope["path"].encode()
        why = self.signer.refusal(scope["method"], raw_path.decode("latin-1"), found)
        if why is None:
            await self.app(scope, receive, send)
            return
        scope["hubbub.route"] = "unsigned"
        body = json.dumps({"detail": why}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class SignedAs(httpx.Auth):
    """httpx auth that signs each request as the gateway would for `tenant`'s key `key`,
    of `role`: for the platform's own tools (`hubbub mentions shadow-report`, the
    benchmarks), which reach a role directly with the deployment's secret."""

    def __init__(
        self, signer: RequestSigner, tenant: str, key: str, role: str = LEAST_ROLE
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        self.signer, self.tenant, self.key, self.role = signer, tenant, key, role

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.raw_path.split(b"?")[0].decode("latin-1")
        signed = self.signer.headers(request.method, path, self.tenant, self.key, self.role)
        for name, value in signed:
            request.headers[name.decode()] = value.decode()
        yield request
