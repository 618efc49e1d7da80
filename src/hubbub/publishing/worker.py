"""The publisher: claims due jobs and publishes them, each exactly once.

Every `poll_s` it claims as many due jobs as it has free slots (`concurrency` at most at
once; `JobStore.claim`: no other publisher, here or on another host, holds them while
its lease lasts) and publishes each as soon as it is claimed. For each job:

1. a job that may be on the network already (`check_first`: a send was interrupted, or
   its outcome was unknown) is looked for first (`Network.find`), and marked published
   if it is there;
2. it is marked `sending`, then sent with its idempotency key / record key;
3. the answer decides: published; worth retrying (a 5xx, a 429: again after the
   network's `Retry-After` or a backoff, until `max_attempts`); permanent (failed, with
   the network's message); or unknown (a timeout after sending: claimable again after a
   backoff, and then looked for before anything is sent).

Each minute the sweeper marks missed the jobs due longer ago than `max_late_s` (the
platform was down, or the network refused for that long), with the reason, so nothing
due is skipped silently; and drops finished jobs older than the retention.

A worker that loses its lease (it stalled past `lease_s`, and another claimed the job)
changes nothing more about that job (`LostLease`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import structlog

from hubbub.kernel.background import Background
from hubbub.kernel.clock import Clock
from hubbub.publishing.journal import Journal
from hubbub.publishing.ports import (
    Job,
    JobStore,
    LostLease,
    Network,
    NotFound,
    OutcomeUnknown,
    Permanent,
    Transient,
)

SECOND_US: Final = 1_000_000
log = structlog.get_logger("hubbub.publishing")


@dataclass(frozen=True)
class PublishPolicy:
    poll_s: float = 0.1
    batch: int = 200
    concurrency: int = 64
    lease_s: float = 60.0
    max_attempts: int = 8
    backoff_s: float = 2.0
    max_late_s: float = 3600.0
    sweep_every_s: float = 60.0
    keep_finished_s: float = 90 * 86_400.0


class Publisher:
    def __init__(
        self,
        store: JobStore,
        networks: Mapping[str, Network],
        clock: Clock,
        policy: PublishPolicy | None = None,
        name: str | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.store = store
        self.journal = journal or Journal(None, clock)
        self.networks = networks
        self.clock = clock
        self.policy = policy or PublishPolicy()
        self.name = name or f"publisher-{secrets.token_hex(4)}"
        self._slots = asyncio.Semaphore(self.policy.concurrency)

    async def once(self) -> int:
        """Claim what is due now and publish it; answers how many jobs were claimed."""
        policy = self.policy
        claimed = await asyncio.to_thread(
            self.store.claim, self.name, self.clock.now_us(), policy.lease_s, policy.batch
        )
        await asyncio.gather(*(self._publish(job) for job in claimed))
        return len(claimed)

    async def run(self) -> None:
        """Claim as many due jobs as there are free slots, every `poll_s`, and publish
        each as soon as it is claimed: a job falling due waits for a poll and a free
        slot, never for a whole batch before it to finish."""
        policy = self.policy
        inflight: set[asyncio.Task[None]] = set()
        try:
            while True:
                room = min(policy.batch, policy.concurrency - len(inflight))
                claimed: list[Job] = []
                if room > 0:
                    claimed = await asyncio.to_thread(
                        self.store.claim, self.name, self.clock.now_us(), policy.lease_s, room
                    )
                for job in claimed:
                    task = asyncio.create_task(self._publish(job))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                if not claimed or len(claimed) < room:
                    await asyncio.sleep(policy.poll_s)
        finally:
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)

    async def sweep(self) -> None:
        """Every `sweep_every_s`: mark missed what is too late, forget what is old."""
        while True:
            now = self.clock.now_us()
            missed = await asyncio.to_thread(
                self.store.miss, now, int(self.policy.max_late_s * SECOND_US)
            )
            for job in missed:
                log.warning("a post was missed", job=job.id, tenant=job.tenant, due_us=job.due_us)
                await self._record(job)
            keep_us = int(self.policy.keep_finished_s * SECOND_US)
            await asyncio.to_thread(self.store.forget_before, now - keep_us)
            await asyncio.sleep(self.policy.sweep_every_s)

    async def _publish(self, job: Job) -> None:
        async with self._slots:
            try:
                await self._attempt(job)
            except LostLease:
                log.info("a job was claimed by another publisher meanwhile", job=job.id)

    async def _attempt(self, job: Job) -> None:
        store, now, me = self.store, self.clock.now_us, self.name
        try:
            channel = await asyncio.to_thread(store.channel, job.tenant, job.channel)
            post = await asyncio.to_thread(store.post_version, job.tenant, job.post, job.version)
        except NotFound as error:
            await self._record(await asyncio.to_thread(store.failed, job.id, me, str(error), now()))
            return
        network = self.networks[channel.network]
        try:
            if job.check_first and (there := await network.find(channel, post, job)):
                done = await asyncio.to_thread(store.published, job.id, me, there, now())
                await self._record(done, channel.network)
                return
            await asyncio.to_thread(store.sending, job.id, me, now())
            sent = await network.publish(channel, post, job)
        except Permanent as error:
            log.warning("a post failed", job=job.id, error=str(error))
            changed = await asyncio.to_thread(store.failed, job.id, me, str(error), now())
        except Transient as error:
            if job.attempts >= self.policy.max_attempts:
                why = f"{error} (gave up after {job.attempts} attempts)"
                changed = await asyncio.to_thread(store.failed, job.id, me, why, now())
            else:
                due = now() + int((error.retry_after_s or self._backoff_s(job)) * SECOND_US)
                changed = await asyncio.to_thread(
                    store.retry_later, job.id, me, str(error), due, now()
                )
        except OutcomeUnknown as error:
            due = now() + int(self._backoff_s(job) * SECOND_US)
            changed = await asyncio.to_thread(store.unknown, job.id, me, str(error), due, now())
        else:
            changed = await asyncio.to_thread(store.published, job.id, me, sent, now())
        await self._record(changed, channel.network)

    async def _record(self, job: Job, network: str = "") -> None:
        """The change on the log; a log that does not take it is noted, the job stays."""
        try:
            await self.journal.record([job], network)
        except Exception:
            log.exception("a publish job's change did not reach the log", job=job.id)

    def _backoff_s(self, job: Job) -> float:
        return float(self.policy.backoff_s * 2 ** min(job.attempts - 1, 8))


def run(background: Background, publisher: Publisher) -> None:
    """Keep `publisher` claiming and publishing, and its sweeper sweeping, under
    `background` (restarted with a backoff when they fail)."""
    background.start("publisher", publisher.run)
    background.start("publishing sweeper", publisher.sweep)
