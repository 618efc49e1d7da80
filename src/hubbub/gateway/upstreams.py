"""The services behind the gateway: one HTTP client, timeout and circuit breaker each.

A breaker is closed while its upstream answers. After `failures` failures in a row
(a refused connection, a timeout, or a 502/503/504 from it) it opens: requests are
answered 503 at once, with a Retry-After of the time left, instead of each waiting out
a timeout. When that time is up it is half-open: one trial request goes through, and
its outcome closes the breaker again or opens it for another period.

The breaker itself is `hubbub.kernel.breaker.CircuitBreaker` (the Redis adapters use it
too), re-exported here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from hubbub.gateway.http1 import Pool, Response, UpstreamError, UpstreamTimeout
from hubbub.gateway.ports import PLATFORM
from hubbub.gateway.replicas import Replicas, open_pool
from hubbub.kernel.breaker import CircuitBreaker, State
from hubbub.kernel.signing import RequestSigner

__all__ = ["FAILING_STATUSES", "CircuitBreaker", "State", "Unavailable", "Upstream"]
FAILING_STATUSES = frozenset({502, 503, 504})


class Unavailable(Exception):
    """The upstream cannot be asked now; try again after `retry_after_s`. `status` is
    what the gateway answers: 504 when it did not answer in time, else 503."""

    def __init__(self, upstream: str, reason: str, retry_after_s: float, status: int = 503) -> None:
        super().__init__(f"{upstream} is unavailable: {reason}")
        self.upstream = upstream
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.status = status


@dataclass
class Upstream:
    """One service the gateway calls: where it is, how long to wait, and its breaker."""

    name: str
    base_url: str
    timeout_s: float
    breaker: CircuitBreaker
    signer: RequestSigner | None = None
    """Signs what is sent to a role of the platform; None for the legacy application."""
    pool: Pool | Replicas = field(init=False)
    """One pool, or one per replica when `base_url` names several (`hubbub.gateway.replicas`)."""

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.pool = open_pool(
            self.base_url, connect_timeout_s=min(self.timeout_s, 2.0), hold_s=self.breaker.reset_s
        )

    def replicas_held_out(self) -> int:
        """How many of this upstream's replicas are held out after failing (0 with one)."""
        return self.pool.held_out() if isinstance(self.pool, Replicas) else 0

    def check(self) -> None:
        """Raise `Unavailable` when the breaker holds requests back."""
        if not self.breaker.admit():
            raise Unavailable(
                self.name, "its circuit is open", max(1.0, self.breaker.retry_after_s())
            )

    async def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | bytes | None = None,
    ) -> Response:
        """Send through the breaker; the answer's body is read by the caller, as it
        streams. No answer in time is `Unavailable` with status 504; a refused or broken
        connection is `Unavailable` with status 503."""
        self.check()
        try:
            response = await self.pool.request(
                method, target, headers, body, timeout_s=self.timeout_s
            )
        except UpstreamTimeout as error:
            self.breaker.failed()
            raise Unavailable(self.name, str(error), 1.0, status=504) from error
        except UpstreamError as error:
            self.breaker.failed()
            raise Unavailable(
                self.name, str(error), max(1.0, self.breaker.retry_after_s())
            ) from error
        if response.status in FAILING_STATUSES:
            self.breaker.failed()
        else:
            self.breaker.succeeded()
        return response

    async def get(self, path: str, timeout_s: float | None = None) -> tuple[int, bytes]:
        """A small GET off the request path (health checks, API descriptions), outside
        the breaker; raises `UpstreamError` (a timeout is one too)."""
        headers = self.signer.headers("GET", path, PLATFORM, "gateway") if self.signer else []
        response = await self.pool.request(
            "GET", path, headers, timeout_s=timeout_s or self.timeout_s
        )
        try:
            return response.status, await response.read()
        finally:
            response.release()

    async def close(self) -> None:
        self.pool.close()
