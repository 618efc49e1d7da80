"""What the publisher keeps of each job it is sending (to tell the post's author how it
went) goes with the job: after failures, errors, lost leases and a stop, it holds
nothing, however many jobs went through it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from hubbub.kernel.clock import FixedClock
from hubbub.publishing.ports import (
    Channel,
    Job,
    OutcomeUnknown,
    Permanent,
    Post,
    Published,
    Transient,
)
from hubbub.publishing.sql import SqlJobStore
from hubbub.publishing.worker import Publisher, PublishPolicy
from tests.contract.test_job_stores import T0, S, channel, post

Answer = Callable[[Job], Awaitable[Published]]


class Network:
    """A network whose answer to each post the test chooses."""

    def __init__(self, answer: Answer, find: Callable[[Job], Awaitable[None]] | None = None):
        self.answer, self.finding = answer, find

    async def publish(self, channel: Channel, post: Post, job: Job) -> Published:
        return await self.answer(job)

    async def find(self, channel: Channel, post: Post, job: Job) -> Published | None:
        if self.finding is not None:
            await self.finding(job)
        return None

    async def page(self, channel: Channel) -> str:
        return ""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlJobStore]:
    built = SqlJobStore.sqlite(tmp_path / "relational.db")
    built.add_channel(channel("acme", "news"))
    yield built
    built.close()


def publisher(store: SqlJobStore, clock: FixedClock, network: Network) -> Publisher:
    policy = PublishPolicy(lease_s=60, max_attempts=2, backoff_s=1)
    return Publisher(store, {"mastodon": network}, clock, policy, name="a")


async def test_failures_and_errors_leave_nothing_behind(store: SqlJobStore) -> None:
    clock = FixedClock(T0)
    answers: list[BaseException] = [
        Permanent("refused"), Transient("busy"), OutcomeUnknown("timed out"),
    ]  # fmt: skip

    async def answer(job: Job) -> Published:
        raise answers[int(job.post.rsplit("-", 1)[1])]

    for n in range(len(answers)):
        store.schedule(post("acme", n), {"acme-news": T0})
    sender = publisher(store, clock, Network(answer))
    assert await sender.once() == 3
    assert sender._sending == {}
    assert sorted(j.state for j in store.jobs("acme")) == ["failed", "scheduled", "unknown"]


async def test_an_error_of_our_own_leaves_nothing_behind(store: SqlJobStore) -> None:
    clock = FixedClock(T0)

    async def broken(job: Job) -> Published:
        raise RuntimeError("a fault of our own")

    store.schedule(post("acme", 1), {"acme-news": T0})
    crashed = publisher(store, clock, Network(broken))
    with pytest.raises(RuntimeError):
        await crashed.once()
    assert crashed._sending == {}


async def test_a_lost_lease_leaves_nothing_behind(store: SqlJobStore) -> None:
    clock = FixedClock(T0)
    (job,) = store.schedule(post("acme", 1), {"acme-news": T0})
    store.claim("gone", T0, lease_s=1, limit=10)
    store.sending(job.id, "gone", T0)
    clock.advance(2)  # that publisher stalled sending: the job is looked for first

    async def meanwhile(job: Job) -> None:
        clock.advance(61)  # this one stalls too, and another takes the job
        assert store.claim("b", clock.now_us(), lease_s=60, limit=10)

    async def answer(job: Job) -> Published:
        raise AssertionError("never sent by a publisher that lost it")

    sender = publisher(store, clock, Network(answer, meanwhile))
    assert await sender.once() == 1
    assert sender._sending == {}
    assert store.job("acme", job.id).worker == "b"


async def test_a_stopped_publisher_leaves_nothing_behind(store: SqlJobStore) -> None:
    clock = FixedClock(T0)
    for n in range(3):
        store.schedule(post("acme", n), {"acme-news": T0 + n * S})
    clock.advance(10)
    started = asyncio.Event()

    async def hang(job: Job) -> Published:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("never answers")

    sender = publisher(store, clock, Network(hang))
    running = asyncio.create_task(sender.run())
    await asyncio.wait_for(started.wait(), 10)
    assert sender._sending
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert sender._sending == {}
