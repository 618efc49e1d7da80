"""Ingest in several worker processes, each owning a shard of the accounts.

One Python process tops out near 80,000 Jetstream events/s: decoding and mapping hold
the GIL, and the log's and the refs' threads wait for it between statements. The
sharded ingestor splits each batch by the did of the account that acted, and hands
each part to a worker process running the ordinary pipeline (`Ingestor`) against the
same event log and ingest state. Everything an account does goes to one worker, in
order, so a delete always finds the ref its create left; the log's id index and its
positions are shared (SQLite assigns them under its write lock, JetStream with an
expected-sequence check), so dedupe and dense positions hold across workers.

A batch's future resolves once every part of it is appended, in submission order, so
a connector saves a cursor only behind lines that are all in the log. Each worker has
at most `max_in_flight` parts outstanding: `submit` waits beyond that (backpressure).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import re
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import msgspec
import structlog

from hubbub.ingest.service import BatchSink, IngestSummary, SinkBase, observe_summary
from hubbub.kernel import telemetry
from hubbub.kernel.clock import Clock
from hubbub.settings import Settings

log = structlog.get_logger("hubbub.ingest.worker")
_DID = re.compile(rb'"did"\s*:\s*"([^"]*)"')
_READY = -1  # the batch number of the reply a worker sends once it is ready
_START_TIMEOUT_S = 60.0


class WorkerFailed(RuntimeError):
    """An ingest worker process exited or could not process a batch."""


WorkerMain = Callable[[Connection, str, str, str], None]
"""A worker process's entry point, given (its pipe, the settings as JSON, the source,
the instance): it opens an in-process ingestor and hands it to `serve_worker`. The
composition root provides it (`hubbub.bootstrap.ingest_worker_main`): ingest does not
build platforms."""
OpenIngestor = Callable[[], Awaitable[tuple[BatchSink, Callable[[], Awaitable[None]]]]]


class _Request(msgspec.Struct, array_like=True):
    batch: int
    trace: str
    lines: list[bytes]
    pushed_by: str = ""


class _Reply(msgspec.Struct, array_like=True):
    batch: int
    summary: IngestSummary | None = None
    error: str = ""


def shard_of(line: bytes, shards: int) -> int:
    """The worker that owns the account acting in `line` (by its first `did`, which in
    a Jetstream event is the top-level one); lines without one go to worker 0."""
    found = _DID.search(line)
    return zlib.crc32(found.group(1)) % shards if found else 0


def _failed(error: Exception) -> asyncio.Future[IngestSummary]:
    failed: asyncio.Future[IngestSummary] = asyncio.get_running_loop().create_future()
    failed.set_exception(error)
    return failed


class _Worker:
    """One worker process and the two threads that talk to it over a pipe."""

    def __init__(
        self, index: int, settings: Settings, source: str, instance: str, main: WorkerMain
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.index = index
        self.connection, child = context.Pipe(duplex=True)
        self.process = context.Process(
            target=main,
            args=(child, settings.revealed_json(), source, instance),
            name=f"hubbub-ingest-{source}-{index}",
            daemon=True,
        )
        self.sender = ThreadPoolExecutor(1, thread_name_prefix=f"ingest-send-{index}")
        self.pending: dict[int, asyncio.Future[IngestSummary]] = {}

    async def start(self) -> None:
        """Start the process; returns once its pipeline is built (or raises why not)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[IngestSummary] = loop.create_future()
        self.pending[_READY] = ready
        self.process.start()
        threading.Thread(
            target=self._receive, args=(loop,), name=f"ingest-recv-{self.index}", daemon=True
        ).start()
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                await ready
        except TimeoutError:
            raise WorkerFailed(
                f"worker {self.index} did not start within {_START_TIMEOUT_S} s"
            ) from None

    async def send(self, request: _Request) -> asyncio.Future[IngestSummary]:
        if not self.process.is_alive():
            raise WorkerFailed(
                f"worker {self.index} is not running (exit code "
                f"{self.process.exitcode}); see its log lines above"
            )
        done: asyncio.Future[IngestSummary] = asyncio.get_running_loop().create_future()
        self.pending[request.batch] = done
        payload = msgspec.msgpack.encode(request)
        try:
            await asyncio.get_running_loop().run_in_executor(
                self.sender, self.connection.send_bytes, payload
            )
        except OSError as error:
            self.pending.pop(request.batch, None)
            raise WorkerFailed(f"worker {self.index} stopped listening: {error}") from error
        return done

    def _receive(self, loop: asyncio.AbstractEventLoop) -> None:
        decoder = msgspec.msgpack.Decoder(_Reply)
        while True:
            try:
                reply = decoder.decode(self.connection.recv_bytes())
            except (EOFError, OSError):
                loop.call_soon_threadsafe(self._fail_all, "the ingest worker exited")
                return
            loop.call_soon_threadsafe(self._resolve, reply)

    def _resolve(self, reply: _Reply) -> None:
        done = self.pending.pop(reply.batch, None)
        if done is None or done.done():
            return
        if reply.summary is not None:
            done.set_result(reply.summary)
        else:
            done.set_exception(WorkerFailed(f"worker {self.index}: {reply.error}"))

    def _fail_all(self, reason: str) -> None:
        for done in self.pending.values():
            if not done.done():
                done.set_exception(WorkerFailed(f"worker {self.index}: {reason}"))
        self.pending.clear()

    async def stop(self) -> None:
        with contextlib.suppress(OSError):
            await asyncio.get_running_loop().run_in_executor(
                self.sender, self.connection.send_bytes, b""
            )
        await asyncio.get_running_loop().run_in_executor(None, self.process.join, 30)
        if self.process.is_alive():
            self.process.kill()
        self.sender.shutdown(wait=False)
        self.connection.close()


