"""`hubbub doctor`: every dependency the settings name, checked at once, each judged.

A check answers with findings: `ok`, `warn` (works, but look: little free space, a
schema a migration behind, a role not started) or `fail` (something the platform needs
is not there), each with what to do about it. Checks run concurrently, each bounded by
the timeout (2 s by default) so that a server that never answers is itself a finding,
not a doctor that hangs; a check that raises is a finding too, never a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from hubbub.kernel.telemetry import redact
from hubbub.operations import role_checks, server_checks, storage_checks
from hubbub.operations.findings import Check, Finding, Limits
from hubbub.settings import Settings


async def examine(checks: Sequence[tuple[str, Check]], limits: Limits) -> list[Finding]:
    """Run every check at once; the findings in the order of `checks`."""
    found = await asyncio.gather(*(_bounded(name, check, limits) for name, check in checks))
    return [finding for findings in found for finding in findings]


def healthy(findings: Sequence[Finding]) -> bool:
    """No finding failed (warnings are the operator's to weigh)."""
    return all(finding.status != "fail" for finding in findings)


async def _bounded(name: str, check: Check, limits: Limits) -> list[Finding]:
    # The checks bound each request by the timeout themselves; this second, looser
    # bound catches what they cannot (a DNS lookup, a server that accepts and stalls).
    try:
        async with asyncio.timeout(limits.timeout_s + 1):
            return await check()
    except TimeoutError:
        detail = f"no answer within {limits.timeout_s:g} s"
        return [Finding(name, "fail", detail, "check that the server is up and reachable")]
    except Exception as error:  # a doctor reports what it could not check; it goes on
        detail = redact(f"the check failed: {type(error).__name__}: {error}")
        return [Finding(name, "fail", detail)]


def settings_finding(error: Exception) -> Finding:
    """The one finding when the settings themselves do not validate."""
    return Finding(
        "settings", "fail", str(error), "fix the variables named (`hubbub config` shows all)"
    )


def plan(
    settings: Settings, role_urls: Mapping[str, str], limits: Limits
) -> list[tuple[str, Check]]:
    """The checks the settings call for: the data dir, the event log, each relational
    store, the other databases and servers they name, and the roles at `role_urls`."""
    return [
        *storage_checks.plan(settings, limits),
        *server_checks.plan(settings, limits),
        *role_checks.plan(role_urls, limits),
    ]
