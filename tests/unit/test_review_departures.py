"""A step stops waiting on people who left: an approval they gave stands, and a step with
nobody left to decide it waits on the tenant's admins and owners, never passing alone."""

from __future__ import annotations

from hubbub.publishing.ports import Actor, Decision, Step
from hubbub.publishing.review import done, eligible, waiting_on


def approved(who: str, role: str = "editor") -> Decision:
    return Decision("p1", 1, 0, f"user:{who}", role, "approved", None, 0)


def test_an_all_step_needs_only_who_is_left() -> None:
    team = Step("Team", users=("ann", "bob", "cy"), mode="all")
    assert waiting_on(team, [approved("ann")], left={"bob"}) == ["cy"]
    assert not done(team, [approved("ann")], left={"bob"})
    assert done(team, [approved("ann"), approved("cy")], left={"bob"})
    assert done(team, [approved("ann"), approved("cy")], left={"ann", "bob"})  # ann's stands


def test_a_step_with_nobody_left_waits_on_admins_and_owners() -> None:
    legal = Step("Legal", users=("bob",))
    assert not done(legal, [], left={"bob"})
    assert waiting_on(legal, [], left={"bob"}) == ["role:owner", "role:admin"]
    assert eligible(legal, Actor("user:adm", "admin"), left={"bob"})
    assert not eligible(legal, Actor("user:ann", "editor"), left={"bob"})
    assert not eligible(legal, Actor("user:adm", "admin"))  # while bob is there, his alone
    assert done(legal, [approved("adm", "admin")], left={"bob"})


def test_a_role_or_an_external_reviewer_is_never_gone() -> None:
    desk = Step("Desk", users=("bob",), roles=("editor",), mode="all")
    assert waiting_on(desk, [], left={"bob"}) == ["role:editor"]
    client = Step("Client", users=("bob",), external=True)
    assert waiting_on(client, [], left={"bob"}) == ["external"]
    assert not eligible(client, Actor("user:adm", "admin"), left={"bob"})
