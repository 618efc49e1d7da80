"""The ingest hot path: decode, validate, map, dedupe and append, a batch at a time.

Two stages run concurrently so that mapping batch N+1 overlaps appending batch N (the
log writes on its own thread, which releases the GIL inside SQLite or waits on the
network for NATS):

    submit() -> [queue: queue_batches] -> map stage -> [queue: 1] -> append stage

Both queues are bounded: when the log is slow, `submit` waits, so a connector slows
down instead of buffering without limit, and nothing is dropped. Each batch gets a
correlation id (a traceparent) carried by its events, its dead letters and its one
log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import msgspec
import structlog

from hubbub.eventlog.ports import EventLog
from hubbub.ingest.mapping.base import MappedBatch, SourceMapping
from hubbub.ingest.ports import IngestState
from hubbub.kernel import telemetry
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import Event, InputRejected

log = structlog.get_logger("hubbub.ingest")


class IngestSummary(msgspec.Struct):
    """Counts of source events (lines) by outcome; they add up to the lines submitted."""

    accepted: int = 0
    skipped: int = 0
    rejected: int = 0
    duplicates: int = 0
    skipped_reasons: dict[str, int] = {}
    newest_ts: int = 0
    facets_dropped: int = 0

    @property
    def total(self) -> int:
        return self.accepted + self.skipped + self.rejected + self.duplicates

    def add(self, other: IngestSummary) -> None:
        self.accepted += other.accepted
        self.skipped += other.skipped
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        reasons = Counter(self.skipped_reasons)
        reasons.update(other.skipped_reasons)
        self.skipped_reasons = dict(reasons)
        self.newest_ts = max(self.newest_ts, other.newest_ts)
        self.facets_dropped += other.facets_dropped


@dataclass(slots=True)
class _Work:
    lines: Sequence[bytes]
    trace: str
    done: asyncio.Future[IngestSummary]
    pushed_by: str = ""
    started: float = field(default_factory=time.perf_counter)
    mapped: MappedBatch | None = None
    rejected: list[InputRejected] = field(default_factory=list)
    refs_saved: asyncio.Future[None] | None = None


_STOP: Any = object()


class SinkBase:
    """What every ingestor derives from its `start`, `stop` and `submit`."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def submit(
        self, lines: Sequence[bytes], trace: str | None = None, pushed_by: str = ""
    ) -> asyncio.Future[IngestSummary]:
        raise NotImplementedError

    async def ingest(
        self, lines: Sequence[bytes], trace: str | None = None, pushed_by: str = ""
    ) -> IngestSummary:
        """Submit one batch and wait for its outcome; `pushed_by` (`tenant/key`) is
        recorded on every event the batch makes, dead letters included."""
        return await (await self.submit(lines, trace, pushed_by))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class Ingestor(SinkBase):
    """Runs one source's batches through the pipeline; `start` it, `submit`, then `stop`."""

    def __init__(
        self,
        mapping: SourceMapping[Any],
        event_log: EventLog,
        state: IngestState,
        clock: Clock,
        *,
        queue_batches: int = 4,
    ) -> None:
        self.mapping = mapping
        self.event_log = event_log
        self.state = state
        self.clock = clock
        self.source = mapping.source
        self.totals = IngestSummary()
        self._incoming: asyncio.Queue[_Work] = asyncio.Queue(queue_batches)
        self._mapped: asyncio.Queue[_Work] = asyncio.Queue(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._refs_saved: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._map_stage(), name=f"ingest-map-{self.source}"),
            asyncio.create_task(self._append_stage(), name=f"ingest-append-{self.source}"),
        ]

    async def stop(self) -> None:
        """Finish every batch already submitted, then stop the stages."""
        if self._tasks:
            await self._incoming.put(_STOP)
            await asyncio.gather(*self._tasks)
            self._tasks = []

    async def submit(
        self, lines: Sequence[bytes], trace: str | None = None, pushed_by: str = ""
    ) -> asyncio.Future[IngestSummary]:
        """Queue a batch; waits while the queue is full. The future resolves once appended."""
        if not self._tasks:
            raise RuntimeError("the ingestor is not started")
        work = _Work(lines, trace or telemetry.new_traceparent(), asyncio.Future(), pushed_by)
        await self._incoming.put(work)
        return work.done

    async def _map_stage(self) -> None:
        while (work := await self._incoming.get()) is not _STOP:
            telemetry.INGEST_QUEUE_DEPTH.labels(self.source).set(self._incoming.qsize())
            try:
                await self._map(work)
            except Exception as error:  # the batch fails, the pipeline goes on
                _settle(work.done, error=error)
                continue
            await self._mapped.put(work)
        await self._mapped.put(_STOP)

    async def _map(self, work: _Work) -> None:
        decoded = self.mapping.decode(work.lines, work.trace)
        if self._refs_saved is not None:
            # This batch's lookups must see the last batch's refs. If saving them failed,
            # that batch fails with the error (in the append stage); this one goes on.
            await asyncio.wait([self._refs_saved])
        refs = await self.state.get_refs(decoded.ref_keys)
        work.mapped = self.mapping.map(decoded, refs, work.trace)
        work.rejected = decoded.rejected + work.mapped.rejected
        # New refs are saved while the next batch decodes (its lookups wait for them);
        # the append stage waits too before the batch counts as done. Refs this batch
        # undid are forgotten only once it is in the log: if the append fails, the
        # replayed deletes must find them again.
        work.refs_saved = self._refs_saved = asyncio.ensure_future(
            self.state.apply_refs(work.mapped.refs_put, ())
        )

    async def _append_stage(self) -> None:
        while (work := await self._mapped.get()) is not _STOP:
            try:
                summary = await self._append(work)
            except Exception as error:
                _settle(work.done, error=error)
                self._report_failure(work, error)
            else:
                _settle(work.done, summary)
                self._observe(work, summary)

    def _report_failure(self, work: _Work, error: Exception) -> None:
        with contextlib.suppress(Exception):
            log.error(
                "ingest batch failed",
                trace=work.trace,
                source=self.source,
                lines=len(work.lines),
                error=str(error),
            )

    async def _append(self, work: _Work) -> IngestSummary:
        mapped = work.mapped
        assert mapped is not None
        events: list[Event] = [*mapped.events, *work.rejected]
        if work.pushed_by:
            events = [msgspec.structs.replace(e, pushed_by=work.pushed_by) for e in events]
        result = await self.event_log.append(events)
        if work.refs_saved is not None:
            await work.refs_saved
        await self.state.apply_refs({}, mapped.refs_deleted)
        duplicates = _count_duplicates(mapped.primary_ids, result.duplicate_ids)
        summary = IngestSummary(
            accepted=len(mapped.primary_ids) - duplicates,
            skipped=sum(mapped.skipped.values()),
            rejected=len(work.rejected),
            duplicates=duplicates,
            skipped_reasons=dict(mapped.skipped),
            newest_ts=max((event.ts for event in mapped.events), default=0),
            facets_dropped=mapped.facets_dropped,
        )
        self.totals.add(summary)
        return summary

    def _observe(self, work: _Work, summary: IngestSummary) -> None:
        """Metrics and one log line for the batch; a failure here never fails the batch."""
        try:
            self._record(work, summary)
        except Exception as error:  # a closed log stream, say
            with contextlib.suppress(Exception):
                log.warning("could not record batch telemetry", error=str(error))

    def _record(self, work: _Work, summary: IngestSummary) -> None:
        mapped = work.mapped
        assert mapped is not None
        source = self.source
        elapsed = time.perf_counter() - work.started
        observe_summary(source, summary, len(work.lines), elapsed, self.clock.now_us())
        log.debug(
            "ingest batch",
            trace=work.trace,
            source=source,
            lines=len(work.lines),
            accepted=summary.accepted,
            skipped=summary.skipped,
            rejected=summary.rejected,
            duplicates=summary.duplicates,
            seconds=round(elapsed, 4),
        )
        if summary.rejected:
            log.warning(
                "input dead-lettered",
                trace=work.trace,
                source=source,
                rejected=summary.rejected,
                reasons=sorted({r.reason.split(":")[0] for r in work.rejected}),
            )


