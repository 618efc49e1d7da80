"""Removing a person from a tenant through the gateway over its API: what it refuses (a
role below admin, someone above the remover, the last owner, another tenant's person),
and what follows: their sessions stop at once, the log is told they left, and an
invitation to their email still brings them back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hubbub.kernel.events import CONTROL, PersonChanged
from tests.support.stack import OPERATOR, Stack, auth, start_stack

PASSWORD = "correct horse battery"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, resources = await start_stack(tmp_path)
    async with resources:
        yield built


async def invited(stack: Stack, owner: dict[str, str], email: str, role: str) -> str:
    """An invitation link's token, for `email` to join the owner's tenant with `role`."""
    made = await stack.client.post(
        "/v1/invites", json={"email": email, "role": role}, headers=auth(owner["token"])
    )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


async def joined(stack: Stack, owner: dict[str, str], email: str, role: str) -> tuple[str, str]:
    """`email` joins with `role`; their user id and session token."""
    link = await invited(stack, owner, email, role)
    answer = await stack.client.post(f"/v1/invitations/{link}/accept", json={"password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["user"]["id"]), str(answer.json()["token"])


async def emails(stack: Stack, token: str) -> list[str]:
    listed = await stack.client.get("/v1/users", headers=auth(token))
    assert listed.status_code == 200, listed.text
    return [u["email"] for u in listed.json()]


async def test_a_removed_person_is_gone_at_once_and_the_log_is_told(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    _, admin = await joined(stack, owner, "ada@newsroom.example", "admin")
    ed_id, ed = await joined(stack, owner, "ed@newsroom.example", "editor")
    again = await invited(stack, owner, "ed@newsroom.example", "viewer")  # still open
    assert (await stack.client.get("/v1/me", headers=auth(ed))).status_code == 200

    removed = await stack.client.delete(f"/v1/users/{ed_id}", headers=auth(admin))
    assert removed.status_code == 200, removed.text
    assert removed.json() == {
        "id": ed_id, "tenant": owner["id"], "email": "ed@newsroom.example", "role": "editor",
    }  # fmt: skip
    assert await emails(stack, owner["token"]) == ["ada@newsroom.example"]
    for path in ("/v1/me", "/v1/people", "/v1/jobs"):  # the session ended at once
        refused = await stack.client.get(path, headers=auth(ed))
        assert refused.status_code == 401, (path, refused.text)
    signed = await stack.client.post(
        "/v1/sessions", json={"email": "ed@newsroom.example", "password": PASSWORD}
    )
    assert signed.status_code == 401  # nor can they sign in again
    twice = await stack.client.delete(f"/v1/users/{ed_id}", headers=auth(admin))
    assert twice.status_code == 404

    records = await stack.gateway.event_log.read(CONTROL, 1, 10_000)
    eds = [r.event for r in records if isinstance(r.event, PersonChanged) and r.event.user == ed_id]
    assert [(e.role, e.active) for e in eds] == [("editor", True), ("editor", False)]

    shown = await stack.client.get(f"/v1/invitations/{again}")
    assert shown.status_code == 200, shown.text  # the open invitation is theirs to use
    back = await stack.client.post(f"/v1/invitations/{again}/accept", json={"password": PASSWORD})
    assert back.status_code == 201, back.text
    assert back.json()["user"]["id"] != ed_id  # a new person, with the invitation's role
    assert back.json()["user"]["role"] == "viewer"
    assert (await stack.client.get("/v1/me", headers=auth(ed))).status_code == 401  # still


async def test_removing_is_refused_below_admin_above_the_remover_and_for_the_last_owner(
    stack: Stack,
) -> None:
    owner, bakery = await stack.tenant("newsroom"), await stack.tenant("bakery")
    boss_id, boss = await joined(stack, owner, "boss@newsroom.example", "owner")
    ada_id, ada = await joined(stack, owner, "ada@newsroom.example", "admin")
    ed_id, ed = await joined(stack, owner, "ed@newsroom.example", "editor")
    baker_id, _ = await joined(stack, bakery, "baker@bakery.example", "editor")
    everyone = ["ada@newsroom.example", "boss@newsroom.example", "ed@newsroom.example"]

    below = await stack.client.delete(f"/v1/users/{ada_id}", headers=auth(ed))
    assert below.status_code == 403, below.text  # an editor removes no one
    above = await stack.client.delete(f"/v1/users/{boss_id}", headers=auth(ada))
    assert (above.status_code, above.json()["detail"]) == (
        403, "the admin role cannot remove someone of the owner role",
    )  # fmt: skip
    last = await stack.client.delete(f"/v1/users/{boss_id}", headers=auth(owner["token"]))
    assert (last.status_code, last.json()["detail"]) == (
        409, "this is the tenant's last owner: make another owner first",
    )  # fmt: skip
    for token, whom in ((bakery["token"], ed_id), (owner["token"], baker_id),
                        (owner["token"], "0123456789abcdef")):  # fmt: skip
        elsewhere = await stack.client.delete(f"/v1/users/{whom}", headers=auth(token))
        assert elsewhere.status_code == 404, elsewhere.text  # another tenant's, as none
    operator = await stack.client.delete(f"/v1/users/{ed_id}", headers=auth(OPERATOR))
    assert operator.status_code == 403  # the operator's token has no tenant
    assert await emails(stack, owner["token"]) == everyone
    assert (await stack.client.get("/v1/me", headers=auth(boss))).status_code == 200

    promoted = await stack.client.patch(
        f"/v1/users/{ada_id}", json={"role": "owner"}, headers=auth(boss)
    )
    assert promoted.status_code == 200, promoted.text
    left = await stack.client.delete(f"/v1/users/{boss_id}", headers=auth(ada))
    assert left.status_code == 200, left.text  # another owner stays
    assert await emails(stack, owner["token"]) == ["ada@newsroom.example", "ed@newsroom.example"]
    assert (await stack.client.get("/v1/me", headers=auth(boss))).status_code == 401
