"""Publishing to Mastodon exactly once, against a server that follows Mastodon's API
documentation (`hubbub.sandbox.mastodon`), through failures before, during and after
a status is made."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from mastodon import Mastodon

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
from tests.support.images import png

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


def mastodon_py(rig: Rig) -> Mastodon:
    return Mastodon(
        access_token=rig.login.access_token, api_base_url=rig.server.url, ratelimit_method="throw"
    )


async def test_images_go_with_their_alt_text_and_a_thread_replies_part_by_part(
    rig: Rig,
) -> None:
    channel = await rig.channel()
    chart, photo = png(seed=1), png(3, 2, seed=2)
    first = await rig.publishing.add_media("acme", chart, alt="Revenue by quarter")
    second = await rig.publishing.add_media("acme", photo)
    _, (job,) = await rig.publishing.schedule(
        "acme", "ed", "Our quarter, in a thread", [channel], media=[first.id],
        thread=[("The team behind it", [second.id]), ("Thanks for reading", [])],
    )  # fmt: skip
    await rig.publisher.once()
    done = rig.job(job)
    assert done.state == "published", done.error

    api = mastodon_py(rig)
    statuses = await asyncio.to_thread(api.account_statuses, rig.login.account.id)
    one, two, three = reversed(statuses)
    assert [s.content for s in (one, two, three)] == [
        "<p>Our quarter, in a thread</p>", "<p>The team behind it</p>",
        "<p>Thanks for reading</p>",
    ]  # fmt: skip
    assert (one.in_reply_to_id, two.in_reply_to_id, three.in_reply_to_id) == (
        None, one.id, two.id,
    )  # fmt: skip
    assert done.remote_id == str(one.id)  # the job is where the thread starts
    assert [m.description for m in one.media_attachments] == ["Revenue by quarter"]
    assert [m.description for m in two.media_attachments] == [None]
    assert three.media_attachments == []
    async with httpx.AsyncClient() as web:
        shown = await web.get(one.media_attachments[0].url)
    assert shown.content == chart
    uploads = rig.state.requests_to("POST", "/api/v2/media")
    polls = [r for r in rig.state.requests if r.path.startswith("/api/v1/media/")]
    assert (len(uploads), len(polls)) == (2, 2)  # each answered 202, then polled to 200


async def test_a_thread_cut_off_mid_way_resumes_at_its_first_missing_part(rig: Rig) -> None:
    channel = await rig.channel()
    parts = ["1/3 the news", "2/3 the details", "3/3 the thanks"]
    _, (job,) = await rig.publishing.schedule(
        "acme", "ed", parts[0], [channel], thread=[(parts[1], []), (parts[2], [])]
    )
    rig.state.plan_faults(AnswerLate(0.0))  # the first part goes through
    rig.state.plan_faults(DropAfterCreating())  # the second is made, its answer lost
    await rig.publisher.once()
    assert rig.job(job).state == "unknown"
    assert rig.statuses() == list(reversed(parts[:2]))
    rig.clock.advance(10)
    await rig.publisher.once()
    done = rig.job(job)
    assert (done.state, done.attempts) == ("published", 2)
    made = rig.state.statuses_by(rig.login.account)
    assert [s.text for s in made] == list(reversed(parts))  # each part once
    first, second, third = reversed(made)
    assert (second.in_reply_to, third.in_reply_to) == (first, second)
    assert done.remote_id == first.id
    assert len(rig.state.requests_to("POST", "/api/v1/statuses")) == 3


async def test_images_and_parts_over_the_instances_limits_are_refused_before_scheduling(
    rig: Rig,
) -> None:
    rig.state.config.max_characters = 100
    rig.state.config.max_media_attachments = 2
    rig.state.config.image_size_limit = 2_000
    channel = await rig.channel()
    small = [(await rig.publishing.add_media("acme", png(seed=n))).id for n in range(3)]
    big = await rig.publishing.add_media("acme", png(30, 30, noise=True), alt="Noise")
    where = "newsroom@127.0.0.1 (mastodon)"

    async def refusal(publishing: Publishing = rig.publishing, **post: Any) -> str:
        with pytest.raises(Invalid) as refused:
            await publishing.schedule("acme", "ed", "Photos", [channel], **post)
        return str(refused.value)

    assert await refusal(media=small) == f"{where}: 3 images, 1 over its limit of 2"
    assert await refusal(media=[big.id]) == (
        f"{where}: image {big.id} is {big.size:,} bytes, {big.size - 2_000:,} over its limit"
        " of 2,000"
    )
    assert await refusal(thread=[("x" * 101, [])]) == (
        f"{where}, part 2: 101 characters, 1 over its limit of 100"
    )
    strict = dataclasses.replace(rig.publishing, require_alt=True)
    assert await refusal(strict, thread=[("More", [small[0]])]) == (
        f"{where}, part 2: image {small[0]} has no alt text, which this workspace requires"
    )
    assert rig.publishing.jobs("acme") == []
    assert rig.publishing.media("acme", small[0]).post is None  # still free to use
    _, (job,) = await strict.schedule("acme", "ed", "Noise", [channel], thread=[("ok", [])])
    assert job.state == "scheduled"
