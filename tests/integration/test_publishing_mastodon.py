"""Publishing to Mastodon exactly once, against a server that follows Mastodon's API
documentation (`hubbub.sandbox.mastodon`), through failures before, during and after
a status is made."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import PUBLISHING, PublishChanged
from hubbub.kernel.sealing import SecretBox
from hubbub.publishing.journal import Journal
from hubbub.publishing.mastodon import MastodonNetwork
from hubbub.publishing.ports import Invalid, Job
from hubbub.publishing.service import Publishing
from hubbub.publishing.sql import SqlJobStore
from hubbub.publishing.worker import Publisher, PublishPolicy
from hubbub.sandbox.mastodon import (
    AnswerLate,
    DropAfterCreating,
    FailBeforeCreating,
    Login,
    MastodonServer,
    MastodonState,
    mastodon_server,
)

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@dataclass
class Rig:
    log: SqliteEventLog
    server: MastodonServer
    state: MastodonState
    login: Login
    clock: FixedClock
    publishing: Publishing
    publisher: Publisher

    async def channel(self, time_zone: str = "UTC") -> str:
        made = await self.publishing.add_channel(
            "acme", "mastodon", f"{self.login.account.username}@127.0.0.1", self.server.url,
            {"access_token": self.login.access_token}, time_zone,
        )  # fmt: skip
        return made.id

    def statuses(self) -> list[str]:
        return [status.text for status in self.state.statuses_by(self.login.account)]

    def job(self, job: Job) -> Job:
        return self.publishing.job("acme", job.id)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlJobStore]:
    built = SqlJobStore.sqlite(tmp_path / "relational.db")
    yield built
    built.close()


@pytest.fixture
async def rig(store: SqlJobStore, tmp_path: Path) -> AsyncIterator[Rig]:
    log = SqliteEventLog(tmp_path / "eventlog.db")
    clock = FixedClock(now_us=1_800_000_000_000_000)
    state = MastodonState(clock=clock)
    login = state.add_account("newsroom")
    box = SecretBox(Fernet.generate_key())
    network = MastodonNetwork(box, clock, LOOPBACK, timeout_s=0.5, media_data=store.media_data)

    async def limits_of(_: str, service: str):  # type: ignore[no-untyped-def]
        return await network.limits(service)

    journal = Journal(log, clock)
    publishing = Publishing(store, box, clock, limits_of, LOOPBACK, journal)
    policy = PublishPolicy(backoff_s=1.0, lease_s=30.0)
    publisher = Publisher(store, {"mastodon": network}, clock, policy, name="p1", journal=journal)
    async with mastodon_server(state) as server:
        yield Rig(log, server, state, login, clock, publishing, publisher)
    await network.close()
    await log.close()


async def test_a_post_is_published_once_with_its_idempotency_key(rig: Rig) -> None:
    channel = await rig.channel()
    _, (job,) = await rig.publishing.schedule("acme", "ed", "Hello from Hubbub", [channel])
    assert await rig.publisher.once() == 1
    done = rig.job(job)
    assert done.state == "published"
    assert rig.statuses() == ["Hello from Hubbub"]
    (sent,) = rig.state.requests_to("POST", "/api/v1/statuses")
    assert sent.headers["idempotency-key"] == job.idempotency_key
    assert done.remote_url is not None
    assert done.remote_url.endswith(f"/{done.remote_id}")
    assert await rig.publisher.once() == 0  # nothing more is due
    changes = [r.event for r in await rig.log.read(PUBLISHING, 1, 10)]
    assert all(isinstance(change, PublishChanged) for change in changes)
    assert [(c.job, c.state, c.url) for c in changes] == [  # type: ignore[attr-defined]
        (job.id, "scheduled", None), (job.id, "published", done.remote_url),
    ]  # fmt: skip


async def test_a_post_too_long_for_the_instance_is_refused_before_it_is_scheduled(
    rig: Rig,
) -> None:
    rig.state.config.max_characters = 100
    channel = await rig.channel()
    text = "x" * 90 + " https://example.com/" + "y" * 50
    with pytest.raises(Invalid) as refused:
        await rig.publishing.schedule("acme", "ed", text, [channel])
    assert str(refused.value) == (
        "newsroom@127.0.0.1 (mastodon): 114 characters, 14 over its limit of 100"
    )  # a URL counts 23, as the instance counts it
    assert rig.publishing.jobs("acme") == []


async def test_a_server_error_is_retried_after_a_backoff_and_publishes_once(rig: Rig) -> None:
    channel = await rig.channel()
    _, (job,) = await rig.publishing.schedule("acme", "ed", "Retried", [channel])
    rig.state.plan_faults(FailBeforeCreating(503))
    await rig.publisher.once()
    waiting = rig.job(job)
    assert (waiting.state, rig.statuses()) == ("scheduled", [])
    assert "503" in (waiting.error or "")
    assert await rig.publisher.once() == 0  # not before its backoff
    rig.clock.advance(1.0)
    await rig.publisher.once()
    assert (rig.job(job).state, rig.statuses()) == ("published", ["Retried"]), rig.job(job)


@pytest.mark.parametrize("fault", [DropAfterCreating(), AnswerLate(1.0)], ids=["drop", "late"])
@pytest.mark.parametrize(
    ("later_s", "posts"), [(10, 2), (3700, 1)], ids=["within-the-hour", "after-it"]
)
async def test_an_unknown_outcome_never_makes_a_second_status(
    rig: Rig, fault: DropAfterCreating | AnswerLate, later_s: float, posts: int
) -> None:
    """Within the hour Mastodon keeps an idempotency key, the job is sent again with it
    and the server answers the status it made; after it, the account's statuses are
    read first and the job's is found there, so nothing is sent again."""
    channel = await rig.channel()
    _, (job,) = await rig.publishing.schedule(
        "acme", "ed", "Sent once, whatever happens", [channel]
    )
    rig.state.plan_faults(fault)
    await rig.publisher.once()
    assert rig.job(job).state == "unknown"
    assert rig.statuses() == ["Sent once, whatever happens"]  # it was made, unbeknown
    rig.clock.advance(later_s)
    await rig.publisher.once()
    found = rig.job(job)
    assert (found.state, found.attempts) == ("published", 2)
    assert rig.statuses() == ["Sent once, whatever happens"]
    assert len(rig.state.requests_to("POST", "/api/v1/statuses")) == posts


async def test_a_wall_clock_time_is_read_in_the_channels_zone_across_dst(rig: Rig) -> None:
    channel = await rig.channel("Europe/Paris")
    _, (winter,) = await rig.publishing.schedule(
        "acme", "ed", "w", [channel], at="2026-03-28T09:00"
    )
    _, (summer,) = await rig.publishing.schedule(
        "acme", "ed", "s", [channel], at="2026-03-29T09:00"
    )
    assert winter.due_us == 1_774_684_800_000_000  # 08:00 UTC, CET
    assert summer.due_us == 1_774_767_600_000_000  # 07:00 UTC, CEST: still 9:00 in Paris
