"""The content calendar through the gateway over real HTTP: a tenant's posts in a week that
a DST change crosses, at their wall-clock time in the asker's zone; its channels' queue
slots; a person's iCalendar feed by its signed address; and none of it another tenant's."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from icalendar import Calendar as ICalendar

from hubbub.bootstrap import open_secret_box
from hubbub.publishing.calendar_api import FeedTokens
from tests.support.stack import Stack, auth, start_stack

WEEK = {"start": "2027-03-22T00:00", "end": "2027-03-29T00:00", "zone": "Europe/Paris"}
"""The week in which Paris moves its clocks forward (Sunday 28 March 2027, 02:00)."""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    loopback = {"publish_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}
    built, exits = await start_stack(tmp_path / "data", platform_settings=loopback)
    async with exits:
        yield built


async def channel(stack: Stack, token: str, account: str, queue: str | None = None) -> str:
    """A Bluesky channel in Paris (its limits are the protocol's: nothing is asked of it)."""
    made = await stack.client.post(
        "/v1/channels",
        json={"network": "bluesky", "account": account, "service": "http://127.0.0.1:9",
              "app_password": "abcd-efgh-ijkl-mnop", "time_zone": "Europe/Paris"},
        headers=auth(token),
    )  # fmt: skip
    assert made.status_code == 201, made.text
    if queue:
        kept = await stack.client.put(
            f"/v1/channels/{made.json()['id']}/queue", json={"slots": queue}, headers=auth(token)
        )
        assert kept.status_code == 200, kept.text
    return str(made.json()["id"])


async def schedule(stack: Stack, token: str, text: str, channel_id: str, at: str) -> str:
    made = await stack.client.post(
        "/v1/posts", json={"text": text, "channels": [channel_id], "at": at}, headers=auth(token)
    )
    assert made.status_code == 201, made.text
    return str(made.json()["post"])


async def calendar(stack: Stack, token: str, **params: Any) -> httpx.Response:
    return await stack.client.get("/v1/calendar", params={**WEEK, **params}, headers=auth(token))


async def test_the_week_of_a_dst_change_shows_posts_and_slots_at_their_local_time(
    stack: Stack,
) -> None:
    owner = await stack.tenant("newsroom")
    desk = await channel(stack, owner["token"], "desk.bsky.social", queue="mon-fri 09:00")
    await schedule(stack, owner["token"], "Friday, winter time", desk, "2027-03-26T09:00")
    await schedule(stack, owner["token"], "Monday, summer time", desk, "2027-03-29T09:00")
    fortnight = await calendar(stack, owner["token"], end="2027-04-05T00:00")
    assert fortnight.status_code == 200, fortnight.text
    entries = fortnight.json()["entries"]
    assert [(e["excerpt"], e["local"], e["due"]) for e in entries] == [
        ("Friday, winter time", "2027-03-26T09:00:00+01:00", "2027-03-26T08:00:00+00:00"),
        ("Monday, summer time", "2027-03-29T09:00:00+02:00", "2027-03-29T07:00:00+00:00"),
    ]
    assert {(e["account"], e["network"], e["state"]) for e in entries} == {
        ("desk.bsky.social", "bluesky", "scheduled")
    }
    week = (await calendar(stack, owner["token"])).json()
    assert (week["start"], week["end"]) == (
        "2027-03-22T00:00:00+01:00",
        "2027-03-29T00:00:00+02:00",
    )
    slots = week["channels"][0]["slots"]
    assert [(s["local"], s["taken"]) for s in slots] == [
        (f"2027-03-{day}T09:00:00+01:00", day == 26) for day in range(22, 27)
    ]
    assert week["channels"][0]["paused"] is False
    in_tokyo = (await calendar(stack, owner["token"], zone="Asia/Tokyo")).json()
    assert [e["local"] for e in in_tokyo["entries"]] == ["2027-03-26T17:00:00+09:00"]


async def test_filters_and_wrong_asks_answer_as_a_person_can_act_on(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    desk = await channel(stack, owner["token"], "desk.bsky.social")
    wire = await channel(stack, owner["token"], "wire.bsky.social")
    await schedule(stack, owner["token"], "On the desk", desk, "2027-03-23T10:00")
    await schedule(stack, owner["token"], "On the wire", wire, "2027-03-24T10:00")
    both = await calendar(stack, owner["token"], channel=[desk, wire], state=["scheduled"])
    assert [e["excerpt"] for e in both.json()["entries"]] == ["On the desk", "On the wire"]
    only = await calendar(stack, owner["token"], channel=wire)
    assert [e["excerpt"] for e in only.json()["entries"]] == ["On the wire"]
    assert [c["id"] for c in only.json()["channels"]] == [wire]
    assert (await calendar(stack, owner["token"], state="published")).json()["entries"] == []
    assert (await calendar(stack, owner["token"], tag="launch")).json()["entries"] == []

    for params, said in (
        ({"zone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"start": "next monday"}, "'next monday' is not a time"),
        ({"end": "2027-06-01T00:00"}, "at most 62 days"),
        ({"state": "done"}, "unknown state 'done'"),
    ):
        wrong = await calendar(stack, owner["token"], **params)
        assert wrong.status_code == 422, wrong.text
        assert said in wrong.json()["detail"]
    missing = await stack.client.get("/v1/calendar", headers=auth(owner["token"]))
    assert missing.status_code == 422


async def test_another_tenants_calendar_queues_and_feed_are_out_of_reach(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    rival = await stack.tenant("rival")
    desk = await channel(stack, owner["token"], "desk.bsky.social", queue="mon-fri 09:00")
    await schedule(stack, owner["token"], "Our scoop", desk, "2027-03-23T10:00")
    kept = await stack.client.put(
        "/v1/drafts/0123456789abcdef",
        json={"text": "Our draft", "at": "2027-03-24T10:00", "channels": [desk]},
        headers=auth(owner["token"]),
    )
    assert kept.status_code == 200, kept.text
    ours = (await calendar(stack, owner["token"])).json()
    assert {e["excerpt"] for e in ours["entries"]} == {"Our scoop", "Our draft"}

    theirs = await calendar(stack, rival["token"])
    assert theirs.status_code == 200
    assert theirs.json()["entries"] == []
    assert theirs.json()["channels"] == []
    by_our_channel = await calendar(stack, rival["token"], channel=desk)
    assert (by_our_channel.json()["entries"], by_our_channel.json()["channels"]) == ([], [])
    editor = await stack.key(owner, "editor")  # the same tenant: not the owner's draft
    assert [e["excerpt"] for e in (await calendar(stack, editor)).json()["entries"]] == [
        "Our scoop"
    ]

    rivals_person = await session_of(stack, rival, "ann@rival.example", "admin")
    made = await stack.client.post("/v1/calendar/feed", headers=auth(rivals_person))
    assert made.status_code == 201, made.text
    rival_feed = await stack.client.get(made.json()["path"])  # no key: the path is enough
    assert rival_feed.status_code == 200, rival_feed.text
    assert rival_feed.headers["content-type"].startswith("text/calendar")
    assert list(ICalendar.from_ical(rival_feed.content).walk("VEVENT")) == []


async def test_a_persons_feed_is_reached_by_its_signed_path_alone(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    editor = await session_of(stack, owner, "ed@newsroom.example", "editor")
    desk = await channel(stack, owner["token"], "desk.bsky.social")
    post = await schedule(stack, editor, "Launch; at last, <b>now</b>", desk,
                          "2027-03-23T10:00")  # fmt: skip
    made = await stack.client.post("/v1/calendar/feed", headers=auth(editor))
    assert made.status_code == 201, made.text
    path = made.json()["path"]
    assert path.startswith("/v1/public/calendar/")
    assert path.endswith(".ics")
    async with httpx.AsyncClient(base_url=stack.url) as outsider:  # over real HTTP, no key
        found = await outsider.get(path)
        assert found.status_code == 200, found.text
        events = list(ICalendar.from_ical(found.content).walk("VEVENT"))
        assert [str(e["summary"]) for e in events] == ["scheduled: Launch; at last, <b>now</b>"]
        assert events[0]["dtstart"].dt.isoformat() == "2027-03-23T09:00:00+00:00"
        assert str(events[0]["location"]) == "desk.bsky.social (bluesky)"
        assert str(events[0]["uid"]) == f"post-{post}-{desk}-0@hubbub"
        again = await outsider.get(path)
        assert again.content.count(b"UID:") == 1
        token = path.removeprefix("/v1/public/calendar/").removesuffix(".ics")
        for forged in (
            token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8),
            token[::-1],
            "gAAAAA" + token[6:40],
        ):
            answer = await outsider.get(f"/v1/public/calendar/{forged}.ics")
            assert answer.status_code in (400, 404), (forged, answer.text)
            assert b"BEGIN:VCALENDAR" not in answer.content
        tampered = await outsider.get(f"/v1/public/calendar/{token[:-8]}AAAAAAAA.ics")
        assert tampered.status_code == 404


async def session_of(stack: Stack, owner: dict[str, str], email: str, role: str) -> str:
    """`email` joins the owner's tenant with `role`; their session's token."""
    invited = await stack.client.post(
        "/v1/invites", json={"email": email, "role": role}, headers=auth(owner["token"])
    )
    assert invited.status_code == 201, invited.text
    link = invited.json()["token"]
    joined = await stack.client.post(
        f"/v1/invitations/{link}/accept", json={"password": "correct horse battery"}
    )
    assert joined.status_code == 201, joined.text
    signed = await stack.client.post(
        "/v1/sessions", json={"email": email, "password": "correct horse battery"}
    )
    assert signed.status_code == 201, signed.text
    return str(signed.json()["token"])


async def feed_of(stack: Stack, token: str) -> list[str]:
    """The summaries in the feed of whoever `token` is."""
    made = await stack.client.post("/v1/calendar/feed", headers=auth(token))
    assert made.status_code == 201, made.text
    found = await stack.client.get(made.json()["path"])
    assert found.status_code == 200, found.text
    return [str(e["summary"]) for e in ICalendar.from_ical(found.content).walk("VEVENT")]


async def test_a_post_under_review_is_on_the_calendar_moves_and_is_in_its_approvers_feed(
    stack: Stack,
) -> None:
    owner = await stack.tenant("agency")
    ed = await session_of(stack, owner, "ed@agency.example", "editor")
    ada = await session_of(stack, owner, "ada@agency.example", "admin")
    bo = await session_of(stack, owner, "bo@agency.example", "editor")
    ada_id = (await stack.client.get("/v1/me", headers=auth(ada))).json()["id"]
    desk = await channel(stack, owner["token"], "desk.bsky.social")
    workflow = await stack.client.post(
        "/v1/workflows",
        json={"name": "Client posts", "channels": [desk],
              "steps": [{"name": "Ada", "users": [ada_id], "mode": "any"}]},
        headers=auth(owner["token"]),
    )  # fmt: skip
    assert workflow.status_code == 201, workflow.text
    post = await schedule(stack, ed, "Waiting for Ada", desk, "2027-03-26T09:00")

    waiting = (await calendar(stack, ed)).json()["entries"]
    assert [(e["kind"], e["state"], e["local"], e["author"]) for e in waiting] == [
        ("review", "in_review", "2027-03-26T09:00:00+01:00", waiting[0]["author"])
    ]
    assert waiting[0]["author"].startswith("user:")
    assert await feed_of(stack, ada) == ["in review: Waiting for Ada"]  # asked to approve
    assert await feed_of(stack, ed) == ["in review: Waiting for Ada"]  # wrote it
    assert await feed_of(stack, bo) == []

    moved = await stack.client.post(
        f"/v1/posts/{post}/reschedule", json={"at": "2027-03-29T10:00", "channel": desk},
        headers=auth(ed),
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert moved.json()["review"]["state"] == "in_review"
    fortnight = await calendar(stack, ed, end="2027-04-05T00:00")
    assert [(e["state"], e["local"]) for e in fortnight.json()["entries"]] == [
        ("in_review", "2027-03-29T10:00:00+02:00")
    ]

    decided = await stack.client.post(
        f"/v1/posts/{post}/review", json={"decision": "approve"}, headers=auth(ada)
    )
    assert decided.status_code in (200, 201), decided.text
    approved = (await calendar(stack, ed, end="2027-04-05T00:00")).json()["entries"]
    assert [(e["kind"], e["state"], e["local"]) for e in approved] == [
        ("job", "scheduled", "2027-03-29T10:00:00+02:00")
    ]
    assert await feed_of(stack, ada) == ["scheduled: Waiting for Ada"]  # decided on it
    assert await feed_of(stack, bo) == []


async def feed_path(stack: Stack, token: str) -> str:
    made = await stack.client.post("/v1/calendar/feed", headers=auth(token))
    assert made.status_code == 201, made.text
    return str(made.json()["path"])


async def summaries(stack: Stack, path: str) -> list[str] | None:
    """The summaries in the feed at `path`; None when it answers 404."""
    found = await stack.client.get(path)
    if found.status_code == 404:
        return None
    assert found.status_code == 200, found.text
    return [str(e["summary"]) for e in ICalendar.from_ical(found.content).walk("VEVENT")]


async def eventually(stack: Stack, path: str, expected: list[str] | None) -> None:
    """The feed at `path` comes to answer `expected` (publishing folds the people from the
    log every half second)."""
    said: list[str] | None = []
    for _ in range(100):
        said = await summaries(stack, path)
        if said == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the feed still answers {said!r}, not {expected!r}")


async def test_a_new_feed_address_ends_the_one_before(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    editor = await session_of(stack, owner, "ed@newsroom.example", "editor")
    desk = await channel(stack, owner["token"], "desk.bsky.social")
    await schedule(stack, editor, "Ed's scoop", desk, "2027-03-23T10:00")
    first = await feed_path(stack, editor)
    assert await summaries(stack, first) == ["scheduled: Ed's scoop"]
    ada = await session_of(stack, owner, "ada@newsroom.example", "admin")
    others = await feed_path(stack, ada)  # another's feed is theirs to end
    assert await summaries(stack, others) == []

    second = await feed_path(stack, editor)
    assert second != first
    assert await summaries(stack, first) is None
    assert await summaries(stack, second) == ["scheduled: Ed's scoop"]
    async with httpx.AsyncClient(base_url=stack.url) as outsider:  # over real HTTP, no key
        assert (await outsider.get(first)).status_code == 404
        assert b"BEGIN:VCALENDAR" not in (await outsider.get(first)).content
        assert (await outsider.get(second)).status_code == 200
    assert await summaries(stack, others) == []

    third = await feed_path(stack, ada)
    assert await summaries(stack, others) is None
    assert await summaries(stack, third) == []
    assert await summaries(stack, second) == ["scheduled: Ed's scoop"]


async def test_a_feed_follows_its_persons_role_and_ends_when_they_leave(stack: Stack) -> None:
    owner = await stack.tenant("agency")
    ed = await session_of(stack, owner, "ed@agency.example", "editor")
    ada = await session_of(stack, owner, "ada@agency.example", "admin")
    ada_id = (await stack.client.get("/v1/me", headers=auth(ada))).json()["id"]
    desk = await channel(stack, owner["token"], "desk.bsky.social")
    workflow = await stack.client.post(
        "/v1/workflows",
        json={"name": "Admins approve", "channels": [desk],
              "steps": [{"name": "Admins", "roles": ["admin"], "mode": "any"}]},
        headers=auth(owner["token"]),
    )  # fmt: skip
    assert workflow.status_code == 201, workflow.text
    await schedule(stack, ed, "Waiting for an admin", desk, "2027-03-26T09:00")
    adas = await feed_path(stack, ada)
    eds = await feed_path(stack, ed)
    await eventually(stack, adas, ["in review: Waiting for an admin"])  # her role is asked

    demoted = await stack.client.patch(
        f"/v1/users/{ada_id}", json={"role": "editor"}, headers=auth(owner["token"])
    )
    assert demoted.status_code == 200, demoted.text
    await eventually(stack, adas, [])  # the same address, read with the role she has now
    promoted = await stack.client.patch(
        f"/v1/users/{ada_id}", json={"role": "admin"}, headers=auth(owner["token"])
    )
    assert promoted.status_code == 200, promoted.text
    await eventually(stack, adas, ["in review: Waiting for an admin"])

    removed = await stack.client.delete(f"/v1/users/{ada_id}", headers=auth(owner["token"]))
    assert removed.status_code == 200, removed.text
    await eventually(stack, adas, None)
    assert await summaries(stack, eds) == ["in review: Waiting for an admin"]  # his stays


async def test_a_key_is_refused_a_feed_and_one_made_for_a_key_before_opens_as_none(
    stack: Stack,
) -> None:
    owner = await stack.tenant("newsroom")
    desk = await channel(stack, owner["token"], "desk.bsky.social")
    await schedule(stack, owner["token"], "The owner key's post", desk, "2027-03-23T10:00")
    editor_key = await stack.key(owner, "editor")
    for key in (owner["token"], editor_key):
        refused = await stack.client.post("/v1/calendar/feed", headers=auth(key))
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"] == "a calendar feed is a person's: sign in to make one"
        assert "path" not in refused.json()

    # An address made for the key before keys were refused (as it was then: the key's
    # name, its role, generation 0) no longer opens: revoking a key must end what it made.
    # Sealed with the deployment's own key, as a person's made alike still opens.
    person = await session_of(stack, owner, "ed@newsroom.example", "editor")
    assert await feed_of(stack, person) == []  # a person still has theirs
    me = (await stack.client.get("/v1/me", headers=auth(person))).json()["id"]
    [written] = (await calendar(stack, owner["token"])).json()["entries"]
    now_us = stack.platform.clock.now_us()
    tokens = FeedTokens(open_secret_box(stack.gateway_settings))
    keys = tokens.make(owner["id"], written["author"], "owner", now_us)
    persons = tokens.make(owner["id"], f"user:{me}", "editor", now_us, generation=1)
    async with httpx.AsyncClient(base_url=stack.url) as outsider:  # over real HTTP, no key
        old = await outsider.get(f"/v1/public/calendar/{keys}.ics")
        assert old.status_code == 404, old.text
        assert b"BEGIN:VCALENDAR" not in old.content
        theirs = await outsider.get(f"/v1/public/calendar/{persons}.ics")
        assert theirs.status_code == 200, theirs.text
