"""The doctor's check of the platform's roles: does each answer `GET /healthz` where
the settings say it listens (`HUBBUB_*_URL`, the gateway on `HUBBUB_HTTP_PORT`)?

A role that does not answer is a failure when others do (the platform runs, without
it) and only a warning when none does: the platform is not running, which is what a
doctor run before `hubbub serve` finds. A role answering `degraded` (a shared server
failing, a background task restarting) is a warning with its reasons.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx

from hubbub.operations.effective_settings import redact_url
from hubbub.operations.findings import Check, Finding, Limits

_ANY_ADDRESS: Final = frozenset({"0.0.0.0", "::", ""})
LEGACY: Final = "legacy"
"""The legacy application's name among the roles' URLs (`HUBBUB_LEGACY_URL`)."""


@dataclass(frozen=True)
class Answer:
    """What a role said to `GET /healthz`: its HTTP status and body, or why nothing."""

    status_code: int | None = None
    body: object = None
    error: str = ""


def plan(urls: Mapping[str, str], limits: Limits) -> list[tuple[str, Check]]:
    """`urls`: where each role answers (`supervisor.role_urls`), and the legacy app's."""
    return [("roles", functools.partial(roles, urls, limits))]


def loopback(host: str) -> str:
    """Where to reach a server listening on `host` from this machine."""
    return "127.0.0.1" if host in _ANY_ADDRESS else host


@dataclass(frozen=True)
class Target:
    """One process to ask: its role, its URL, and which of the role's URLs it is."""

    role: str
    url: str
    label: str


def targets(urls: Mapping[str, str]) -> list[Target]:
    """Each URL to ask: a role's setting may name several replicas, comma-separated
    (`HUBBUB_MENTIONS_URL`), each asked on its own."""
    found = []
    for role, given in urls.items():
        each = [url.strip() for url in given.split(",") if url.strip()]
        for number, url in enumerate(each, 1):
            label = role if len(each) == 1 else f"{role} ({number} of {len(each)})"
            found.append(Target(role, url, label))
    return found


async def roles(urls: Mapping[str, str], limits: Limits) -> list[Finding]:
    asked = targets(urls)
    async with httpx.AsyncClient(timeout=limits.timeout_s) as client:
        answers = await asyncio.gather(*(_ask(client, target.url) for target in asked))
    platform = [
        answer for target, answer in zip(asked, answers, strict=True) if target.role != LEGACY
    ]
    running = any(answer.status_code is not None for answer in platform)
    findings = [] if running else [_not_running([t for t in asked if t.role != LEGACY])]
    return findings + [
        judge(target, answer, running=running)
        for target, answer in zip(asked, answers, strict=True)
        if running or target.role == LEGACY
    ]


async def _ask(client: httpx.AsyncClient, url: str) -> Answer:
    try:
        response = await client.get(f"{url.rstrip('/')}/healthz")
    except httpx.HTTPError as error:
        return Answer(error=str(error) or type(error).__name__)
    try:
        body = response.json()
    except ValueError:
        body = None
    return Answer(response.status_code, body)


def judge(target: Target, answer: Answer, *, running: bool) -> Finding:
    """The finding for one role's answer; `running`: whether any role of the platform
    answered (when none does, the legacy app's silence is only a warning)."""
    name, check, where = target.role, f"role {target.label}", redact_url(target.url)
    variable = _variable(name)
    if answer.status_code is None:
        detail = f"nothing answers at {where} ({answer.error})"
        fix = f"start it (`hubbub serve --role {name}`), or fix {variable}"
        if name == LEGACY:
            fix = f"start the legacy application, or fix {variable}"
        return Finding(check, "fail" if running else "warn", detail, fix)
    status = answer.body.get("status") if isinstance(answer.body, dict) else None
    if status == "ok" or (name == LEGACY and answer.status_code < 500):
        return Finding(check, "ok", f"{where}: answers")
    if isinstance(status, str):
        detail = f"{where}: {status}{_reasons(answer.body)}"
        return Finding(check, "warn", detail, "see the role's log and its /healthz")
    detail = f"{where}/healthz answered HTTP {answer.status_code}"
    return Finding(check, "fail", detail, f"is {variable} this role's address?")


def _not_running(asked: list[Target]) -> Finding:
    """One finding for a platform none of whose roles answers."""
    where = ", ".join(f"{target.role} {redact_url(target.url)}" for target in asked)
    detail = f"the platform is not running: no role answers ({where})"
    return Finding("roles", "warn", detail, "start it: `hubbub serve`")


def _variable(name: str) -> str:
    if name == "gateway":
        return "HUBBUB_HTTP_HOST / HUBBUB_HTTP_PORT"
    return f"HUBBUB_{name.upper()}_URL"


def _reasons(body: object) -> str:
    """Why a role says it is degraded: failing tasks, failing shared servers, roles."""
    if not isinstance(body, dict):
        return ""
    said = []
    if failing := body.get("failing_tasks"):
        said.append(f"failing tasks: {failing}")
    for key in ("dependencies", "roles"):
        if isinstance(found := body.get(key), dict):
            bad = {name: state for name, state in found.items() if state != "ok"}
            if bad:
                said.append(f"{key}: {', '.join(f'{n} {s}' for n, s in bad.items())}")
    return f" ({'; '.join(said)})" if said else ""
