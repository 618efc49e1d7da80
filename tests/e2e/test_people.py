"""People through the gateway: invitations, signing in, sessions, profiles, and the
limits and isolation that hold for them as for API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hubbub.bootstrap import build_gateway
from hubbub.gateway.app import observed
from tests.support.cli import cli
from tests.support.stack import OPERATOR, Stack, auth, start_stack

PASSWORD = "correct horse battery"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, resources = await start_stack(tmp_path, signin_attempts_per_minute=5)
    async with resources:
        yield built


async def invite_and_join(stack: Stack, owner: dict[str, str], email: str, role: str) -> str:
    """Invite `email` with the owner's key, accept the link; answers the session token."""
    made = await stack.client.post(
        "/v1/invites", json={"email": email, "role": role}, headers=auth(owner["token"])
    )
    assert made.status_code == 201, made.text
    link = made.json()["token"]
    shown = await stack.client.get(f"/v1/invitations/{link}")
    assert (shown.status_code, shown.json()["email"], shown.json()["role"]) == (200, email, role)
    joined = await stack.client.post(f"/v1/invitations/{link}/accept", json={"password": PASSWORD})
    assert joined.status_code == 201, joined.text
    again = await stack.client.post(f"/v1/invitations/{link}/accept", json={"password": PASSWORD})
    assert again.status_code == 404  # a link works once
    token: str = joined.json()["token"]
    return token


async def test_an_invited_person_signs_in_and_speaks_for_their_tenant_only(stack: Stack) -> None:
    newsroom, other = await stack.tenant("newsroom"), await stack.tenant("other")
    await invite_and_join(stack, newsroom, "ed@newsroom.example", "editor")

    signed = await stack.client.post(
        "/v1/sessions", json={"email": "Ed@Newsroom.example", "password": PASSWORD}
    )
    assert signed.status_code == 201, signed.text
    session = signed.json()["token"]
    me = (await stack.client.get("/v1/me", headers=auth(session))).json()
    assert (me["email"], me["tenant"], me["role"]) == (
        "ed@newsroom.example",
        newsroom["id"],
        "editor",
    )
    assert (await stack.client.get("/v1/mentions?q=a", headers=auth(session))).status_code == 200

    # What other tenants own stays theirs: a key id of another tenant is not found.
    others_key = await stack.made_key(other, "viewer")
    owner_session = await invite_and_join(stack, newsroom, "boss@newsroom.example", "owner")
    revoke = await stack.client.delete(f"/v1/keys/{others_key['id']}", headers=auth(owner_session))
    assert revoke.status_code == 404
    # An editor cannot invite, nor invite above itself.
    refused = await stack.client.post(
        "/v1/invites", json={"email": "x@y.example", "role": "viewer"}, headers=auth(session)
    )
    assert refused.status_code == 403


async def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
    stack: Stack,
) -> None:
    owner = await stack.tenant("newsroom")
    await invite_and_join(stack, owner, "ed@newsroom.example", "viewer")
    wrong = await stack.client.post(
        "/v1/sessions", json={"email": "ed@newsroom.example", "password": "not the password"}
    )
    nobody = await stack.client.post(
        "/v1/sessions", json={"email": "nobody@newsroom.example", "password": PASSWORD}
    )
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json() == {"detail": "wrong email or password"}
    assert (await stack.client.get("/v1/me", headers=auth("hs_forged"))).status_code == 401