class ShardedIngestor(SinkBase):
    """The `Ingestor` interface, spread over `workers` processes; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        source: str,
        *,
        workers: int,
        instance: str = "mastodon",
        max_in_flight: int = 3,
        main: WorkerMain,
        clock: Clock,
    ) -> None:
        self.source = source
        self.clock = clock
        self.totals = IngestSummary()
        self._workers = [_Worker(i, settings, source, instance, main) for i in range(workers)]
        self._slots = [asyncio.Semaphore(max_in_flight) for _ in range(workers)]
        self._next_batch = 0
        self._unresolved = 0
        self._previous: asyncio.Future[IngestSummary] | None = None
        self._started = False

    async def start(self) -> None:
        try:
            await asyncio.gather(*(worker.start() for worker in self._workers))
        except WorkerFailed:
            await asyncio.gather(*(worker.stop() for worker in self._workers))
            raise
        self._started = True

    async def stop(self) -> None:
        if self._started:
            if self._previous is not None:
                await asyncio.wait([self._previous])
            await asyncio.gather(*(worker.stop() for worker in self._workers))
            self._started = False

    async def submit(
        self, lines: Sequence[bytes], trace: str | None = None, pushed_by: str = ""
    ) -> asyncio.Future[IngestSummary]:
        """Split the batch by shard and hand the parts out; waits while a worker is full."""
        if not self._started:
            raise RuntimeError("the ingestor is not started")
        trace = trace or telemetry.new_traceparent()
        started = time.perf_counter()
        parts: list[list[bytes]] = [[] for _ in self._workers]
        shards = len(parts)
        for line in lines:
            parts[shard_of(line, shards)].append(line)
        batch, self._next_batch = self._next_batch, self._next_batch + 1
        futures: list[asyncio.Future[IngestSummary]] = []
        for index, part in enumerate(parts):
            if not part:
                continue
            try:
                futures.append(await self._send(index, _Request(batch, trace, part, pushed_by)))
            except WorkerFailed as error:
                # The parts already sent are still tracked (and awaited by what follows);
                # the batch as a whole fails with the reason.
                futures.append(_failed(error))
                break
        combined = asyncio.ensure_future(
            self._combine(futures, self._previous, len(lines), started)
        )
        self._previous = combined
        self._unresolved += 1
        telemetry.INGEST_QUEUE_DEPTH.labels(self.source).set(self._unresolved)
        return combined

    async def _send(self, index: int, request: _Request) -> asyncio.Future[IngestSummary]:
        slot = self._slots[index]
        await slot.acquire()
        done = await self._workers[index].send(request)
        done.add_done_callback(lambda _: slot.release())
        return done

    async def _combine(
        self,
        parts: list[asyncio.Future[IngestSummary]],
        previous: asyncio.Future[IngestSummary] | None,
        lines: int,
        started: float,
    ) -> IngestSummary:
        """All parts of a batch, resolved only after the batch before it.

        The workers' metrics stay in their processes; this one records every batch's
        outcome, size, time from submit to append, lag and dropped facets.
        """
        try:
            if previous is not None:
                await asyncio.wait([previous])
            await asyncio.wait(parts)  # every part settles before the batch does
            summaries = await asyncio.gather(*parts)
        finally:
            self._unresolved -= 1
            telemetry.INGEST_QUEUE_DEPTH.labels(self.source).set(self._unresolved)
        summary = IngestSummary()
        for part in summaries:
            summary.add(part)
        self.totals.add(summary)
        seconds = time.perf_counter() - started
        observe_summary(self.source, summary, lines, seconds, self.clock.now_us())
        return summary


async def serve_worker(connection: Connection, open_ingestor: OpenIngestor) -> None:
    """Run the batches that arrive on `connection` through the ingestor `open_ingestor`
    makes (with what closes it), replying to each; says why when it cannot start."""
    try:
        ingestor, close = await open_ingestor()
    except Exception as error:
        connection.send_bytes(msgspec.msgpack.encode(_Reply(_READY, None, str(error))))
        return
    connection.send_bytes(msgspec.msgpack.encode(_Reply(_READY, IngestSummary())))
    loop = asyncio.get_running_loop()
    requests: asyncio.Queue[bytes] = asyncio.Queue()
    threading.Thread(target=_read_requests, args=(connection, loop, requests), daemon=True).start()
    decoder = msgspec.msgpack.Decoder(_Request)
    try:
        while payload := await requests.get():
            request = decoder.decode(payload)
            done = await ingestor.submit(request.lines, request.trace, request.pushed_by)
            done.add_done_callback(functools.partial(_reply, connection, request.batch))
    finally:
        await close()


def _read_requests(connection: Connection, loop: asyncio.AbstractEventLoop, out: Any) -> None:
    while True:
        try:
            payload = connection.recv_bytes()
        except (EOFError, OSError):
            payload = b""
        loop.call_soon_threadsafe(out.put_nowait, payload)
        if not payload:
            return


def _reply(connection: Connection, batch: int, future: asyncio.Future[IngestSummary]) -> None:
    error = future.exception()
    reply = (
        _Reply(batch, None, f"{type(error).__name__}: {error}")
        if error
        else _Reply(batch, future.result())
    )
    connection.send_bytes(msgspec.msgpack.encode(reply))
