"""One contract for where reviews are kept, beside the jobs: SQLite (embedded) and
PostgreSQL (scale-out, a database made for each test on the real server). A decision
is made once, with the jobs it releases, even when two approvers decide at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hubbub.publishing.ports import (
    AuditEntry,
    Comment,
    Conflict,
    Decision,
    Job,
    NotFound,
    Plan,
    Post,
    Release,
    Review,
    Step,
    Workflow,
)
from hubbub.publishing.sql import SqlJobStore
from tests.conftest import postgres_database
from tests.contract.test_job_stores import T0, S, channel
from tests.contract.test_tenant_stores import sqlalchemy_url


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlJobStore]:
    if request.param == "sqlite":
        built = SqlJobStore(f"sqlite:///{tmp_path / 'relational.db'}")
        yield built
        built.close()
        return
    with postgres_database("hubbub_reviews") as dsn:
        built = SqlJobStore(sqlalchemy_url(dsn))
        yield built
        built.close()


STEPS = (Step("Team", users=("ann", "bob"), mode="all"), Step("Client", external=True))


def a_post(version: int = 1, text: str = "hello") -> Post:
    return Post(id="p1", tenant="acme", author="user:ed", text=text, version=version)


def a_review(version: int = 1, **changes: object) -> Review:
    made = Review(
        post="p1", tenant="acme", version=version, author="user:ed", workflows=("w1",),
        steps=STEPS, step=0, state="in_review", plan=Plan(("acme-news",), at="2027-01-04T09:00"),
        due_us=T0 + 3600 * S, step_since_us=T0, updated_us=T0,
    )  # fmt: skip
    return replace(made, **changes)  # type: ignore[arg-type]


def entry(action: str, at_us: int = T0, version: int = 1) -> AuditEntry:
    return AuditEntry("acme", "p1", version, action, "user:ed", at_us)


def approval(who: str, at_us: int) -> Decision:
    return Decision("p1", 1, 0, who, "editor", "approved", None, at_us)


def submitted(store: SqlJobStore) -> Review:
    store.add_channel(channel("acme", "news"))
    review = a_review()
    store.submit(a_post(), review, [entry("created"), entry("submitted")])
    return store.review("acme", "p1")


def test_a_workflow_is_its_tenants_and_its_name_unique(store: SqlJobStore) -> None:
    flow = Workflow("w1", "acme", "Client posts", STEPS, ("acme-news",), ("editor",), T0)
    store.put_workflow(flow)
    assert store.workflows("acme") == [flow]
    assert store.workflows("globex") == []
    with pytest.raises(ValueError, match="exists already"):
        store.put_workflow(replace(flow, id="w2"))
    with pytest.raises(NotFound):
        store.put_workflow(replace(flow, tenant="globex", name="Theirs"))
    assert not store.delete_workflow("globex", "w1")
    assert store.delete_workflow("acme", "w1")
    assert store.workflows("acme") == []


def test_a_submitted_post_has_a_review_and_no_jobs(store: SqlJobStore) -> None:
    kept = submitted(store)
    assert (kept.state, kept.step, kept.steps, kept.plan) == ("in_review", 0, STEPS,
                                                             a_review().plan)  # fmt: skip
    assert store.jobs("acme") == []
    with pytest.raises(NotFound):
        store.review("globex", "p1")
    assert [e.action for e in store.audit("acme", "p1")] == ["created", "submitted"]
    assert store.audit("globex", "p1") == []


def test_the_last_approval_makes_its_jobs_once_even_when_two_decide_at_once(
    store: SqlJobStore,
) -> None:
    before = submitted(store)
    after = replace(before, state="approved", updated_us=T0 + S)
    release = Release(dues={"acme-news": T0 + 3600 * S})
    outcomes: list[object] = []
    start = threading.Barrier(2)

    def decide(who: str) -> None:
        start.wait()
        try:
            outcomes.append(store.decide(before, after, approval(who, T0 + S), [entry("approved")],
                                         release, T0 + S))  # fmt: skip
        except Conflict as error:
            outcomes.append(error)

    threads = [threading.Thread(target=decide, args=(who,)) for who in ("user:ann", "user:bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "list"]
    assert [(j.version, j.state, j.due_us) for j in store.jobs("acme")] == [
        (1, "scheduled", T0 + 3600 * S)
    ]
    kept = store.review("acme", "p1")
    assert kept.state == "approved"
    assert len(kept.decisions) == 1


def test_a_new_version_cancels_the_old_jobs_and_replaces_the_review(store: SqlJobStore) -> None:
    before = submitted(store)
    store.decide(before, replace(before, state="approved", updated_us=T0 + S),
                 approval("user:ann", T0 + S), [], Release(dues={"acme-news": T0 + 3600 * S}),
                 T0 + S)  # fmt: skip
    first = store.jobs("acme")[0]
    cancelled, made = store.revise(
        a_post(2, "hello again"), a_review(2, updated_us=T0 + 2 * S), None,
        [entry("edited", T0 + 2 * S, 2)], T0 + 2 * S,
    )  # fmt: skip
    assert [(j.id, j.state) for j in cancelled] == [(first.id, "cancelled")]
    assert made == []
    kept = store.review("acme", "p1")
    assert (kept.version, kept.state, kept.decisions) == (2, "in_review", ())
    assert store.post("acme", "p1").text == "hello again"
    with pytest.raises(Conflict, match="changed meanwhile"):
        store.revise(a_post(2, "late"), None, None, [], T0 + 3 * S)
    actions = [e.action for e in store.audit("acme", "p1")]
    assert actions == ["created", "submitted", "scheduled", "edited", "cancelled"]


def test_a_published_post_cannot_change(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    store.schedule(a_post(), {"acme-news": T0}, T0)
    claimed = store.claim("w", T0, 60, 10)
    store.begin_sending("w", [claimed[0].id], T0)
    with pytest.raises(Conflict, match="being published"):
        store.revise(a_post(2), None, Release(dues={"acme-news": T0}), [], T0 + S)
    assert store.post("acme", "p1").version == 1


def test_a_paused_channel_holds_its_jobs_and_new_ones(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    store.schedule(a_post(), {"acme-news": T0 + 10 * S}, T0)
    found, held = store.pause("acme", "acme-news", True, T0)
    assert found.paused
    assert [j.state for j in held] == ["held"]
    more = store.schedule(replace(a_post(), id="p2"), {"acme-news": T0 + 20 * S}, T0)
    assert [j.state for j in more] == ["held"]
    assert store.claim("w", T0 + 60 * S, 60, 10) == []
    assert store.miss(T0 + 100_000 * S, 60 * S) == []
    with pytest.raises(NotFound):
        store.pause("globex", "acme-news", False, T0)
    _, resumed = store.pause("acme", "acme-news", False, T0 + 30 * S,
                             lambda _, jobs: {j.id: T0 + 40 * S for j in jobs})  # fmt: skip
    assert sorted((j.state, j.due_us) for j in resumed) == [("scheduled", T0 + 40 * S)] * 2
    assert len(store.claim("w", T0 + 40 * S, 60, 10)) == 2


def test_comments_are_the_posts_and_waiting_reviews_are_found(store: SqlJobStore) -> None:
    submitted(store)
    top = Comment("c1", "acme", "p1", None, 1, "user:ann", "hmm", T0)
    store.add_comment(top, entry("commented"))
    store.add_comment(replace(top, id="c2", parent="c1", text="ok", created_us=T0 + S),
                      entry("commented", T0 + S))  # fmt: skip
    with pytest.raises(NotFound):
        store.add_comment(replace(top, id="c3", parent="nope"), entry("commented"))
    with pytest.raises(NotFound):
        store.add_comment(replace(top, id="c4", tenant="globex"), entry("commented"))
    assert [(c.id, c.parent) for c in store.comments("acme", "p1")] == [("c1", None), ("c2", "c1")]
    assert store.comments("globex", "p1") == []
    claimed = [store.claim_reminders(T0 + S, T0 + S, 10) for _ in range(2)]
    assert [[r.post for r in one] for one in claimed] == [["p1"], []]  # one replica tells
    assert claimed[0][0].reminded_us == T0 + S
    assert store.claim_reminders(T0 + S, T0 + 2 * S, 10) == []  # reminded since
    assert [r.post for r in store.claim_reminders(T0 + 2 * S, T0 + 3 * S, 10)] == ["p1"]
    due = [store.claim_overdue(T0 + 3600 * S + 1, T0 + S, 10) for _ in range(2)]
    assert [[r.post for r in one] for one in due] == [["p1"], []]


def test_a_post_in_review_is_kept_until_its_review_is_left_for_the_retention(
    store: SqlJobStore,
) -> None:
    submitted(store)
    store.add_comment(Comment("c1", "acme", "p1", None, 1, "user:ann", "hmm", T0),
                      entry("commented"))  # fmt: skip
    store.forget_before(T0)  # the sweeper, a moment later: the review is fresh
    assert store.post("acme", "p1").text == "hello"
    assert store.review("acme", "p1").state == "in_review"
    store.forget_before(T0 + S)  # untouched past the retention, but planned later still
    assert store.review("acme", "p1").state == "in_review"
    store.forget_before(T0 + 3601 * S)  # untouched, and its time long past
    with pytest.raises(NotFound):
        store.post("acme", "p1")
    with pytest.raises(NotFound):
        store.review("acme", "p1")
    assert store.comments("acme", "p1") == []
    assert store.audit("acme", "p1") == []


def test_the_audit_trail_names_who_changed_each_job(store: SqlJobStore) -> None:
    store.add_channel(channel("acme", "news"))
    store.add_audit([entry("created")])
    (job,) = store.schedule(a_post(), {"acme-news": T0 + 60 * S}, T0)
    store.cancel("acme", job.id, T0 + S)
    store.add_audit([AuditEntry("acme", "p1", 1, "cancelled", "user:ann", T0 + S, "by hand")])
    store.retry("acme", job.id, T0 + 2 * S)  # nobody's entry at that moment: the publisher's
    (claimed,) = store.claim("w", T0 + 60 * S, 60, 10)
    store.failed(claimed.id, "w", "refused", T0 + 61 * S)
    trail = [(e.action, e.actor, e.detail) for e in store.audit("acme", "p1")]
    assert trail == [
        ("created", "user:ed", None),
        ("scheduled", "user:ed", "news@example.social (mastodon)"),
        ("cancelled", "user:ann", "by hand"),  # said once, by whoever cancelled it
        ("scheduled", "publisher", "news@example.social (mastodon)"),
        ("failed", "publisher", "news@example.social (mastodon): refused"),
    ]


def test_audit_entries_are_kept_with_the_change_they_tell_of_or_not_at_all(
    store: SqlJobStore,
) -> None:
    store.add_channel(channel("acme", "news"))

    def full(taken: set[int]) -> int:
        raise ValueError("the queue has no free slot")

    with pytest.raises(ValueError, match="no free slot"):
        store.schedule(a_post(), {}, T0, {"acme-news": full}, [entry("created")])
    with pytest.raises(NotFound):
        store.post("acme", "p1")
    assert store.audit("acme", "p1") == []  # no trail of a post that was not kept

    (job,) = store.schedule(a_post(), {"acme-news": T0 + 60 * S}, T0, None, [entry("created")])
    with pytest.raises(ValueError, match="only failed, missed or cancelled"):
        store.retry("acme", job.id, T0 + S, lambda changed: [entry(changed.state, T0 + S)])

    def said(changed: Job) -> list[AuditEntry]:
        return [AuditEntry("acme", "p1", 1, changed.state, "user:ann", T0 + 2 * S, "by hand")]

    store.cancel("acme", job.id, T0 + 2 * S, said)
    with pytest.raises(ValueError, match="only scheduled or held"):
        store.cancel("acme", job.id, T0 + 3 * S, said)
    trail = [(e.action, e.actor, e.detail) for e in store.audit("acme", "p1")]
    assert trail == [
        ("created", "user:ed", None),
        ("scheduled", "user:ed", "news@example.social (mastodon)"),
        ("cancelled", "user:ann", "by hand"),  # once: the refused retry and cancel wrote none
    ]