async def test_guessing_passwords_is_limited_per_email(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    await invite_and_join(stack, owner, "ed@newsroom.example", "viewer")
    answers = [
        (
            await stack.client.post(
                "/v1/sessions", json={"email": "ed@newsroom.example", "password": f"guess {n}"}
            )
        ).status_code
        for n in range(7)
    ]
    assert answers[:5] == [401] * 5
    assert answers[5:] == [429, 429]  # the right password is not even tried now
    limited = await stack.client.post(
        "/v1/sessions", json={"email": "ed@newsroom.example", "password": PASSWORD}
    )
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


async def test_signing_out_everywhere_ends_every_session_at_once(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    first = await invite_and_join(stack, owner, "ed@newsroom.example", "viewer")
    second = (
        await stack.client.post(
            "/v1/sessions", json={"email": "ed@newsroom.example", "password": PASSWORD}
        )
    ).json()["token"]
    assert (await stack.client.get("/v1/me", headers=auth(second))).status_code == 200
    assert (await stack.client.delete("/v1/sessions", headers=auth(first))).status_code == 204
    for token in (first, second):
        assert (await stack.client.get("/v1/me", headers=auth(token))).status_code == 401
    # An API key has no session to end.
    assert (
        await stack.client.delete("/v1/sessions", headers=auth(owner["token"]))
    ).status_code == 403


async def test_a_profile_holds_a_real_time_zone_and_locale(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    session = await invite_and_join(stack, owner, "ed@newsroom.example", "viewer")
    changed = await stack.client.put(
        "/v1/me", json={"time_zone": "Europe/Paris", "locale": "fr-CH"}, headers=auth(session)
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["time_zone"], changed.json()["locale"]) == ("Europe/Paris", "fr_CH")
    bad = await stack.client.put(
        "/v1/me", json={"time_zone": "Mars/Olympus", "locale": "en"}, headers=auth(session)
    )
    assert bad.status_code == 422
    assert "unknown time zone" in bad.text


async def test_a_short_password_is_refused_and_the_link_still_works(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    made = await stack.client.post(
        "/v1/invites", json={"email": "ed@newsroom.example"}, headers=auth(owner["token"])
    )
    link = made.json()["token"]
    short = await stack.client.post(f"/v1/invitations/{link}/accept", json={"password": "short"})
    assert short.status_code == 422
    assert "10 characters" in short.json()["detail"]
    joined = await stack.client.post(f"/v1/invitations/{link}/accept", json={"password": PASSWORD})
    assert joined.status_code == 201


async def test_the_cli_adds_a_person_who_can_sign_in(stack: Stack, tmp_path: Path) -> None:
    owner = await stack.tenant("newsroom")
    user_id = await cli(
        tmp_path, "users", "create", "--tenant", owner["id"], "--email", "ops@newsroom.example",
        "--role", "admin", "--password-stdin", stdin=f"{PASSWORD}\n",
    )  # fmt: skip
    assert len(user_id.strip()) == 16
    signed = await stack.client.post(
        "/v1/sessions", json={"email": "ops@newsroom.example", "password": PASSWORD}
    )
    assert signed.status_code == 201
    assert signed.json()["user"]["role"] == "admin"


async def test_the_operator_signs_in_with_its_token_for_a_session_of_its_own(
    stack: Stack,
) -> None:
    newsroom = await stack.tenant("newsroom")
    wrong = await stack.client.post("/v1/sessions/operator", json={"token": "a guess"})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "wrong operator token")

    signed = await stack.client.post("/v1/sessions/operator", json={"token": OPERATOR})
    assert signed.status_code == 201, signed.text
    session = signed.json()["token"]
    assert session.startswith("hs_")
    assert session != OPERATOR
    me = (await stack.client.get("/v1/me", headers=auth(session))).json()
    assert (me["operator"], me["tenant"]) == (True, "platform")
    tenants = await stack.client.get("/v1/tenants", headers=auth(session))
    assert [t["name"] for t in tenants.json()] == ["newsroom"]
    # It is the operator's, not a tenant's: no tenant's data through it.
    reports = await stack.client.get("/v1/reports/top/hashtags", headers=auth(session))
    assert reports.status_code == 403
    # A person's session is no operator's.
    person = await invite_and_join(stack, newsroom, "boss@newsroom.example", "owner")
    assert (await stack.client.get("/v1/tenants", headers=auth(person))).status_code == 403


async def test_changing_the_operators_token_ends_its_sessions(stack: Stack, tmp_path: Path) -> None:
    session = (await stack.client.post("/v1/sessions/operator", json={"token": OPERATOR})).json()
    rotated = stack.gateway_settings.model_copy(
        update={"admin_token": SecretStr("a new operator token")}
    )
    gateway = await build_gateway(rotated, stack.platform.clock)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=observed(gateway)), base_url="http://gateway"
        ) as client:
            assert (await client.get("/v1/me", headers=auth(session["token"]))).status_code == 401
            fresh = await client.post(
                "/v1/sessions/operator", json={"token": "a new operator token"}
            )
            assert fresh.status_code == 201
    finally:
        await gateway.close()


async def test_a_role_change_holds_at_once_and_never_lifts_anyone_above_its_changer(
    stack: Stack,
) -> None:
    newsroom, other = await stack.tenant("newsroom"), await stack.tenant("other")
    owner = await invite_and_join(stack, newsroom, "boss@newsroom.example", "owner")
    admin = await invite_and_join(stack, newsroom, "admin@newsroom.example", "admin")
    viewer = await invite_and_join(stack, newsroom, "ed@newsroom.example", "viewer")
    people = {
        u["email"]: u["id"]
        for u in (await stack.client.get("/v1/users", headers=auth(owner))).json()
    }
    watch = {"kind": "hashtag", "target": "quake"}
    refused = await stack.client.post("/v1/watches", json=watch, headers=auth(viewer))
    assert refused.status_code == 403

    made = await stack.client.patch(
        f"/v1/users/{people['ed@newsroom.example']}", json={"role": "editor"}, headers=auth(admin)
    )
    assert (made.status_code, made.json()["role"]) == (200, "editor")
    allowed = await stack.client.post("/v1/watches", json=watch, headers=auth(viewer))
    assert allowed.status_code == 201  # the same session, at once

    for target, role in (("ed@newsroom.example", "owner"), ("boss@newsroom.example", "viewer")):
        answer = await stack.client.patch(
            f"/v1/users/{people[target]}", json={"role": role}, headers=auth(admin)
        )
        assert answer.status_code == 403, answer.text  # above the admin, or of someone above
    last = await stack.client.patch(
        f"/v1/users/{people['boss@newsroom.example']}", json={"role": "admin"}, headers=auth(owner)
    )
    assert (last.status_code, last.json()["detail"]) == (
        409, "this is the tenant's last owner: make another owner first",
    )  # fmt: skip
    elsewhere = await stack.client.patch(
        f"/v1/users/{people['ed@newsroom.example']}", json={"role": "viewer"},
        headers=auth(other["token"]),
    )  # fmt: skip
    assert elsewhere.status_code == 404


async def test_every_member_sees_who_their_teammates_are_and_only_theirs(stack: Stack) -> None:
    owner, other = await stack.tenant("newsroom"), await stack.tenant("bakery")
    viewer = await invite_and_join(stack, owner, "vic@newsroom.test", "viewer")
    await invite_and_join(stack, other, "baker@bakery.test", "editor")
    people = await stack.client.get("/v1/people", headers=auth(viewer))
    assert people.status_code == 200, people.text
    assert [(p["email"], p["role"]) for p in people.json()] == [("vic@newsroom.test", "viewer")]
    assert set(people.json()[0]) == {"id", "email", "role"}  # nothing else of them
    theirs = await stack.client.get("/v1/people", headers=auth(other["token"]))
    assert [p["email"] for p in theirs.json()] == ["baker@bakery.test"]
    assert (await stack.client.get("/v1/people", headers=auth(OPERATOR))).status_code == 403
    users = await stack.client.get("/v1/users", headers=auth(viewer))
    assert users.status_code == 403  # the admin's list, with more, stays the admin's