def _settle(
    done: asyncio.Future[IngestSummary],
    summary: IngestSummary | None = None,
    *,
    error: Exception | None = None,
) -> None:
    """Resolve a batch's future, unless its caller cancelled it (it no longer listens)."""
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(summary or IngestSummary())


def _count_duplicates(primary_ids: list[str], duplicate_ids: list[str]) -> int:
    """Lines whose primary event the log already had (a line sent twice counts once)."""
    remaining = Counter(duplicate_ids)
    duplicates = 0
    for event_id in primary_ids:
        if remaining[event_id]:
            remaining[event_id] -= 1
            duplicates += 1
    return duplicates


def observe_summary(
    source: str, summary: IngestSummary, lines: int, seconds: float, now_us: int
) -> None:
    """The per-batch metrics every ingestor records: outcomes, size, time, lag, facets."""
    for outcome in ("accepted", "skipped", "rejected", "duplicates"):
        telemetry.INGEST_EVENTS.labels(source, outcome).inc(getattr(summary, outcome))
    telemetry.INGEST_BATCH_SIZE.labels(source).observe(lines)
    telemetry.INGEST_BATCH_SECONDS.labels(source).observe(seconds)
    telemetry.INGEST_FACETS_DROPPED.labels(source).inc(summary.facets_dropped)
    if summary.newest_ts:
        telemetry.INGEST_LAG_SECONDS.labels(source).set((now_us - summary.newest_ts) / 1e6)


class BatchSink(Protocol):
    """What a connector feeds: an `Ingestor`, or several behind a `ShardedIngestor`."""

    source: str
    totals: IngestSummary

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(
        self, lines: Sequence[bytes], trace: str | None = None, pushed_by: str = ""
    ) -> asyncio.Future[IngestSummary]: ...

    async def ingest(
        self, lines: Sequence[bytes], trace: str | None = None, pushed_by: str = ""
    ) -> IngestSummary: ...
