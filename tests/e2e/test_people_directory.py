"""People on the log: each change to a person's entry (added, joined by invitation, given a
role, a new time zone) is a `PersonChanged` on `control`, read back from the real log; a
starting gateway announces the people the log does not hold yet, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hubbub.bootstrap import build_gateway, open_event_log, open_tenant_store
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import CONTROL, PersonChanged
from hubbub.settings import Settings
from tests.support.net import free_port
from tests.support.stack import Stack, auth, start_stack

PASSWORD = "correct horse battery"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, resources = await start_stack(tmp_path)
    async with resources:
        yield built


async def people_on(log: EventLog) -> list[tuple[str, str, str, str, str, bool]]:
    """Every `PersonChanged` on the log, in order, as what it states."""
    records = await log.read(CONTROL, 1, 10_000)
    return [
        (e.tenant, e.user, e.email, e.role, e.time_zone, e.active)
        for e in (r.event for r in records)
        if isinstance(e, PersonChanged)
    ]


async def test_each_change_to_a_person_is_on_the_log(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    tenant, log = owner["id"], stack.gateway.event_log
    added = await stack.client.post(
        "/v1/users", json={"email": "Vi@Newsroom.example", "role": "viewer"},
        headers=auth(owner["token"]),
    )  # fmt: skip
    assert added.status_code == 201, added.text
    vi = added.json()["id"]
    assert await people_on(log) == [(tenant, vi, "vi@newsroom.example", "viewer", "UTC", True)]

    for role in ("editor", "viewer"):  # and back: a change to an earlier state is kept too
        changed = await stack.client.patch(
            f"/v1/users/{vi}", json={"role": role}, headers=auth(owner["token"])
        )
        assert changed.status_code == 200, changed.text
    assert [p[3] for p in await people_on(log)] == ["viewer", "editor", "viewer"]

    invited = await stack.client.post(
        "/v1/invites", json={"email": "ed@newsroom.example", "role": "editor"},
        headers=auth(owner["token"]),
    )  # fmt: skip
    link = invited.json()["token"]
    joined = await stack.client.post(f"/v1/invitations/{link}/accept", json={"password": PASSWORD})
    assert joined.status_code == 201, joined.text
    ed, session = joined.json()["user"]["id"], joined.json()["token"]
    assert (await people_on(log))[-1] == (tenant, ed, "ed@newsroom.example", "editor", "UTC", True)

    for locale in ("fr", "en"):  # the zone once, then the locale alone: not in the directory
        moved = await stack.client.put(
            "/v1/me", json={"time_zone": "Europe/Paris", "locale": locale}, headers=auth(session)
        )
        assert moved.status_code == 200, moved.text
    people = await people_on(log)
    assert people[-1] == (tenant, ed, "ed@newsroom.example", "editor", "Europe/Paris", True)
    assert len(people) == 5
    refused = await stack.client.patch(
        f"/v1/users/{vi}", json={"role": "owner"}, headers=auth(session)
    )
    assert refused.status_code == 403
    assert len(await people_on(log)) == 5  # what was refused changed nobody


async def test_a_starting_gateway_announces_the_people_the_log_does_not_hold(
    tmp_path: Path,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        data_dir=tmp_path, ingest_url=nowhere, mentions_url=nowhere, analytics_url=nowhere,
        publishing_url=nowhere, web_url=nowhere,
    )  # fmt: skip
    store = open_tenant_store(settings, SystemClock())
    newsroom, agency = store.create_tenant("newsroom"), store.create_tenant("agency")
    ada = store.add_user(newsroom.id, "ada@newsroom.example", "owner")  # as the CLI adds them
    bob = store.add_user(agency.id, "bob@agency.example", "editor")

    async def start_and_close(replicas: int = 1) -> None:
        started = await asyncio.gather(
            *(build_gateway(settings, SystemClock()) for _ in range(replicas))
        )
        for gateway in started:
            await gateway.close()

    await start_and_close(replicas=2)  # two replicas at once: each person once
    log = await open_event_log(settings)
    first = {
        (newsroom.id, ada.id, "ada@newsroom.example", "owner", "UTC", True),
        (agency.id, bob.id, "bob@agency.example", "editor", "UTC", True),
    }
    assert sorted(await people_on(log)) == sorted(first)

    await start_and_close()
    assert len(await people_on(log)) == 2  # nothing new: nothing appended

    async def head() -> int:
        topics = (await log.stats()).topics
        return next(t.last_position for t in topics if t.topic == CONTROL)

    before = await head()
    store.set_role(agency.id, bob.id, "viewer")
    await start_and_close()
    store.set_role(agency.id, bob.id, "editor")  # back as it was first announced
    await start_and_close()
    assert await head() == before + 2  # each change announced, the second too
    bobs = [p[3] for p in await people_on(log) if p[1] == bob.id]
    assert bobs == ["editor"]  # control keeps each person's latest entry

    engine = sa.create_engine(settings.relational)  # a person gone from the store
    with engine.begin() as db:
        db.execute(sa.text("DELETE FROM users WHERE id = :id"), {"id": ada.id})
    engine.dispose()
    before = await head()
    await start_and_close()
    await start_and_close()
    gone = (newsroom.id, ada.id, "ada@newsroom.example", "owner", "UTC", False)
    assert (await people_on(log))[-1] == gone
    assert await head() == before + 1  # told once, by the first gateway to start
    await log.close()
    store.close()
