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

Before a claimed job is sent, its account's budget on its network is spent (`Budget`,
shared by every publisher through the rate limiter): a job the budget cannot take yet
goes back to scheduled, due when the budget will take it, without counting as an
attempt; a network's 429 anyway holds the account's budget for its `Retry-After`, so
every publisher waits it out.

Each minute, too, approvers of a review step waiting longer than `remind_after_s` are
reminded, and a post not approved `overdue_within_s` before its time is flagged.

Every few minutes, too, the log is told of the channels it lacks (`ChannelDirectory`).

The people of every tenant are folded from the log (`PersonChanged` on `control`) into
publishing's store, with the position reached in the same transaction (`fold_people`):
a person's calendar feed is read with the role they have now, and ends when they leave;
a review step that waited on someone who left moves on without them.

Each minute the sweeper makes the jobs of recurring posts' next occurrences (up to
`series_horizon_s` ahead, each series from its last occurrence made, so none is skipped),
marks missed the jobs due longer ago than `max_late_s` (the platform was down, or the
network refused for that long), with the reason, so nothing due is skipped silently;
and drops finished jobs older than the retention.

A worker that loses its lease (it stalled past `lease_s`, and another claimed the job)
changes nothing more about that job (`LostLease`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

import structlog
from prometheus_client import Counter

from hubbub.eventlog.follow import every
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.background import Background
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import CONTROL, PersonChanged
from hubbub.publishing.budget import Budget
from hubbub.publishing.directory import ChannelDirectory, pages_through
from hubbub.publishing.journal import Journal
from hubbub.publishing.ports import (
    Channel,
    FeedStore,
    Job,
    JobStore,
    LostLease,
    Member,
    Network,
    Outcome,
    OutcomeUnknown,
    Permanent,
    Post,
    StalePositions,
    Transient,
)
from hubbub.publishing.service import Publishing, extend_series

SECOND_US: Final = 1_000_000
SETTLE_AT_MOST: Final = 500
"""Outcomes recorded in one transaction, at most."""
SETTLE_LINGER_S: Final = 0.02
"""How long outcomes are gathered before they are recorded together: a transaction, and
an append to the log, cost as much for one outcome as for dozens."""
log = structlog.get_logger("hubbub.publishing")
JOB_CHANGES: Final = Counter(
    "hubbub_publish_jobs",
    "Changes of publish jobs this publisher recorded, by network and the state each went to:"
    " published, failed, missed, scheduled (again, or a series' next), unknown (looked for"
    " before it is sent again).",
    ["network", "state"],
)


@dataclass(frozen=True)
class PublishPolicy:
    poll_s: float = 0.1
    batch: int = 200
    concurrency: int = 128
    """Jobs being published at once; claimed a quarter of them at least at a time (claims
    of 16 jobs cost the store 0.13 ms of CPU a job, of 48 0.09 ms)."""
    lease_s: float = 60.0
    max_attempts: int = 8
    backoff_s: float = 2.0
    max_late_s: float = 3600.0
    sweep_every_s: float = 60.0
    keep_finished_s: float = 90 * 86_400.0
    series_horizon_s: float = 7 * 86_400.0
    remind_after_s: float = 86_400.0
    """A review step waiting longer than this reminds its approvers (again, each time)."""
    overdue_within_s: float = 2 * 3600.0
    """A post not approved this long before its time is flagged, once."""
    people_poll_s: float = 0.5
    """How often the people's fold reads the log for changes."""
    people_batch: int = 1000


class Publisher:
    def __init__(
        self,
        store: JobStore,
        networks: Mapping[str, Network],
        clock: Clock,
        policy: PublishPolicy | None = None,
        name: str | None = None,
        journal: Journal | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.store = store
        self.budget = budget
        self.journal = journal or Journal(None, clock)
        self.networks = networks
        self.clock = clock
        self.policy = policy or PublishPolicy()
        self.name = name or f"publisher-{secrets.token_hex(4)}"
        self._outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self._network_of: dict[str, str] = {}
        """Each channel's network, by id, for the events (a channel's never changes)."""
        self._sending: dict[str, tuple[Post, Channel]] = {}
        """What each job being published is of, by id: its author is told how it went.
        Each is added by its attempt, and goes with the attempt's outcome (recorded or
        not), or with the attempt when it ends without one: it never outlives either."""

    async def once(self) -> int:
        """Claim what is due now, publish it and record every outcome; answers how many
        jobs were claimed."""
        policy = self.policy
        claimed = await asyncio.to_thread(
            self.store.claim, self.name, self.clock.now_us(), policy.lease_s, policy.batch
        )
        await asyncio.gather(*await self._start(claimed))
        await self._settle(self._drain())
        return len(claimed)

    async def run(self) -> None:
        """Claim as many due jobs as there are free slots, every `poll_s`, and publish
        each as soon as it is claimed: a job falling due waits for a poll and a free
        slot, never for a whole batch before it to finish. Outcomes are recorded by a
        task of their own, as many at once as have come in meanwhile."""
        policy = self.policy
        inflight: set[asyncio.Task[None]] = set()
        settling = asyncio.create_task(self._settle_forever())
        try:
            while True:
                room = min(policy.batch, policy.concurrency - len(inflight))
                if inflight and room < max(1, policy.concurrency // 4):
                    # A claim costs a transaction whatever it takes: wait for a quarter
                    # of the slots to be free rather than claim a job or two at a time.
                    await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                claimed = await asyncio.to_thread(
                    self.store.claim, self.name, self.clock.now_us(), policy.lease_s, room
                )
                for task in await self._start(claimed):
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                if not claimed or len(claimed) < room:
                    await asyncio.sleep(policy.poll_s)
                if settling.done():
                    settling.result()  # its failure is this loop's, restarted with it
        finally:
            for task in (*inflight, settling):
                task.cancel()
            await asyncio.gather(*inflight, settling, return_exceptions=True)

    async def sweep(self) -> None:
        """Every `sweep_every_s`: top up recurring posts, mark missed what is too late,
        forget what is old."""
        while True:
            await self.sweep_once()
            await asyncio.sleep(self.policy.sweep_every_s)

    async def sweep_once(self) -> None:
        now = self.clock.now_us()
        horizon_us = int(self.policy.series_horizon_s * SECOND_US)
        made = await asyncio.to_thread(extend_series, self.store, now, horizon_us)
        await self._record(made)
        missed = await asyncio.to_thread(
            self.store.miss, now, int(self.policy.max_late_s * SECOND_US)
        )
        for job in missed:
            log.warning("a post was missed", job=job.id, tenant=job.tenant, due_us=job.due_us)
        await self._record(missed)
        keep_us = int(self.policy.keep_finished_s * SECOND_US)
        await asyncio.to_thread(self.store.forget_before, now - keep_us)

    async def _start(self, claimed: list[Job]) -> list[asyncio.Task[None]]:
        """Read what the claimed jobs need, mark those that need no looking first as
        being sent (one transaction for all), and start sending each; answers the tasks.
        A job whose channel or post is gone fails at once."""
        if not claimed:
            return []
        store, me = self.store, self.name
        channels, posts = await asyncio.to_thread(store.context, claimed)
        self._network_of.update((c.id, c.network) for c in channels.values())
        ready, gone = [], []
        for job in claimed:
            channel, post = channels.get(job.channel), posts.get((job.post, job.version))
            if channel is None or post is None:
                what = f"channel {job.channel!r}" if channel is None else f"post {job.post!r}"
                gone.append(Outcome(job.id, "failed", f"no {what}: it was removed"))
            else:
                ready.append((job, channel, post))
        for outcome in gone:
            self._outcomes.put_nowait(outcome)
        ready = await self._within_budget(ready)
        plain = [job.id for job, _, _ in ready if not job.check_first]
        held = {
            j.id: j
            for j in await asyncio.to_thread(store.begin_sending, me, plain, self.clock.now_us())
        }
        tasks = []
        for job, channel, post in ready:
            if job.check_first or job.id in held:
                sent = not job.check_first
                tasks.append(
                    asyncio.create_task(self._attempt(held.get(job.id, job), channel, post, sent))
                )
            else:
                log.info("a job was claimed by another publisher meanwhile", job=job.id)
        return tasks

    async def _within_budget(
        self, ready: list[tuple[Job, Channel, Post]]
    ) -> list[tuple[Job, Channel, Post]]:
        """The jobs their accounts' budgets take now; the others go back to scheduled,
        due when their budget will take them (not an attempt: nothing was sent)."""
        if self.budget is None or not ready:
            return ready
        budget = self.budget
        waits = await asyncio.gather(
            *(budget.take(channel.network, channel.account, "create") for _, channel, _ in ready)
        )
        within = []
        for (job, channel, post), wait_s in zip(ready, waits, strict=True):
            if wait_s <= 0:
                within.append((job, channel, post))
                continue
            why = f"waiting for the account's budget: {channel.account} on {channel.network}"
            due = self._after(wait_s)
            waiting = Outcome(job.id, "scheduled", f"{why}, {wait_s:.1f} s", due, attempted=False)
            self._outcomes.put_nowait(waiting)
        return within

    async def _hold(self, channel: Channel, retry_after_s: float | None) -> None:
        """A network's `Retry-After`, kept for every publisher of the account."""
        if self.budget is None or not retry_after_s:
            return
        try:
            await self.budget.hold(channel.network, channel.account, retry_after_s)
        except Exception:
            log.warning("the account's budget could not be held", exc_info=True)

    async def _attempt(self, job: Job, channel: Channel, post: Post, sending: bool) -> None:
        """Publish one job (looking for it first if it may be there) and queue what became
        of it."""
        self._sending[job.id] = (post, channel)
        queued = False
        try:
            outcome = await self._outcome(job, channel, post, sending)
            if outcome is not None:
                self._outcomes.put_nowait(outcome)
                queued = True
        finally:  # no outcome (a lost lease, an error, cancelled): nobody is told
            if not queued:
                self._sending.pop(job.id, None)

    async def _outcome(
        self, job: Job, channel: Channel, post: Post, sending: bool
    ) -> Outcome | None:
        """What became of one job; None when another publisher holds it now."""
        network = self.networks[channel.network]
        try:
            if not sending:
                if there := await network.find(channel, post, job):
                    return Outcome(job.id, "published", found=there)
                await asyncio.to_thread(self.store.sending, job.id, self.name, self.clock.now_us())
            sent = await network.publish(channel, post, job)
        except LostLease:
            log.info("a job was claimed by another publisher meanwhile", job=job.id)
            return None
        except Permanent as error:
            log.warning("a post failed", job=job.id, error=str(error))
            outcome = Outcome(job.id, "failed", str(error))
        except Transient as error:
            await self._hold(channel, error.retry_after_s)
            if job.attempts >= self.policy.max_attempts:
                why = f"{error} (gave up after {job.attempts} attempts)"
                outcome = Outcome(job.id, "failed", why)
            else:
                wait_s = error.retry_after_s or self._backoff_s(job)
                outcome = Outcome(job.id, "scheduled", str(error), self._after(wait_s))
        except OutcomeUnknown as error:
            outcome = Outcome(job.id, "unknown", str(error), self._after(self._backoff_s(job)))
        else:
            outcome = Outcome(job.id, "published", found=sent)
        return outcome

    def _drain(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while not self._outcomes.empty() and len(outcomes) < SETTLE_AT_MOST:
            outcomes.append(self._outcomes.get_nowait())
        return outcomes

    async def _settle_forever(self) -> None:
        while True:
            first = await self._outcomes.get()
            if self._outcomes.qsize() < SETTLE_AT_MOST - 1:
                await asyncio.sleep(SETTLE_LINGER_S)
            await self._settle([first, *self._drain()])

    async def _settle(self, outcomes: list[Outcome]) -> None:
        """Record `outcomes` in one transaction, then on the log. A store that does not
        answer is asked again until the jobs' leases would end: after that another
        publisher claims them, and looks on the network before sending anything."""
        if not outcomes:
            return
        # Taken first: outcomes that cannot be recorded tell nobody, and leave nothing.
        sent = {outcome.job: self._sending.pop(outcome.job, None) for outcome in outcomes}
        deadline = self.clock.now_us() + int(self.policy.lease_s * SECOND_US)
        while True:
            try:
                changed = await asyncio.to_thread(
                    self.store.settle, self.name, outcomes, self.clock.now_us()
                )
                break
            except Exception:
                if self.clock.now_us() >= deadline:
                    log.exception("outcomes could not be recorded; their jobs will be looked for")
                    return
                log.warning("the job store did not take outcomes; trying again", exc_info=True)
                await asyncio.sleep(1.0)
        if len(changed) < len(outcomes):
            log.info("jobs were claimed by another publisher meanwhile",
                     lost=len(outcomes) - len(changed))  # fmt: skip
        await self._record(changed)
        await asyncio.gather(*(
            self._tell_author(job, *about) for job in changed
            if job.state in ("published", "failed") and (about := sent.get(job.id))
        ))  # fmt: skip

    async def _tell_author(self, job: Job, post: Post, channel: Channel) -> None:
        """Tell the post's author (a person) that it was published, or failed for good."""
        if not post.author.startswith("user:"):
            return
        where = f"{channel.account} ({channel.network})"
        text = " ".join(post.text.split())
        text = text if len(text) <= 80 else text[:79] + "…"
        title = (f"Published on {where}: {text}" if job.state == "published"
                 else f"Not published on {where}: {text}")  # fmt: skip
        await self.journal.notify(
            job.tenant, job.state, title, users=[post.author.removeprefix("user:")],
            post=job.post, body=job.remote_url or job.error or "",
            link=f"/publish/posts/{job.post}",
        )  # fmt: skip

    async def _record(self, jobs: list[Job]) -> None:
        """The changes on the log; a log that does not take them is noted, the jobs stay."""
        if not jobs:
            return
        networks = {j.channel: self._network_of.get(j.channel, "") for j in jobs}
        for job in jobs:
            JOB_CHANGES.labels(networks[job.channel] or "unknown", job.state).inc()
        try:
            await self.journal.record(jobs, networks)
        except Exception:
            log.exception("publish jobs' changes did not reach the log", jobs=len(jobs))

    def _after(self, wait_s: float) -> int:
        return self.clock.now_us() + int(wait_s * SECOND_US)

    def _backoff_s(self, job: Job) -> float:
        return float(self.policy.backoff_s * 2 ** min(job.attempts - 1, 8))


async def remind(service: Publishing, policy: PublishPolicy) -> None:
    """Every `sweep_every_s`: remind approvers of steps waiting too long, flag posts
    due soon that are not approved yet (`Publishing.remind`), and read again the best
    times to post of queues that take them, once a day each."""
    while True:
        told = await service.remind(policy.remind_after_s, policy.overdue_within_s)
        if told:
            log.info("reviews reminded or flagged", reviews=told)
        await service.refresh_stale_best()
        await asyncio.sleep(policy.sweep_every_s)


async def fold_people(
    store: FeedStore, event_log: EventLog, batch: int = 1000,
    left: Callable[[str], Awaitable[object]] | None = None,
) -> int:  # fmt: skip
    """Fold the people changes the log holds past the stored position; answers the records
    read. A fold from a position another replica moved meanwhile is read again. Once
    people of a tenant are folded as gone, `left` is called with the tenant (reviews
    waiting on them move on: `Publishing.settle_departures`; one it misses, the
    reminders' sweep moves on later)."""
    folded = 0
    while True:
        positions = await asyncio.to_thread(store.people_positions)
        records = await event_log.read(CONTROL, positions.get(CONTROL, 0) + 1, batch)
        if not records:
            return folded
        changes = [
            Member(r.event.tenant, r.event.user, r.event.role, r.event.active)
            for r in records
            if isinstance(r.event, PersonChanged)
        ]
        try:
            await asyncio.to_thread(
                store.fold_people, changes, {CONTROL: records[-1].position}, positions
            )
        except StalePositions as error:
            log.info("positions moved under the people's fold; folding on", why=str(error))
            continue
        folded += len(records)
        for tenant in sorted({change.tenant for change in changes if not change.active}):
            if left is not None:
                await left(tenant)


def run(background: Background, publisher: Publisher, service: Publishing | None = None) -> None:
    """Keep `publisher` claiming and publishing, its sweeper sweeping, and (with
    `service`) approvals reminded, the log told of channels and the people folded from
    it, under `background` (each restarted with a backoff when it fails)."""
    background.start("publisher", publisher.run)
    background.start("publishing sweeper", publisher.sweep)
    if service is None:
        return
    background.start("approval reminders", lambda: remind(service, publisher.policy))
    event_log = service.journal.event_log if service.journal is not None else None
    if not event_log:
        return
    pages = service.page_of or pages_through(publisher.networks)
    directory = ChannelDirectory(event_log, service.store, service.clock, pages)
    background.start("channel directory", directory.keep_announced)
    policy = publisher.policy
    background.start("publishing people", lambda: every(
        policy.people_poll_s,
        lambda: fold_people(service.store, event_log, policy.people_batch,
                            service.settle_departures),
        what="folding people into publishing",
    ))  # fmt: skip
