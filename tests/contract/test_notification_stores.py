"""One contract for where notifications are kept: SQLite (embedded) and PostgreSQL
(scale-out, a database made for each test on the real server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hubbub.notifications.ports import (
    Delivery,
    Email,
    Fold,
    Notification,
    Person,
    Settled,
    StalePositions,
)
from hubbub.notifications.sql import SqlNotificationStore
from tests.conftest import postgres_database
from tests.contract.test_tenant_stores import sqlalchemy_url

S = 1_000_000
T0 = 1_800_000_000 * S
KEEP = 500


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'notifications.db'}"
        return
    with postgres_database("hubbub_notifications") as dsn:
        yield sqlalchemy_url(dsn)


@pytest.fixture
def store(url: str) -> Iterator[SqlNotificationStore]:
    built = SqlNotificationStore(url)
    yield built
    built.close()


def delivery(tenant: str, user: str, notice: str, *, email: bool = False, at: int = 0) -> Delivery:
    made = Notification(
        tenant=tenant, user=user, notice=notice, kind="commented", title=f"{notice} for {user}",
        created_us=T0 + at * S, body="a body", link=f"/publish/posts/{notice}", actor="u-ed",
    )  # fmt: skip
    mail = None
    if email:
        mail = Email(
            tenant=tenant, user=user, to=f"{user}@example.com", subject=made.title,
            text="text", message_id=f"<{notice}.{user}@example.com>",
        )  # fmt: skip
    return Delivery(made, mail)


def deliver(store: SqlNotificationStore, *deliveries: Delivery, keep: int = KEEP) -> int:
    """Apply the deliveries as the next fold of the `notices` topic; answers how many
    were kept."""
    positions = store.positions()
    reached = {"notices": positions.get("notices", 0) + 1}
    return store.apply(Fold(deliveries=deliveries), reached, positions, keep).kept


def titles(store: SqlNotificationStore, tenant: str, user: str, **options: object) -> list[str]:
    page = store.listing(tenant, user, **options)  # type: ignore[arg-type]
    return [n.title for n in page.notifications]


def test_a_delivery_is_kept_once_whatever_folds_it_again(store: SqlNotificationStore) -> None:
    assert deliver(store, delivery("acme", "ann", "n1", email=True)) == 1
    assert deliver(store, delivery("acme", "ann", "n1", email=True)) == 0
    page = store.listing("acme", "ann")
    assert [n.title for n in page.notifications] == ["n1 for ann"]
    assert page.unread == 1
    assert len(store.claim_emails("w", T0 + 10 * S, 60, 10)) == 1  # one email, not two


def test_positions_move_only_from_where_the_fold_was_read(store: SqlNotificationStore) -> None:
    assert store.positions() == {}
    store.apply(Fold(), {"control": 4, "notices": 2}, {}, KEEP)
    assert store.positions() == {"control": 4, "notices": 2}
    with pytest.raises(StalePositions):  # read before the last fold: refused, nothing kept
        store.apply(Fold(deliveries=[delivery("acme", "ann", "n1")]), {"notices": 3}, {}, KEEP)
    stale = {"control": 3, "notices": 2}
    with pytest.raises(StalePositions):
        store.apply(Fold(deliveries=[delivery("acme", "ann", "n1")]), {"notices": 3}, stale, KEEP)
    assert store.listing("acme", "ann").notifications == []
    store.apply(Fold(), {"notices": 3}, {"control": 4, "notices": 2}, KEEP)
    assert store.positions() == {"control": 4, "notices": 3}


def test_people_are_kept_and_changed(store: SqlNotificationStore) -> None:
    ann = Person("acme", "ann", "Ann@Example.com", "editor")
    store.apply(Fold(people=[ann, Person("other", "bob", "bob@x.org", "admin")]), {}, {}, KEEP)
    left = Person("acme", "ann", "ann@example.com", "viewer", "Europe/Paris", active=False)
    store.apply(Fold(people=[left]), {}, {}, KEEP)
    assert store.people(["acme"]) == [left]
    assert store.people([]) == []


def test_a_person_sees_only_their_own_newest_first(store: SqlNotificationStore) -> None:
    deliver(store, delivery("acme", "ann", "n1", at=1), delivery("acme", "bob", "n1", at=1))
    deliver(store, delivery("acme", "ann", "n2", at=2), delivery("globex", "ann", "n2", at=2))
    assert titles(store, "acme", "ann") == ["n2 for ann", "n1 for ann"]
    assert titles(store, "acme", "bob") == ["n1 for bob"]
    assert titles(store, "globex", "ann") == ["n2 for ann"]
    assert titles(store, "globex", "bob") == []
    first, second = reversed(store.listing("acme", "ann").notifications)
    assert 0 < first.id < second.id
    assert store.latest("acme", "ann") == second.id
    assert store.latest("acme", "nobody") == 0


def test_pages_go_back_and_streams_go_forward(store: SqlNotificationStore) -> None:
    for n in range(5):
        deliver(store, delivery("acme", "ann", f"n{n}", at=n))
    newest = store.listing("acme", "ann", limit=2)
    assert [n.title for n in newest.notifications] == ["n4 for ann", "n3 for ann"]
    assert newest.more
    older = store.listing("acme", "ann", before=newest.notifications[-1].id, limit=10)
    assert [n.title for n in older.notifications] == ["n2 for ann", "n1 for ann", "n0 for ann"]
    assert not older.more
    after = store.listing("acme", "ann", after=older.notifications[1].id)
    assert [n.title for n in after.notifications] == ["n2 for ann", "n3 for ann", "n4 for ann"]


def test_marking_read_touches_only_the_persons_own(store: SqlNotificationStore) -> None:
    deliver(store, delivery("acme", "ann", "n1"), delivery("acme", "bob", "n1"))
    deliver(store, delivery("acme", "ann", "n2"), delivery("globex", "ann", "n2"))
    anns = {n.notice: n.id for n in store.listing("acme", "ann").notifications}
    bobs = [n.id for n in store.listing("acme", "bob").notifications]
    theirs = [n.id for n in store.listing("globex", "ann").notifications]
    assert store.mark_read("acme", "ann", [anns["n1"], *bobs, *theirs], T0) == 1
    assert titles(store, "acme", "ann", unread_only=True) == ["n2 for ann"]
    assert store.unread("acme", "bob") == 1
    assert store.unread("globex", "ann") == 1
    assert store.mark_read("acme", "ann", [anns["n1"]], T0) == 0  # read already
    assert store.mark_read("acme", "ann", [], T0) == 0
    assert store.mark_read("acme", "ann", None, T0 + S) == 1
    assert store.unread("acme", "ann") == 0
    assert store.listing("acme", "ann").notifications[0].read_us == T0 + S


def test_a_person_keeps_at_most_their_newest(store: SqlNotificationStore) -> None:
    for n in range(5):
        deliver(store, delivery("acme", "ann", f"n{n}"), delivery("acme", "bob", f"n{n}"), keep=3)
    assert titles(store, "acme", "ann") == ["n4 for ann", "n3 for ann", "n2 for ann"]
    assert len(titles(store, "acme", "bob")) == 3


def test_read_notifications_and_settled_emails_are_dropped_after_a_while(
    store: SqlNotificationStore,
) -> None:
    deliver(store, delivery("acme", "ann", "n1", email=True), delivery("acme", "ann", "n2"))
    first = store.listing("acme", "ann").notifications[-1]
    store.mark_read("acme", "ann", [first.id], T0)
    (email,) = store.claim_emails("w", T0, 60, 10)
    store.settle_emails("w", [Settled(email.id)], T0)
    assert store.prune(T0, T0) == 0  # not before T0
    assert store.prune(T0 + 1, T0 + 1) == 2
    assert titles(store, "acme", "ann") == ["n2 for ann"]


def test_an_email_is_held_by_one_postman_until_its_lease_lapses(
    store: SqlNotificationStore,
) -> None:
    deliver(store, delivery("acme", "ann", "n1", email=True))
    (email,) = store.claim_emails("one", T0, 60, 10)
    assert (email.to, email.attempts) == ("ann@example.com", 1)
    assert store.claim_emails("two", T0 + 30 * S, 60, 10) == []
    (again,) = store.claim_emails("two", T0 + 61 * S, 60, 10)
    assert (again.id, again.attempts) == (email.id, 2)
    store.settle_emails("one", [Settled(email.id)], T0 + 62 * S)  # no longer its: ignored
    assert store.claim_emails("three", T0 + 62 * S, 60, 10) == []
    store.settle_emails("two", [Settled(email.id)], T0 + 62 * S)
    assert store.claim_emails("three", T0 + 200 * S, 60, 10) == []  # sent


def test_a_failed_email_is_due_again_or_dead_with_its_reason(
    store: SqlNotificationStore,
) -> None:
    deliver(store, delivery("acme", "ann", "n1", email=True))
    deliver(store, delivery("globex", "bob", "n2", email=True))
    first, second = store.claim_emails("w", T0, 60, 10)
    store.settle_emails(
        "w", [Settled(first.id, "421 busy", T0 + 30 * S), Settled(second.id, "550 no such user")],
        T0,
    )  # fmt: skip
    assert store.claim_emails("w", T0 + 29 * S, 60, 10) == []
    (retried,) = store.claim_emails("w", T0 + 30 * S, 60, 10)
    assert (retried.id, retried.attempts) == (first.id, 2)
    (dead,) = store.dead()
    assert (dead.tenant, dead.to, dead.error, dead.attempts) == (
        "globex", "bob@example.com", "550 no such user", 1,
    )  # fmt: skip
    assert store.dead("acme") == []
