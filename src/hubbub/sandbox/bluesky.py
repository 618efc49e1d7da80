"""Bluesky's own PDS, run locally: Bluesky's reference server (@atproto/pds) with a PLC
directory held in memory, started by `pds/network.mjs` beside this module under the
Node that `make pds` installs (into `.venv/node` of a source checkout, or where
`HUBBUB_NODE` says), on free ports of 127.0.0.1.

It is spoken to over plain XRPC with httpx. Without `make pds`, `local_pds` raises
`PdsMissing`, saying what to run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[3]
HARNESS = Path(__file__).parent / "pds"
SCRIPT = HARNESS / "network.mjs"
NODE = Path(os.environ.get("HUBBUB_NODE", ROOT / ".venv" / "node" / "bin" / "node"))
PACKAGES = ("@atproto/pds", "@did-plc/server", "@atproto/crypto")

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
STDERR_TAIL = 4000


class PdsMissing(RuntimeError):
    """Node or the PDS's packages are not installed; the message says what to run."""


class PdsStartError(RuntimeError):
    """The harness exited or stayed silent instead of announcing the PDS; the message
    carries its exit code and the end of its stderr."""


class XrpcError(Exception):
    """An XRPC call answered with an error: the HTTP status and the body's `error` and
    `message` (what atproto clients branch on)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message


def xrpc_result(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a successful XRPC answer (empty for a procedure that answers
    nothing, such as deleteSession); an `XrpcError` for any other."""
    if response.is_success:
        body: dict[str, Any] = response.json() if response.content else {}
        return body
    try:
        body = response.json()
    except ValueError:
        body = {}
    raise XrpcError(response.status_code, str(body.get("error", "")), str(body.get("message", "")))


def jwt_hs256(claims: dict[str, Any], secret: str, typ: str) -> str:
    """A JWT signed as the PDS signs its session tokens (HS256 with its secret): tests
    make expired ones with it."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"typ": typ, "alg": "HS256"}).encode())
    payload = part(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{part(signature.digest())}"


def bearer(token: str) -> dict[str, str]:
    """The Authorization header XRPC expects for a session token."""
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Account:
    """An account created on the PDS, with the session that creating it opened."""

    did: str
    handle: str
    email: str
    password: str
    access_jwt: str
    refresh_jwt: str


@dataclass
class LocalPds:
    """A running PDS: its URLs, this run's secrets, and helpers for the set-up steps
    that tests need but do not test (accounts, app passwords).

    `startup_s` is the time from starting the process to its announcement; `exit_code`
    is filled in once the block is over and the process has ended (0: a clean stop).
    """

    url: str
    plc_url: str
    handle_domain: str
    admin_password: str
    jwt_secret: str
    data_directory: Path
    startup_s: float
    pid: int
    client: httpx.AsyncClient = field(repr=False)
    exit_code: int | None = None

    def handle(self, name: str) -> str:
        """The full handle for `name` under the PDS's own handle domain."""
        return f"{name}{self.handle_domain}"

    async def create_account(
        self, name: str | None = None, *, password: str | None = None, email: str | None = None
    ) -> Account:
        """A new account (com.atproto.server.createAccount); a unique name, password and
        email address unless given."""
        name = name or f"u{uuid.uuid4().hex[:12]}"
        password = password or secrets.token_urlsafe(16)
        email = email or f"{name}@example.com"
        body = {"handle": self.handle(name), "email": email, "password": password}
        response = await self.client.post("/xrpc/com.atproto.server.createAccount", json=body)
        session = xrpc_result(response)
        return Account(
            did=session["did"],
            handle=session["handle"],
            email=email,
            password=password,
            access_jwt=session["accessJwt"],
            refresh_jwt=session["refreshJwt"],
        )

    async def create_app_password(self, account: Account, name: str | None = None) -> str:
        """A new app password for `account` (com.atproto.server.createAppPassword), the
        kind of credential a user hands Hubbub to publish in their name."""
        response = await self.client.post(
            "/xrpc/com.atproto.server.createAppPassword",
            json={"name": name or f"hubbub-{uuid.uuid4().hex[:8]}"},
            headers=bearer(account.access_jwt),
        )
        password: str = xrpc_result(response)["password"]
        return password

    async def records(self, did: str, collection: str = "app.bsky.feed.post") -> list[str]:
        """The text of every record of `collection` in the repository of `did`."""
        texts: list[str] = []
        params: dict[str, Any] = {"repo": did, "collection": collection, "limit": 100}
        while True:
            listed = await self.client.get("/xrpc/com.atproto.repo.listRecords", params=params)
            page = xrpc_result(listed)
            texts += [str(record["value"].get("text", "")) for record in page["records"]]
            if not page.get("cursor") or not page["records"]:
                return texts
            params["cursor"] = page["cursor"]


