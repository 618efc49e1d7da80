"""Several replicas of one role behind one upstream: requests spread over them, and a
replica that cannot be reached is left out until it can be again.

An upstream's URL setting may name several replicas, separated by commas
(`HUBBUB_MENTIONS_URL=http://10.0.0.2:8082,http://10.0.0.3:8082`). Requests go to the
replicas in turn. A replica that cannot be reached (refused, reset, no connection in
time) is held out for `hold_s`, and a request that may be asked twice (GET, HEAD or
OPTIONS, with no body streamed) goes on to the next replica at once: the caller sees
an answer, only later. A replica that answers late is not held out at once: a
connection to it is tried off the request path, and it is held out only if none can be
made (cut off under a connection made before); one only busy stays in turn (holding a
slow replica out after one late answer took the whole role away when every replica was
busy at once). A late request that may be asked twice goes on to the next replica too;
when every replica answers late, the caller is told it timed out. When a
replica's hold is up, a connection to it is tried off the request path; it is back in
turn once one is made, and held out again otherwise, so a replica cut off from the
gateway comes back on its own, without a restart. While every replica is held out, a
request fails at once with `UpstreamError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from hubbub.gateway.http1 import (
    NoConnectionInTime,
    Pool,
    Response,
    UpstreamError,
    UpstreamTimeout,
)

SAFE_TO_REPEAT: Final = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class _Replica:
    pool: Pool
    held_until: float = 0.0
    probing: bool = False


class Replicas:
    """The `Pool` interface over several replicas of one upstream (see the module)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        connect_timeout_s: float,
        hold_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if len(urls) < 2:
            raise ValueError("replicas are two URLs or more")
        self._replicas = [_Replica(Pool(url, connect_timeout_s=connect_timeout_s)) for url in urls]
        self._connect_timeout_s = connect_timeout_s
        self._hold_s = hold_s
        self._monotonic = monotonic
        self._next = 0
        self._probes: set[asyncio.Task[None]] = set()

    def held_out(self) -> int:
        """How many replicas are held out now, after failing."""
        now = self._monotonic()
        return sum(1 for replica in self._replicas if replica.held_until > now)

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | bytes | None = None,
        *,
        timeout_s: float,
    ) -> Response:
        """`Pool.request` on the next replica not held out, going on to the others
        when the request may be sent twice."""
        self._probe_released()
        repeatable = method in SAFE_TO_REPEAT and not isinstance(body, AsyncIterator)
        failed: UpstreamError | None = None
        for replica in self._in_turn():
            try:
                return await replica.pool.request(
                    method, target, headers, body, timeout_s=timeout_s
                )
            except UpstreamError as error:
                late = isinstance(error, UpstreamTimeout) and not isinstance(
                    error, NoConnectionInTime
                )
                if late:  # busy, or cut off under a connection made before: a probe tells
                    self._start_probe(replica)
                else:
                    self._hold(replica)
                if not repeatable:
                    raise
                failed = error
        if failed is not None:
            raise failed
        raise UpstreamError("every replica is held out after failing")

    def close(self) -> None:
        for probe in self._probes:
            probe.cancel()
        for replica in self._replicas:
            replica.pool.close()

    def _in_turn(self) -> Iterator[_Replica]:
        """The replicas not held out, starting from the next one in turn."""
        start, self._next = self._next, (self._next + 1) % len(self._replicas)
        now = self._monotonic()
        for offset in range(len(self._replicas)):
            replica = self._replicas[(start + offset) % len(self._replicas)]
            if replica.held_until <= now and not replica.probing:
                yield replica

    def _hold(self, replica: _Replica) -> None:
        replica.held_until = self._monotonic() + self._hold_s

    def _probe_released(self) -> None:
        """Start a probe of each replica whose hold is up."""
        now = self._monotonic()
        for replica in self._replicas:
            if replica.held_until and replica.held_until <= now:
                self._start_probe(replica)

    def _start_probe(self, replica: _Replica) -> None:
        if replica.probing:
            return
        replica.probing = True
        probe = asyncio.create_task(self._probe(replica))
        self._probes.add(probe)
        probe.add_done_callback(self._probes.discard)

    async def _probe(self, replica: _Replica) -> None:
        """Back in turn once a connection to the replica is made; held out otherwise."""
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, writer = await asyncio.open_connection(replica.pool.host, replica.pool.port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            replica.held_until = 0.0
        except (OSError, TimeoutError):
            self._hold(replica)
        finally:
            replica.probing = False


def open_pool(base_url: str, *, connect_timeout_s: float, hold_s: float) -> Pool | Replicas:
    """A `Pool` for one URL; `Replicas` for several, separated by commas."""
    urls = [url.strip().rstrip("/") for url in base_url.split(",") if url.strip()]
    if len(urls) == 1:
        return Pool(urls[0], connect_timeout_s=connect_timeout_s)
    return Replicas(urls, connect_timeout_s=connect_timeout_s, hold_s=hold_s)
