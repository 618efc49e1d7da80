"""The publisher spends each Mastodon account's budget (300 requests in 5 minutes, 300
statuses in 3 hours) against the sandbox, which enforces the 5-minute limit and answers
429 with its rate-limit headers: posts past the budget wait for it rather than fail, and
each is published once."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from hubbub.kernel.clock import FixedClock, SystemClock
from hubbub.kernel.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from hubbub.kernel.sealing import SecretBox
from hubbub.publishing.budget import Budget
from hubbub.publishing.journal import Journal
from hubbub.publishing.mastodon import MastodonNetwork
from hubbub.publishing.ports import Job
from hubbub.publishing.service import Publishing
from hubbub.publishing.sql import SqlJobStore
from hubbub.publishing.worker import Publisher, PublishPolicy
from hubbub.sandbox.mastodon import Login, MastodonServer, MastodonState, mastodon_server
from tests.conftest import require_service, unique_name

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@dataclass
class Rig:
    server: MastodonServer
    state: MastodonState
    login: Login
    clock: FixedClock
    publishing: Publishing
    publishers: list[Publisher]

    async def schedule(self, posts: int, first: int = 0) -> list[Job]:
        channels = self.publishing.channels("acme")
        channel = channels[0] if channels else await self.publishing.add_channel(
            "acme", "mastodon", f"{self.login.account.username}@127.0.0.1", self.server.url,
            {"access_token": self.login.access_token},
        )  # fmt: skip
        made = []
        for n in range(first, first + posts):
            _, jobs = await self.publishing.schedule("acme", "ed", f"post {n}", [channel.id])
            made += jobs
        return made

    async def publish_all(self, step_s: float, rounds: int) -> int:
        """Every publisher claims and publishes what is due, then time moves on; answers
        the rounds it took for every job to be published."""
        for done in range(rounds):
            for publisher in self.publishers:
                await publisher.once()
            if all(job.state == "published" for job in self.publishing.jobs("acme", 1000)):
                return done
            self.clock.advance(step_s)
        states = Counter((j.state, j.error) for j in self.publishing.jobs("acme", 1000))
        pytest.fail(f"not every post was published in {rounds} rounds: {states}")

    def answers(self) -> Counter[int | None]:
        return Counter(r.status for r in self.state.requests_to("POST", "/api/v1/statuses"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlJobStore]:
    built = SqlJobStore.sqlite(tmp_path / "relational.db")
    yield built
    built.close()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, clock: FixedClock) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter(clock)
        return
    require_service("Redis", "127.0.0.1", 6379)
    built = RedisRateLimiter("redis://127.0.0.1:6379/0", unique_name("budget"), clock=clock)
    yield built
    await built.close()


@pytest.fixture
def clock() -> FixedClock:
    # The real time: the network reads a 429's reset against the wall clock.
    return FixedClock(now_us=SystemClock().now_us())


@pytest.fixture
async def rig(store: SqlJobStore, clock: FixedClock, limiter: RateLimiter) -> AsyncIterator[Rig]:
    state = MastodonState(clock=clock)
    login = state.add_account("newsroom")
    box = SecretBox(Fernet.generate_key())
    network = MastodonNetwork(box, clock, LOOPBACK, timeout_s=2.0, media_data=store.media_data)

    async def limits_of(_: str, service: str):  # type: ignore[no-untyped-def]
        return await network.limits(service)

    journal = Journal(None, clock)
    publishing = Publishing(store, box, clock, limits_of, LOOPBACK, journal)
    budget = Budget(limiter)
    policy = PublishPolicy(backoff_s=1.0, lease_s=600.0)
    publishers = [
        Publisher(store, {"mastodon": network}, clock, policy, name=f"p{n}", budget=budget)
        for n in range(2)
    ]  # two replicas, one budget
    async with mastodon_server(state) as server:
        yield Rig(server, state, login, clock, publishing, publishers)
    await network.close()


@pytest.mark.parametrize("limiter", ["memory"], indirect=True)
async def test_posts_past_an_accounts_budget_wait_for_it_and_each_is_published_once(
    rig: Rig,
) -> None:
    made = await rig.schedule(200)
    await rig.publishers[0].once()
    jobs = rig.publishing.jobs("acme", 1000)
    waiting = [job for job in jobs if job.state == "scheduled"]
    assert len(waiting) == 50  # half of each window goes at once: 150 statuses
    assert all("waiting for the account's budget" in (job.error or "") for job in waiting)
    assert {job.attempts for job in waiting} == {0}  # waiting is no attempt
    await rig.publish_all(step_s=15, rounds=1000)

    jobs = rig.publishing.jobs("acme", 1000)
    assert {(job.state, job.attempts) for job in jobs} == {("published", 1)}
    texts = [status.text for status in rig.state.statuses_by(rig.login.account)]
    assert sorted(texts) == sorted(f"post {n}" for n in range(200))  # none lost, none twice
    assert rig.answers() == {200: 200}  # and the instance never had to refuse one
    assert len({job.remote_id for job in jobs}) == len(made)
    history = rig.publishing.history("acme", jobs[0].post)
    assert history[-1].state == "published"


async def test_a_429_holds_the_account_for_every_publisher_until_its_reset(
    rig: Rig, limiter: RateLimiter
) -> None:
    """On either limiter: held in Redis, every replica of the publisher sees the hold."""
    rig.state.config.rate_limit = 40  # tighter than the documented 300: the network says so
    await rig.schedule(60)
    for publisher in rig.publishers:
        await publisher.once()
    refused = rig.answers()[429]
    assert refused > 0  # the instance refused some, with its reset
    jobs = rig.publishing.jobs("acme", 1000)
    assert {job.state for job in jobs} <= {"published", "scheduled"}
    # Posts due now wait out the hold, whichever publisher claims them: none is sent early.
    sent = len(rig.state.requests_to("POST", "/api/v1/statuses"))
    later = await rig.schedule(10, first=60)
    assert await rig.publishers[1].once() == 10
    assert len(rig.state.requests_to("POST", "/api/v1/statuses")) == sent
    for job in later:
        held = rig.publishing.job("acme", job.id)
        assert held.state == "scheduled"
        assert "waiting for the account's budget" in (held.error or "")
    if isinstance(limiter, RedisRateLimiter):
        return  # Redis times the hold by its own clock, which the test's cannot move
    await rig.publish_all(step_s=30, rounds=200)
    texts = [status.text for status in rig.state.statuses_by(rig.login.account)]
    assert sorted(texts) == sorted(f"post {n}" for n in range(70))
    assert {job.state for job in rig.publishing.jobs("acme", 1000)} == {"published"}