def missing_parts() -> list[str]:
    """What `make pds` has not installed yet: the Node binary or harness packages."""
    missing = [] if NODE.is_file() else [f"Node ({NODE})"]
    modules = HARNESS / "node_modules"
    missing += [name for name in PACKAGES if not (modules / name / "package.json").is_file()]
    return missing


def require_local_pds() -> None:
    """`PdsMissing` when `make pds` has not installed the PDS."""
    missing = missing_parts()
    if missing:
        raise PdsMissing(
            f"the local Bluesky PDS is not installed (missing {', '.join(missing)}): run `make pds`"
        )


def _stderr_tail(stderr: IO[bytes]) -> str:
    """The end of what the harness wrote to stderr so far, read without moving the file
    offset that the still running process shares."""
    size = os.fstat(stderr.fileno()).st_size
    start = max(0, size - STDERR_TAIL)
    return os.pread(stderr.fileno(), size - start, start).decode(errors="replace").strip()


async def _announcement(
    process: asyncio.subprocess.Process, stderr: IO[bytes], within_s: float
) -> dict[str, Any]:
    """The harness's JSON line, skipping any other output; `PdsStartError` when it exits
    or does not announce itself within `within_s` seconds."""
    assert process.stdout is not None
    try:
        async with asyncio.timeout(within_s):
            while line := await process.stdout.readline():
                with contextlib.suppress(ValueError):
                    ready = json.loads(line)
                    if isinstance(ready, dict) and "pds" in ready:
                        return ready
            code = await process.wait()
            problem = f"exited with code {code} before it was ready"
    except TimeoutError:
        problem = f"was not ready within {within_s:g} s"
    raise PdsStartError(f"the local PDS ({SCRIPT.name}) {problem}; stderr:\n{_stderr_tail(stderr)}")


async def _drain(stream: asyncio.StreamReader) -> None:
    """Read the harness's stdout to its end, so that its logs never fill the pipe."""
    while await stream.read(65536):
        pass


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Ask the harness to stop (stdin closed, then SIGTERM) and wait; kill it when it
    takes longer than STOP_TIMEOUT_S."""
    if process.stdin is not None:
        process.stdin.close()
        with contextlib.suppress(ConnectionError):
            await process.stdin.wait_closed()
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def local_pds(*, start_within_s: float = START_TIMEOUT_S) -> AsyncIterator[LocalPds]:
    """A PDS (and its PLC directory) running for the block, stopped after it whatever
    happens; `PdsMissing` when `make pds` has not been run."""
    require_local_pds()
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            NODE, SCRIPT, cwd=HARNESS, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
        drain: asyncio.Task[None] | None = None
        running: LocalPds | None = None
        try:
            ready = await _announcement(process, stderr, start_within_s)
            startup_s = time.perf_counter() - started
            assert process.stdout is not None
            drain = asyncio.create_task(_drain(process.stdout))
            async with httpx.AsyncClient(base_url=ready["pds"], timeout=30) as client:
                running = LocalPds(
                    url=ready["pds"],
                    plc_url=ready["plc"],
                    handle_domain=ready["handleDomain"],
                    admin_password=ready["adminPassword"],
                    jwt_secret=ready["jwtSecret"],
                    data_directory=Path(ready["dataDirectory"]),
                    startup_s=startup_s,
                    pid=process.pid,
                    client=client,
                )
                yield running
        finally:
            await _stop(process)
            if running is not None:
                running.exit_code = process.returncode
            assert process.stdout is not None
            await (drain or _drain(process.stdout))
