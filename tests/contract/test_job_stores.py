"""One contract for where publish jobs are kept: SQLite (embedded) and PostgreSQL
(scale-out, a database made for each test on the real server)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from hubbub.publishing.ports import (
    UNATTACHED_MEDIA_US,
    Attachment,
    Channel,
    Draft,
    Limits,
    LostLease,
    Media,
    NotFound,
    Outcome,
    Part,
    Post,
    Published,
    Series,
    TooMany,
)
from hubbub.publishing.sql import MIGRATIONS, SqlJobStore
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


def test_a_job_claimed_but_never_sent_is_sent_without_looking_first(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    (job,) = store.schedule(post("acme", 1), {"acme-news": T0})
    store.claim("a", T0 + S, lease_s=1, limit=10)  # and a stops before marking it sending
    (again,) = store.claim("b", T0 + 3 * S, lease_s=60, limit=10)
    assert (again.id, again.worker, again.check_first) == (job.id, "b", False)
    store.unknown(job.id, "b", "timed out", T0 + 4 * S, T0 + 3 * S)  # b sent it, then…
    (third,) = store.claim("c", T0 + 5 * S, lease_s=1, limit=10)
    assert third.check_first is True
    (fourth,) = store.claim("d", T0 + 7 * S, lease_s=60, limit=10)  # c stopped at once
    assert fourth.check_first is True  # what it knew is kept


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
    with pytest.raises(ValueError, match="only failed, missed or cancelled jobs can"):
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


def states(store: SqlJobStore, tenant: str, post_id: str) -> list[tuple[str, int]]:
    return [(change.state, change.attempts) for change in store.history(tenant, post_id)]


def test_every_change_of_a_job_is_in_its_posts_history_until_it_is_forgotten(
    store: SqlJobStore,
) -> None:
    store.add_channel(channel("acme", "news"))
    (job,) = store.schedule(post("acme", 1), {"acme-news": T0}, now_us=T0 - 60 * S)
    store.claim("a", T0, lease_s=60, limit=10)
    store.sending(job.id, "a", T0)
    store.retry_later(job.id, "a", "503 from the instance", T0 + 5 * S, T0 + S)
    store.claim("a", T0 + 5 * S, lease_s=60, limit=10)
    store.published(job.id, "a", Published("1", "https://x/1"), T0 + 6 * S)
    assert states(store, "acme", "acme-post-1") == [
        ("scheduled", 0), ("claimed", 1), ("sending", 1), ("scheduled", 1), ("claimed", 2),
        ("published", 2),
    ]  # fmt: skip
    changes = store.history("acme", "acme-post-1")
    assert [c.at_us for c in changes][:2] == [T0 - 60 * S, T0]
    assert changes[3].error == "503 from the instance"
    assert {c.job for c in changes} == {job.id}
    with pytest.raises(NotFound):
        store.history("globex", "acme-post-1")

    (late,) = store.schedule(post("acme", 2), {"acme-news": T0})
    store.miss(T0 + 3601 * S, late_us=3600 * S)
    store.retry("acme", late.id, T0 + 3602 * S)
    store.cancel("acme", late.id, T0 + 3603 * S)
    assert [s for s, _ in states(store, "acme", "acme-post-2")] == [
        "scheduled", "missed", "scheduled", "cancelled",
    ]  # fmt: skip
    assert store.forget_before(T0 + 4000 * S) == 2
    with pytest.raises(NotFound):
        store.history("acme", "acme-post-1")


def test_a_batch_of_outcomes_is_in_the_history_of_each_job(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    made = [store.schedule(post("acme", n), {"acme-news": T0})[0] for n in range(5)]
    store.claim("a", T0, lease_s=60, limit=10)
    outcomes = [Outcome(job.id, "published", found=Published(job.id, "u")) for job in made[:3]]
    outcomes += [Outcome(made[3].id, "failed", "422 too long"),
                 Outcome(made[4].id, "unknown", "timed out", T0 + S)]  # fmt: skip
    assert len(store.settle("a", outcomes, T0 + S)) == 5
    last = [store.history("acme", f"acme-post-{n}")[-1] for n in range(5)]
    assert [change.state for change in last] == ["published"] * 3 + ["failed", "unknown"]
    assert last[3].error == "422 too long"


def test_a_queue_slot_an_open_job_has_is_not_free(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    slots = [T0 + 3600 * S, T0 + 7200 * S, T0 + 10800 * S]

    def first_free(taken: set[int]) -> int:
        return next(slot for slot in slots if slot not in taken)

    one = store.schedule(post("acme", 1), {}, T0, {"acme-news": first_free})
    two = store.schedule(post("acme", 2), {}, T0, {"acme-news": first_free})
    assert [one[0].due_us, two[0].due_us] == slots[:2]
    store.cancel("acme", one[0].id, T0)  # a cancelled job frees its slot
    three = store.schedule(post("acme", 3), {}, T0, {"acme-news": first_free})
    assert three[0].due_us == slots[0]
    kept = store.set_queue("acme", "acme-news", "mon-fri 09:00")
    assert store.channel("acme", "acme-news").queue == kept.queue == "mon-fri 09:00"
    with pytest.raises(NotFound):
        store.set_queue("globex", "acme-news", "mon 09:00")


def series_of(tenant: str, through_us: int) -> Series:
    return Series(
        id="s1", tenant=tenant, post=f"{tenant}-post-1", version=1, channel=f"{tenant}-news",
        rule="FREQ=DAILY", start_wall="2027-01-15T09:00:00", time_zone="Europe/Paris",
        through_us=through_us, updated_us=T0,
    )  # fmt: skip


def test_a_series_is_extended_once_however_many_sweepers_try(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    day = 86_400 * S
    first = store.start_series(post("acme", 1), [series_of("acme", T0)], {"acme-news": [T0]}, T0)
    assert [(j.series, j.occurrence_us) for j in first] == [("s1", T0)]
    (due,) = store.series_to_extend(T0 + 7 * day, limit=10)
    assert store.series_to_extend(T0, limit=10) == []  # its last job is not before that
    more = store.extend_series(due, [T0 + day, T0 + 2 * day], T0 + S)
    assert [job.due_us for job in more] == [T0 + day, T0 + 2 * day]
    assert store.extend_series(due, [T0 + day, T0 + 2 * day], T0 + S) == []  # done already
    assert len({job.idempotency_key for job in [*first, *more]}) == 3
    with pytest.raises(NotFound):
        store.cancel_series("globex", "s1", T0)
    cancelled = store.cancel_series("acme", "s1", T0 + 2 * S)
    assert sorted(job.due_us for job in cancelled) == [T0, T0 + day, T0 + 2 * day]
    assert store.series("acme", "s1")[0].state == "cancelled"
    assert store.series_to_extend(T0 + 30 * day, limit=10) == []
    store.start_series(
        post("acme", 2), [replace(series_of("acme", T0), id="s2", post="acme-post-2")],
        {"acme-news": [T0]}, T0,
    )  # fmt: skip
    assert store.extend_series(store.series("acme", "s2")[0], [], T0) == []
    assert store.series("acme", "s2")[0].state == "ended"


def draft(tenant: str, author: str, n: int, at_us: int) -> Draft:
    return Draft(f"{n:016x}", tenant, author, {"text": f"draft {n}", "channels": []}, at_us)


def test_drafts_are_their_authors_newest_first_and_limited(store: SqlJobStore) -> None:
    store.put_draft(draft("acme", "ed", 1, T0), at_most=2)
    store.put_draft(draft("acme", "ed", 2, T0 + S), at_most=2)
    with pytest.raises(TooMany, match="you keep 2 drafts"):
        store.put_draft(draft("acme", "ed", 3, T0 + 2 * S), at_most=2)
    store.put_draft(replace(draft("acme", "ed", 1, T0 + 3 * S), body={"text": "edited"}), 2)
    assert [(d.id[-1], d.body["text"]) for d in store.drafts("acme", "ed")] == [
        ("1", "edited"), ("2", "draft 2"),
    ]  # fmt: skip
    assert store.drafts("acme", "jo") == store.drafts("globex", "ed") == []
    for tenant, author in (("acme", "jo"), ("globex", "ed")):
        with pytest.raises(NotFound):
            store.draft(tenant, author, f"{1:016x}")
        assert store.delete_draft(tenant, author, f"{1:016x}") is False
    assert store.delete_draft("acme", "ed", f"{1:016x}") is True
    assert [d.id for d in store.drafts("acme", "ed")] == [f"{2:016x}"]


def test_jobs_kept_before_recurring_posts_stay_and_publish(url: str) -> None:
    """A database at the schema before series (p0002), with a job in it, is brought to the
    newest: the job is still there, claimable, and its post may now recur."""
    engine = sa.create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "p0002")
        connection.execute(sa.text(
            "INSERT INTO publishing_jobs (id, tenant, post, version, channel, due_us, state,"
            " idempotency_key, check_first, attempts, updated_us) VALUES ('old', 'acme',"
            " 'acme-post-9', 1, 'acme-news', :due, 'scheduled', 'k', false, 0, :due)"
        ), {"due": T0})  # fmt: skip
    engine.dispose()
    store = SqlJobStore(url)
    try:
        (old,) = store.claim("a", T0, lease_s=60, limit=10)
        assert (old.id, old.series, old.occurrence_us) == ("old", None, 0)
        store.add_channel(channel("acme", "news"))
        made = store.start_series(
            post("acme", 1), [series_of("acme", T0 + S)], {"acme-news": [T0, T0 + S]}, T0
        )
        assert len(made) == 2
    finally:
        store.close()


def test_a_draft_saved_from_two_places_at_once_is_kept_once(url: str, store: SqlJobStore) -> None:
    stores = [SqlJobStore(url) for _ in range(4)]
    errors: list[BaseException] = []

    def save(own: SqlJobStore, n: int) -> None:
        try:
            for m in range(20):
                own.put_draft(replace(draft("acme", "ed", 1, T0 + m), body={"text": f"{n}"}), 5)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=save, args=(own, n)) for n, own in enumerate(stores)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for own in stores:
            own.close()
    assert errors == []
    assert len(store.drafts("acme", "ed")) == 1
