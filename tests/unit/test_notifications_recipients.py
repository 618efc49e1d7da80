"""Who a notice is for, and what its email says."""

from __future__ import annotations

from hubbub.kernel.events import NoticeIssued, PersonChanged
from hubbub.notifications.ports import Person
from hubbub.notifications.service import (
    Directory,
    EmailPolicy,
    deliveries,
    handle_matches,
    plan,
    recipients,
    safe_link,
)

PEOPLE = [
    Person("acme", "u-ann", "Ann.Lee@acme.example", "admin"),
    Person("acme", "u-bob", "bob@acme.example", "editor"),
    Person("acme", "u-cy", "cy@acme.example", "editor"),
    Person("acme", "u-dee", "dee@acme.example", "editor", active=False),
    Person("globex", "u-eve", "eve@globex.example", "editor"),
    Person("globex", "u-bob2", "bob@globex.example", "admin"),
]


def notice(**fields: object) -> NoticeIssued:
    base: dict[str, object] = {
        "id": "e1", "key": "acme", "ts": 1_800_000_000_000_000, "source": "publishing",
        "tenant": "acme", "notice": "n1", "kind": "commented", "title": "A comment",
    }  # fmt: skip
    return NoticeIssued(**(base | fields))  # type: ignore[arg-type]


def users(found: list[Person]) -> list[str]:
    return [p.user for p in found]


def test_named_users_role_members_and_handles_each_once_without_the_actor() -> None:
    directory = Directory.of(PEOPLE)
    found = recipients(
        notice(users=["u-ann", "u-bob"], roles=["editor"], handles=["ann.lee", "BOB"],
               actor="u-cy"),
        directory,
    )  # fmt: skip
    assert users(found) == ["u-ann", "u-bob"]


def test_a_user_named_by_their_sessions_key_is_the_same_user() -> None:
    found = recipients(notice(users=["user:u-ann", "user:u-bob"], actor="user:u-bob"),
                       Directory.of(PEOPLE))  # fmt: skip
    assert users(found) == ["u-ann"]


def test_only_active_people_of_the_notices_tenant() -> None:
    directory = Directory.of(PEOPLE)
    found = recipients(notice(users=["u-eve", "u-dee"], roles=["admin"]), directory)
    assert users(found) == ["u-ann"]
    assert recipients(notice(handles=["eve", "bob@globex.example"]), directory) == []


def test_a_handle_names_the_local_part_or_the_whole_email_ignoring_case() -> None:
    assert handle_matches("ann.lee", "Ann.Lee@acme.example")
    assert handle_matches("@ANN.LEE", "ann.lee@acme.example")
    assert handle_matches("ann.lee@ACME.example", "Ann.Lee@acme.example")
    assert not handle_matches("ann", "ann.lee@acme.example")
    assert not handle_matches("", "ann.lee@acme.example")


def test_the_batchs_own_changes_count_before_its_notices() -> None:
    joined = PersonChanged(
        id="p", key="acme/u-fay", ts=1, source="gateway", tenant="acme", user="u-fay",
        email="fay@acme.example", role="viewer",
    )  # fmt: skip
    left = PersonChanged(
        id="q", key="acme/u-ann", ts=1, source="gateway", tenant="acme", user="u-ann",
        email="Ann.Lee@acme.example", role="admin", active=False,
    )  # fmt: skip
    changed, made = plan([joined, left], [notice(users=["u-fay", "u-ann"])], PEOPLE, None)
    assert [p.user for p in changed] == ["u-fay", "u-ann"]
    assert [d.notification.user for d in made] == ["u-fay"]
    assert made[0].email is None  # email off


def test_an_email_is_plain_text_with_the_link_made_absolute() -> None:
    policy = EmailPolicy("Hubbub <hubbub@hubbub.example>", "https://hubbub.example/")
    found = notice(users=["u-bob"], title="Ann commented", body="Looks good <b>", link="/p/1")
    (made,) = deliveries(found, Directory.of(PEOPLE), policy)
    assert made.email is not None
    assert made.email.to == "bob@acme.example"
    assert made.email.subject == "Ann commented"
    assert made.email.text.startswith("Ann commented\n\nLooks good <b>\n\n")
    assert "Open it: https://hubbub.example/p/1\n" in made.email.text
    assert made.email.message_id.endswith("@hubbub.example>")
    (again,) = deliveries(found, Directory.of(PEOPLE), policy)
    assert again.email is not None
    assert again.email.message_id == made.email.message_id


def test_a_notice_links_only_to_the_web_apps_own_paths() -> None:
    assert safe_link("/publish/posts/p1") == "/publish/posts/p1"
    for elsewhere in ("https://evil.example", "//evil.example/x", "javascript:alert(1)", "/\\x"):
        assert safe_link(elsewhere) == ""
