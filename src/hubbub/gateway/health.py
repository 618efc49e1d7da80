"""The health of every upstream, as the gateway sees it, checked in the background.

Each upstream is asked `GET /healthz` every `interval_s`. It is `ok` when it answers
(any status below 500: a legacy application may have no such route) and its circuit
is closed, `degraded` when it answers but its circuit is not closed
(requests have been failing), it is slow to answer or one of its replicas is held out
(`hubbub.gateway.replicas`), and `down` when it does not
answer: at once when its connection is refused or broken (the process is gone), after
`TIMEOUTS_TO_DOWN` checks in a row without an answer in time (a busy process answers
late: it is `degraded` meanwhile, and its routes are still sent to it). While an
upstream is down, its routes are answered 503 at once.

The shared servers the gateway itself uses (Redis, for the rate limiter) are
`dependencies`: each is `ok`, or `degraded` while its guard answers from the process
instead; a degraded dependency makes the gateway `degraded` too, but never `down`.

A role that follows the log says in its `/healthz` how far it has got (`positions`: the
last position folded, per topic); the last it said is kept for `hubbub.gateway.progress`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Final, Literal

import structlog

from hubbub.gateway.http1 import UpstreamError, UpstreamTimeout
from hubbub.gateway.upstreams import Upstream
from hubbub.kernel.breaker import Guard, GuardStatus
from hubbub.kernel.clock import Clock

Status = Literal["ok", "degraded", "down"]
SLOW_S: Final = 0.5
TIMEOUTS_TO_DOWN: Final = 3
"""Checks in a row an upstream may leave unanswered in time before it is `down`: one
slow answer from a role busy folding the log took its routes away (503) for a second."""
log = structlog.get_logger()


class Health:
    def __init__(
        self,
        upstreams: Mapping[str, Upstream],
        interval_s: float = 1.0,
        dependencies: Mapping[str, Guard] | None = None,
        *,
        clock: Clock,
    ) -> None:
        self._upstreams = upstreams
        self._clock = clock
        self._interval_s = interval_s
        self._dependencies = dict(dependencies or {})
        self._answered: dict[str, tuple[bool, float]] = {}
        self._late: dict[str, int] = {}
        self._positions: dict[str, dict[str, int]] = {}

    def status(self, name: str) -> Status:
        """What is known of `name`; `ok` until the first check says otherwise."""
        answered, took_s = self._answered.get(name, (True, 0.0))
        if not answered:
            return "down"
        upstream = self._upstreams[name]
        late = took_s > SLOW_S or self._late.get(name, 0) > 0
        if upstream.breaker.state != "closed" or late or upstream.replicas_held_out():
            return "degraded"
        return "ok"

    def down(self, name: str) -> bool:
        return not self._answered.get(name, (True, 0.0))[0]

    def report(self) -> dict[str, Status]:
        return {name: self.status(name) for name in self._upstreams}

    def positions(self) -> dict[str, dict[str, int]]:
        """What each role that follows the log last said it had folded, per topic."""
        return dict(self._positions)

    def dependencies(self) -> dict[str, GuardStatus]:
        """Each shared server the gateway uses: `ok`, or `degraded` (answered from the
        process meanwhile)."""
        return {name: guard.status for name, guard in self._dependencies.items()}

    def overall(self) -> Status:
        """`ok` when every upstream and dependency is, `down` when no upstream answers,
        `degraded` between."""
        statuses = set(self.report().values())
        if statuses <= {"ok"}:
            return "ok" if set(self.dependencies().values()) <= {"ok"} else "degraded"
        return "down" if statuses == {"down"} else "degraded"

    async def check(self) -> None:
        """Ask every upstream once, at the same time."""
        await asyncio.gather(*(self._check(name) for name in self._upstreams))

    async def watch(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval_s)

    async def _check(self, name: str) -> None:
        upstream = self._upstreams[name]
        started = self._clock.monotonic_s()
        try:
            status, body = await upstream.get("/healthz", min(upstream.timeout_s, 2.0))
            answered = status < 500  # a legacy app may have no /healthz: it answered
            self._late[name] = 0
            if status == 200 and (positions := _positions(body)) is not None:
                self._positions[name] = positions
        except UpstreamTimeout:
            self._late[name] = late = self._late.get(name, 0) + 1
            answered = late < TIMEOUTS_TO_DOWN and self._answered.get(name, (True, 0.0))[0]
        except UpstreamError:
            answered = False
        except Exception:  # a check must never end the gateway
            log.exception("health check failed", upstream=name)
            answered = False
        was = self._answered.get(name, (True, 0.0))[0]
        self._answered[name] = (answered, self._clock.monotonic_s() - started)
        if answered != was:
            log.warning("upstream is back" if answered else "upstream is down", upstream=name)
            if answered:
                upstream.breaker.succeeded()


def _positions(body: bytes) -> dict[str, int] | None:
    """The `positions` a role's health answer names, when it names them well."""
    try:
        found = json.loads(body).get("positions")
    except (ValueError, AttributeError):
        return None
    if not isinstance(found, dict):
        return None
    return {str(t): p for t, p in found.items() if isinstance(p, int) and p >= 0}
