"""A circuit breaker, and `Guard`: calls to a shared server with a timeout, behind a
breaker, with a fallback in the process.

A breaker is closed while its server answers. After `failures` failures in a row it
opens: callers do not try the server, for `reset_s`. When that time is up it is
half-open: one trial call goes through, and its outcome closes the breaker again or
opens it for another period. So a server that is down or slow costs a caller at most
one timeout per period, not one per call.

The breaker is written here rather than taken from a library: the ones on PyPI
(pybreaker, aiobreaker) are either synchronous or unmaintained, and this is the
whole of the state machine Hubbub needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import structlog

from hubbub.kernel.clock import Clock, SystemClock

State = Literal["closed", "open", "half-open"]
GuardStatus = Literal["ok", "degraded"]
T = TypeVar("T")
log = structlog.get_logger()


@dataclass
class CircuitBreaker:
    failures: int = 5
    reset_s: float = 5.0
    clock: Clock = field(default_factory=SystemClock)
    _failed: int = 0
    _opened_at: float | None = None
    _trial: bool = False

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        return "open" if self.clock.monotonic_s() - self._opened_at < self.reset_s else "half-open"

    def retry_after_s(self) -> float:
        """Seconds until the breaker lets a request through (0 when it does now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_s - self.clock.monotonic_s())

    def admit(self) -> bool:
        """Whether a request may go now; in half-open, only one trial at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial:
            self._trial = True
            return True
        return False

    def succeeded(self) -> None:
        self._failed, self._opened_at, self._trial = 0, None, False

    def failed(self) -> None:
        self._failed += 1
        if self._trial or self._failed >= self.failures:
            self._opened_at, self._trial = self.clock.monotonic_s(), False


class Guard:
    """Calls to one shared server (Redis, say), each bounded by `timeout_s`, behind
    `breaker`; a call that fails with one of `errors` or times out, or that the open
    breaker holds back, is answered by its fallback instead.

    `status` is `degraded` from the first failure until a call succeeds again, so health
    shows a server that is failing before the breaker opens. An error not in `errors`
    (a bug, not an outage) still counts against the breaker, so a half-open trial always
    ends, and is raised.
    """

    def __init__(
        self,
        name: str,
        breaker: CircuitBreaker,
        timeout_s: float,
        errors: tuple[type[BaseException], ...] = (OSError,),
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"a guard's timeout must be above 0, not {timeout_s}")
        self.name = name
        self.breaker = breaker
        self.timeout_s = timeout_s
        self._errors: tuple[type[BaseException], ...] = (*errors, TimeoutError)
        self._failing = False

    @property
    def status(self) -> GuardStatus:
        return "degraded" if self._failing or self.breaker.state != "closed" else "ok"

    async def call(
        self, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        """`primary()` within the timeout if the breaker admits it and it succeeds; else
        `fallback()`."""
        if not self.breaker.admit():
            return await fallback()
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await primary()
        except self._errors as error:
            self._failed(error)
            return await fallback()
        except BaseException:
            self.breaker.failed()
            raise
        self._succeeded()
        return result

    def _failed(self, error: BaseException) -> None:
        was = self.breaker.state
        self.breaker.failed()
        if not self._failing:
            log.warning(
                "shared server failing: answering from this process",
                server=self.name,
                error=repr(error),
            )
        self._failing = True
        if was != "open" and self.breaker.state == "open":
            log.warning(
                "circuit opened", server=self.name, retry_after_s=self.breaker.retry_after_s()
            )

    def _succeeded(self) -> None:
        if self._failing:
            log.info("shared server answers again", server=self.name)
        self._failing = False
        self.breaker.succeeded()
