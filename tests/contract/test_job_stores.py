"""One contract for where publish jobs are kept: SQLite (embedded) and PostgreSQL
(scale-out, a database made for each test on the real server)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hubbub.publishing.ports import (
    UNATTACHED_MEDIA_US,
    Attachment,
    Channel,
    Limits,
    LostLease,
    Media,
    NotFound,
    Part,
    Post,
    Published,
)
from hubbub.publishing.sql import SqlJobStore
from hubbub.publishing.tid import PATTERN
from tests.conftest import postgres_database
from tests.contract.test_tenant_stores import sqlalchemy_url

S = 1_000_000
T0 = 1_800_000_000 * S


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'relational.db'}"
        return
    with postgres_database("hubbub_jobs") as dsn:
        yield sqlalchemy_url(dsn)


@pytest.fixture
def store(url: str) -> Iterator[SqlJobStore]:
    built = SqlJobStore(url)
    yield built
    built.close()


def channel(tenant: str, name: str) -> Channel:
    return Channel(
        id=f"{tenant}-{name}", tenant=tenant, network="mastodon", account=f"{name}@example.social",
        service="https://example.social", time_zone="Europe/Paris", limits=Limits(500),
        sealed_credentials="hb1:sealed",
    )  # fmt: skip


def post(tenant: str, n: int) -> Post:
    return Post(id=f"{tenant}-post-{n}", tenant=tenant, author="ed", text=f"hello {n}")


def test_a_post_makes_one_job_per_channel_each_with_its_own_key(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    store.add_channel(channel("acme", "jobs"))
    made = store.schedule(post("acme", 1), {"acme-news": T0, "acme-jobs": T0 + S})
    assert sorted(job.channel for job in made) == ["acme-jobs", "acme-news"]
    keys = [job.idempotency_key for job in made]
    assert len(set(keys)) == 2
    assert all(PATTERN.match(key) for key in keys)  # record keys a PDS accepts
    assert [job.state for job in store.jobs("acme")] == ["scheduled", "scheduled"]
    assert store.post("acme", "acme-post-1").text == "hello 1"


def test_a_tenant_reaches_none_of_another_tenants_channels_posts_or_jobs(
    store: SqlJobStore,
) -> None:
    store.add_channel(channel("acme", "news"))
    store.add_channel(channel("globex", "news"))
    (job,) = store.schedule(post("acme", 1), {"acme-news": T0})
    with pytest.raises(NotFound):
        store.schedule(post("globex", 1), {"acme-news": T0})  # not its channel
    for reach in (
        lambda: store.job("globex", job.id),
        lambda: store.post("globex", "acme-post-1"),
        lambda: store.channel("globex", "acme-news"),
        lambda: store.cancel("globex", job.id, T0),
        lambda: store.retry("globex", job.id, T0),
        lambda: store.remove_channel("globex", "acme-news"),
    ):
        with pytest.raises(NotFound):
            reach()
    assert store.jobs("globex") == []
    assert [c.id for c in store.channels("globex")] == ["globex-news"]


def test_claimers_at_once_never_share_a_job(url: str, store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    for n in range(300):
        store.schedule(post("acme", n), {"acme-news": T0 + n})
    claimed: Counter[str] = Counter()
    lock = threading.Lock()

    def claimer(name: str, own: SqlJobStore) -> None:
        while batch := own.claim(name, T0 + 10 * S, lease_s=60, limit=7):
            with lock:
                claimed.update(job.id for job in batch)

    stores = [SqlJobStore(url) for _ in range(4)]  # each its own, as other processes have
    threads = [
        threading.Thread(target=claimer, args=(f"w{n}", own)) for n, own in enumerate(stores)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for own in stores:
            own.close()
    assert len(claimed) == 300
    assert set(claimed.values()) == {1}
    assert store.claim("late", T0 + 10 * S, lease_s=60, limit=10) == []  # leases hold


def test_a_lapsed_lease_passes_the_job_on_and_its_post_is_looked_for_first(
    store: SqlJobStore,
) -> None:
    store.add_channel(channel("acme", "news"))
    (job,) = store.schedule(post("acme", 1), {"acme-news": T0})
    assert store.claim("a", T0 + S, lease_s=1, limit=10)[0].check_first is False
    store.sending(job.id, "a", T0 + S)
    assert store.claim("b", T0 + S + S // 2, lease_s=1, limit=10) == []  # still a's
    (again,) = store.claim("b", T0 + 3 * S, lease_s=60, limit=10)  # a stalled past it
    assert (again.worker, again.attempts, again.check_first) == ("b", 2, True)
    with pytest.raises(LostLease):
        store.published(job.id, "a", Published("1", "https://x/1"), T0 + 3 * S)
    done = store.published(job.id, "b", Published("1", "https://x/1"), T0 + 3 * S)
    assert (done.state, done.remote_url, done.worker) == ("published", "https://x/1", "b")


def test_only_what_is_due_is_claimed_and_an_unknown_outcome_comes_back(
    store: SqlJobStore,
) -> None:
    store.add_channel(channel("acme", "news"))
    (now,) = store.schedule(post("acme", 1), {"acme-news": T0})
    store.schedule(post("acme", 2), {"acme-news": T0 + 3600 * S})
    (claimed,) = store.claim("a", T0, lease_s=60, limit=10)
    assert claimed.id == now.id
    store.sending(now.id, "a", T0)
    store.unknown(now.id, "a", "timed out", T0 + 5 * S, T0)
    assert store.claim("a", T0 + S, lease_s=60, limit=10) == []  # not before its backoff
    (back,) = store.claim("b", T0 + 5 * S, lease_s=60, limit=10)
    assert (back.id, back.check_first, back.error) == (now.id, True, "timed out")


def test_late_jobs_are_missed_with_the_reason_and_can_be_retried(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    (job,) = store.schedule(post("acme", 1), {"acme-news": T0})
    store.schedule(post("acme", 2), {"acme-news": T0 + 3000 * S})
    (missed,) = store.miss(T0 + 3601 * S, late_us=3600 * S)
    assert missed.id == job.id
    assert "due more than 3600 s" in (missed.error or "")
    assert store.claim("a", T0 + 3601 * S, lease_s=60, limit=10)[0].id != job.id
    again = store.retry("acme", job.id, T0 + 4000 * S)
    assert (again.state, again.idempotency_key) == ("scheduled", job.idempotency_key)
    with pytest.raises(ValueError, match="only failed, missed, cancelled"):
        store.retry("acme", job.id, T0 + 4000 * S)


def test_finished_jobs_are_forgotten_after_the_retention(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    (old,) = store.schedule(post("acme", 1), {"acme-news": T0})
    (new,) = store.schedule(post("acme", 2), {"acme-news": T0})
    store.cancel("acme", old.id, T0)
    assert store.forget_before(T0 + S) == 1
    assert [job.id for job in store.jobs("acme")] == [new.id]
    with pytest.raises(NotFound):
        store.post("acme", "acme-post-1")


def test_removing_a_channel_cancels_what_it_had_scheduled(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    (job,) = store.schedule(post("acme", 1), {"acme-news": T0})
    store.remove_channel("acme", "acme-news", T0)
    assert store.job("acme", job.id).state == "cancelled"
    assert store.claim("a", T0 + S, lease_s=60, limit=10) == []


def image(tenant: str, n: int, at_us: int = T0) -> Media:
    return Media(id=f"{tenant}-image-{n}", tenant=tenant, content_type="image/png", size=3,
                 alt=f"picture {n}", created_us=at_us)  # fmt: skip


def test_media_are_the_tenants_and_go_with_the_post_that_names_them(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    store.add_media(image("acme", 1), b"one")
    store.add_media(image("acme", 2), b"two")
    with pytest.raises(NotFound):
        store.media("globex", "acme-image-1")
    with pytest.raises(NotFound):
        store.media_data("globex", "acme-image-1")
    shown = Attachment("acme-image-1", "image/png", 3, "picture 1")
    thread = (Part("and more", (Attachment("acme-image-2", "image/png", 3),)),)
    named = Post(id="p", tenant="acme", author="ed", text="look", media=(shown,), thread=thread)
    with pytest.raises(NotFound):  # another tenant's post cannot take them
        store.schedule(Post(id="q", tenant="globex", author="x", text="t", media=(shown,)), {})
    (job,) = store.schedule(named, {"acme-news": T0})
    assert store.post("acme", "p") == named
    assert store.media("acme", "acme-image-2").post == "p"
    assert store.media_data("acme", "acme-image-1") == b"one"
    with pytest.raises(ValueError, match="in another post already"):
        store.schedule(replace(named, id="again"), {"acme-news": T0})
    store.cancel("acme", job.id, T0)
    store.forget_before(T0 + S)
    with pytest.raises(NotFound):
        store.media("acme", "acme-image-1")


def test_media_no_post_names_within_a_day_are_dropped(store: SqlJobStore) -> None:
    store.add_media(image("acme", 1), b"one")
    store.add_media(image("acme", 2, T0 + UNATTACHED_MEDIA_US), b"two")
    assert store.media("acme", "acme-image-1").id == "acme-image-1"  # a day, not more
    store.add_media(image("acme", 3, T0 + UNATTACHED_MEDIA_US + 1), b"three")
    with pytest.raises(NotFound):
        store.media("acme", "acme-image-1")
    assert store.media_data("acme", "acme-image-2") == b"two"
