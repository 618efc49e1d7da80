"""Approvals on the publishing role, as the gateway calls it (signed: tenant, key, role):
workflows, a post's way through its steps, new versions, comments, an external
reviewer's link, the audit trail, paused queues and reminders; each tenant's its own."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from hubbub.bootstrap import build_platform, open_request_signer
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import CONTROL, NOTICES, NoticeIssued, PersonChanged
from hubbub.kernel.signing import RequestSigner
from hubbub.publishing.ports import Member
from hubbub.publishing.sql import audit_table
from hubbub.publishing.worker import fold_people
from hubbub.settings import Settings
from hubbub.web.app import create_app

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2027, 3, 22, 10, 0, tzinfo=PARIS)
ADMIN = ("user:adm", "admin")
EDITOR = ("user:ed", "editor")
ANN = ("user:ann", "editor")
BOB = ("user:bob", "admin")
OUTSIDER = ("user:zed", "editor")


class Team:
    """The publishing role over HTTP, each call signed as one person of a tenant."""

    def __init__(self, client: httpx.AsyncClient, signer: RequestSigner) -> None:
        self.client, self.signer = client, signer

    async def as_(
        self, who: tuple[str, str], method: str, url: str, tenant: str = "acme", **options: Any
    ) -> httpx.Response:
        path = httpx.URL(url).path
        signed = self.signer.headers(method, path, tenant, who[0], who[1])
        headers = {k.decode(): v.decode() for k, v in signed}
        return await self.client.request(method, url, headers=headers, **options)

    async def public(self, method: str, url: str, **options: Any) -> httpx.Response:
        """As the gateway forwards a public path: no account."""
        path = httpx.URL(url).path
        signed = self.signer.headers(method, path, "public", "anonymous")
        headers = {k.decode(): v.decode() for k, v in signed}
        return await self.client.request(method, url, headers=headers, **options)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(now_us=int(NOW.timestamp() * 1_000_000))


@pytest.fixture
async def team(tmp_path: Path, clock: FixedClock) -> AsyncIterator[Team]:
    settings = Settings(data_dir=tmp_path / "data")
    platform = await build_platform(settings, clock)
    app = create_app(platform, "publishing")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://publishing") as client:
        built = Team(client, open_request_signer(settings))
        built.platform = platform  # type: ignore[attr-defined]
        yield built
    await platform.close()


async def a_channel(team: Team, tenant: str = "acme", name: str = "news") -> str:
    made = await team.as_(
        ADMIN, "POST", "/v1/channels", tenant=tenant,
        json={"network": "bluesky", "account": f"{name}.{tenant}.example",
              "time_zone": "Europe/Paris", "service": "https://bsky.social",
              "app_password": "xxxx-xxxx-xxxx-xxxx"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def a_workflow(team: Team, channel: str, tenant: str = "acme") -> dict[str, Any]:
    made = await team.as_(
        ADMIN, "POST", "/v1/workflows", tenant=tenant,
        json={"name": "Client posts", "channels": [channel], "steps": [
            {"name": "Team", "users": ["ann", "bob"], "mode": "all"},
            {"name": "Client", "external": True},
        ]},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return dict(made.json())


async def notices(team: Team) -> list[NoticeIssued]:
    log = team.platform.event_log  # type: ignore[attr-defined]
    return [r.event for r in await log.read(NOTICES, 1, 1000) if isinstance(r.event, NoticeIssued)]


async def test_a_post_goes_through_its_steps_and_publishes_the_approved_version(
    team: Team,
) -> None:
    channel = await a_channel(team)
    await a_workflow(team, channel)
    written = await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "Spring sale <b>now</b>", "channels": [channel], "at": "2027-03-29T09:00",
        "tags": ["spring", "sale"],
    })  # fmt: skip
    assert written.status_code == 201, written.text
    post = written.json()["post"]
    assert written.json()["jobs"] == []
    review = written.json()["review"]
    assert (review["state"], review["step"], review["waiting_on"]) == (
        "in_review",
        0,
        ["ann", "bob"],
    )
    assert review["due"] == "2027-03-29T07:00:00+00:00"  # 09:00 in Paris, in summer time

    own = await team.as_(EDITOR, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert own.status_code == 403
    assert "own post" in own.json()["detail"]
    stranger = await team.as_(OUTSIDER, "POST", f"/v1/posts/{post}/review",
                              json={"decision": "approve"})  # fmt: skip
    assert stranger.status_code == 403
    assert "not an approver" in stranger.json()["detail"]
    no_reason = await team.as_(ANN, "POST", f"/v1/posts/{post}/review",
                               json={"decision": "request_changes"})  # fmt: skip
    assert no_reason.status_code == 422
    changes = await team.as_(
        ANN,
        "POST",
        f"/v1/posts/{post}/review",
        json={"decision": "request_changes", "reason": "Say which sale"},
    )
    assert changes.json()["state"] == "changes_requested"
    blocked = await team.as_(BOB, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert blocked.status_code == 409  # not waiting for a decision until a new version

    edited = await team.as_(EDITOR, "PUT", f"/v1/posts/{post}", json={"text": "Spring sale: 20%"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2
    assert edited.json()["review"]["state"] == "in_review"
    stale = await team.as_(ANN, "POST", f"/v1/posts/{post}/review",
                           json={"decision": "approve", "version": 1})  # fmt: skip
    assert stale.status_code == 409
    first = await team.as_(ANN, "POST", f"/v1/posts/{post}/review",
                           json={"decision": "approve", "version": 2})  # fmt: skip
    assert (first.json()["step"], first.json()["waiting_on"]) == (0, ["bob"])
    again = await team.as_(ANN, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert again.status_code == 403
    second = await team.as_(BOB, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert (second.json()["step"], second.json()["waiting_on"]) == (1, ["external"])
    assert not second.json()["can_decide"]  # the client's step is the link's

    own_link = await team.as_(EDITOR, "POST", f"/v1/posts/{post}/links", json={"name": "Me"})
    by_author = own_link.json()["token"]
    assert not (await team.public("GET", f"/v1/public/reviews/{by_author}")).json()["can_approve"]
    refused = await team.public("POST", f"/v1/public/reviews/{by_author}",
                                json={"decision": "approve", "version": 2})  # fmt: skip
    assert refused.status_code == 403
    assert "shared by the post's author" in refused.json()["detail"]
    link = await team.as_(ADMIN, "POST", f"/v1/posts/{post}/links",
                          json={"name": "Dana at Client Co", "hours": 48})  # fmt: skip
    assert link.status_code == 201, link.text
    token = link.json()["token"]
    assert link.json()["path"] == f"/review/{token}"
    await team.as_(ANN, "POST", f"/v1/posts/{post}/comments", json={"text": "Team only"})
    seen = await team.public("GET", f"/v1/public/reviews/{token}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["post"]["text"] == "Spring sale: 20%"
    assert seen.json()["comments"] == []  # the team's comments stay the team's
    public = seen.json()["review"]
    assert set(public) == {"post", "version", "state", "step", "decisions"}
    assert (public["step"], public["decisions"]) == ("Client", [])  # not the team's reasons
    assert "author" not in seen.json()["post"]
    assert "variants" not in seen.json()["post"]
    assert seen.json()["can_approve"]
    assert seen.json()["reviewer"] == "Dana at Client Co"
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    assert (await team.public("GET", f"/v1/public/reviews/{forged}")).status_code == 404
    commented = await team.public("POST", f"/v1/public/reviews/{token}/comments",
                                  json={"text": "Looks good @ann"})  # fmt: skip
    assert commented.status_code == 201
    unversioned = await team.public("POST", f"/v1/public/reviews/{token}",
                                    json={"decision": "approve"})  # fmt: skip
    assert unversioned.status_code == 422  # a client decides on the version it was shown
    approved = await team.public("POST", f"/v1/public/reviews/{token}",
                                 json={"decision": "approve", "version": 2})  # fmt: skip
    assert approved.json()["state"] == "approved", approved.text

    jobs = (await team.as_(EDITOR, "GET", "/v1/jobs")).json()
    mine = [job for job in jobs if job["post"] == post]
    assert [(job["version"], job["state"]) for job in mine] == [(2, "scheduled")]
    assert mine[0]["due_us"] == int(datetime(2027, 3, 29, 9, tzinfo=PARIS).timestamp() * 1e6)

    trail = (await team.as_(EDITOR, "GET", f"/v1/posts/{post}/audit")).json()
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("created", "user:ed"), ("submitted", "user:ed"),
        ("changes_requested", "user:ann"), ("edited", "user:ed"), ("submitted", "user:ed"),
        ("approved", "user:ann"), ("approved", "user:bob"), ("link_created", "user:ed"),
        ("link_created", "user:adm"), ("commented", "user:ann"),
        ("commented", "link:Dana at Client Co"), ("approved", "link:Dana at Client Co"),
        ("scheduled", "link:Dana at Client Co"),  # the last approval scheduled it
    ]  # fmt: skip
    assert "Say which sale" in trail[2]["detail"]
    sheet = await team.as_(EDITOR, "GET", f"/v1/posts/{post}/audit.csv")
    assert sheet.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(sheet.text)))
    assert rows[0] == ["at", "action", "actor", "version", "detail"]
    assert [row[1] for row in rows[1:]] == [e["action"] for e in trail]

    told = await notices(team)
    asked = [n for n in told if n.kind == "review_requested"]
    assert [sorted(n.users) for n in asked] == [["ann", "bob"], ["ann", "bob"]]  # v1, v2
    assert any(n.kind == "mentioned" and n.handles == ["ann"] for n in told)
    assert any(n.kind == "approved" and n.users == ["ed"] and "scheduled" in n.title
               for n in told)  # fmt: skip


async def test_comments_thread_and_tell_whom_they_name(team: Team) -> None:
    channel = await a_channel(team)
    post = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Hello", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()["post"]
    top = await team.as_(ANN, "POST", f"/v1/posts/{post}/comments",
                         json={"text": "<script>x</script> @Bob, thoughts?"})  # fmt: skip
    assert top.status_code == 201
    reply = await team.as_(
        BOB,
        "POST",
        f"/v1/posts/{post}/comments",
        json={"text": "Fine by me", "parent": top.json()["id"]},
    )
    assert reply.status_code == 201
    elsewhere = await team.as_(BOB, "POST", f"/v1/posts/{post}/comments",
                               json={"text": "x", "parent": "0123456789abcdef"})  # fmt: skip
    assert elsewhere.status_code == 404
    thread = (await team.as_(EDITOR, "GET", f"/v1/posts/{post}/comments")).json()
    assert [c["text"] for c in thread] == ["<script>x</script> @Bob, thoughts?"]
    assert [r["author"] for r in thread[0]["replies"]] == ["user:bob"]
    told = await notices(team)
    assert any(n.kind == "mentioned" and n.handles == ["bob"] for n in told)
    # Bob's reply tells Ann (whose comment it answers) and the author.
    assert any(n.kind == "commented" and n.actor == "bob" and set(n.users) == {"ed", "ann"}
               for n in told)  # fmt: skip


async def test_nothing_of_one_tenant_is_anothers(team: Team) -> None:
    channel = await a_channel(team)
    workflow = await a_workflow(team, channel)
    post = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Ours", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()["post"]
    await team.as_(ANN, "POST", f"/v1/posts/{post}/comments", json={"text": "internal"})
    other = ("user:ann", "owner")
    assert (await team.as_(other, "GET", "/v1/workflows", tenant="globex")).json() == []
    assert (await team.as_(other, "GET", "/v1/reviews", tenant="globex")).json() == []
    for path in ("review", "comments", "audit", "audit.csv"):
        seen = await team.as_(other, "GET", f"/v1/posts/{post}/{path}", tenant="globex")
        assert seen.status_code == 404, path
    for method, path, body in (
        ("POST", f"/v1/posts/{post}/review", {"decision": "approve"}),
        ("POST", f"/v1/posts/{post}/comments", {"text": "hi"}),
        ("POST", f"/v1/posts/{post}/links", {"name": "Eve"}),
        ("PUT", f"/v1/posts/{post}", {"text": "theirs"}),
        ("PUT", f"/v1/workflows/{workflow['id']}", {"name": "x", "channels": [],
                                                   "roles": ["editor"],
                                                   "steps": [{"name": "s", "roles": ["admin"]}]}),
        ("DELETE", f"/v1/workflows/{workflow['id']}", None),
        ("POST", f"/v1/channels/{channel}/pause", None),
    ):  # fmt: skip
        tried = await team.as_(other, method, path, tenant="globex", json=body)
        assert tried.status_code == 404, (path, tried.text)
    assert len((await team.as_(ADMIN, "GET", "/v1/workflows")).json()) == 1


async def test_only_admins_manage_workflows_and_bad_ones_are_refused(team: Team) -> None:
    channel = await a_channel(team)
    body = {"name": "Legal", "roles": ["editor"], "steps": [{"name": "Legal", "roles": ["admin"]}]}
    refused = await team.as_(EDITOR, "POST", "/v1/workflows", json=body)
    assert refused.status_code == 403
    bad = {**body, "channels": ["nope"]}
    assert (await team.as_(ADMIN, "POST", "/v1/workflows", json=bad)).status_code == 422
    empty = {**body, "steps": [{"name": "Nobody"}]}
    said = await team.as_(ADMIN, "POST", "/v1/workflows", json=empty)
    assert said.status_code == 422
    assert "names no approver" in said.json()["detail"]
    assert (await team.as_(ADMIN, "POST", "/v1/workflows", json=body)).status_code == 201
    twice = await team.as_(ADMIN, "POST", "/v1/workflows", json=body)
    assert twice.status_code == 409
    # A workflow by role: every editor's post waits for an admin; an admin's does not.
    by_editor = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Mine", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()
    assert by_editor["review"]["waiting_on"] == ["role:admin"]
    assert by_editor["jobs"] == []
    by_admin = (
        await team.as_(
            ADMIN,
            "POST",
            "/v1/posts",
            json={"text": "Mine too", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()
    assert by_admin["review"] is None
    assert len(by_admin["jobs"]) == 1
    inbox = (await team.as_(BOB, "GET", "/v1/reviews?waiting=me")).json()
    assert [r["post"] for r in inbox] == [by_editor["post"]]
    assert (await team.as_(ANN, "GET", "/v1/reviews?waiting=me")).json() == []
    done = await team.as_(BOB, "POST", f"/v1/posts/{by_editor['post']}/review",
                          json={"decision": "approve"})  # fmt: skip
    assert done.json()["state"] == "approved"


async def test_moving_a_post_makes_a_version_and_restarts_its_review(team: Team) -> None:
    channel = await a_channel(team)
    await a_workflow(team, channel)
    post = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Move me", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()["post"]
    await team.as_(ANN, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    moved = await team.as_(EDITOR, "POST", f"/v1/posts/{post}/reschedule",
                           json={"at": "2027-03-30T14:30"})  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 2
    review = moved.json()["review"]
    assert (review["step"], review["waiting_on"]) == (0, ["ann", "bob"])
    assert review["due"] == "2027-03-30T12:30:00+00:00"
    past = await team.as_(EDITOR, "POST", f"/v1/posts/{post}/reschedule",
                          json={"at": "2027-03-01T09:00"})  # fmt: skip
    assert past.status_code == 422
    assert "has passed" in past.json()["detail"]
    trail = [e["action"] for e in (await team.as_(EDITOR, "GET", f"/v1/posts/{post}/audit")).json()]
    assert trail[-2:] == ["rescheduled", "submitted"]


async def test_without_a_workflow_a_change_replaces_the_jobs_at_their_times(team: Team) -> None:
    channel = await a_channel(team)
    made = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Typo hre", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()
    edited = await team.as_(EDITOR, "PUT", f"/v1/posts/{made['post']}", json={"text": "Typo here"})
    assert edited.status_code == 200, edited.text
    job = edited.json()["jobs"][0]
    assert (job["version"], job["due_us"]) == (2, made["jobs"][0]["due_us"])
    assert job["idempotency_key"] != made["jobs"][0]["idempotency_key"]
    old = (await team.as_(EDITOR, "GET", f"/v1/jobs/{made['jobs'][0]['id']}")).json()
    assert old["state"] == "cancelled"
    someone = await team.as_(ANN, "PUT", f"/v1/posts/{made['post']}", json={"text": "Mine now"})
    assert someone.status_code == 403


async def test_a_paused_channel_holds_its_posts_and_requeues_the_late_ones(
    team: Team, clock: FixedClock
) -> None:
    channel = await a_channel(team)
    queued = await team.as_(ADMIN, "PUT", f"/v1/channels/{channel}/queue",
                            json={"slots": "mon-fri 09:00"})  # fmt: skip
    assert queued.status_code == 200, queued.text
    made = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Queued", "channels": [channel], "queue": True},
        )
    ).json()
    job = made["jobs"][0]
    paused = await team.as_(ADMIN, "POST", f"/v1/channels/{channel}/pause")
    assert paused.json()["paused"] is True
    held = (await team.as_(EDITOR, "GET", f"/v1/jobs/{job['id']}")).json()
    assert held["state"] == "held"
    clock.advance(3 * 86_400)  # its slot passes while the channel is paused
    publishing = await team.platform.publishing()  # type: ignore[attr-defined]
    assert publishing.store.miss(clock.now_us(), 60_000_000) == []
    resumed = await team.as_(ADMIN, "POST", f"/v1/channels/{channel}/resume")
    assert resumed.json()["paused"] is False
    back = (await team.as_(EDITOR, "GET", f"/v1/jobs/{job['id']}")).json()
    assert back["state"] == "scheduled"
    assert back["due_us"] > clock.now_us()
    when = datetime.fromtimestamp(back["due_us"] / 1e6, PARIS)
    assert (when.hour, when.minute, when.weekday() < 5) == (9, 0, True)


async def test_waiting_steps_are_reminded_and_late_posts_flagged(
    team: Team, clock: FixedClock
) -> None:
    channel = await a_channel(team)
    await a_workflow(team, channel)
    post = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Soon", "channels": [channel], "at": "2027-03-23T11:00"},
        )
    ).json()["post"]
    publishing = await team.platform.publishing()  # type: ignore[attr-defined]
    assert await publishing.remind(86_400, 7_200) == 0
    clock.advance(86_400 + 60)  # a day on: 10:01 on the 23rd, the post due at 11:00
    assert await publishing.remind(86_400, 7_200) == 2
    assert await publishing.remind(86_400, 7_200) == 0  # each told once
    kinds = [(n.kind, sorted(n.users)) for n in await notices(team) if n.post == post]
    assert ("reminder", ["ann", "bob"]) in kinds
    assert ("overdue", ["ann", "bob", "ed"]) in kinds
    review = (await team.as_(EDITOR, "GET", f"/v1/posts/{post}/review")).json()
    assert review["overdue"] is True


async def test_a_recurring_post_changed_keeps_recurring(team: Team) -> None:
    channel = await a_channel(team)
    made = (await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "Weekly tip", "channels": [channel], "at": "2027-03-29T09:00",
        "repeat": "FREQ=WEEKLY;BYDAY=MO",
    })).json()  # fmt: skip
    assert len(made["jobs"]) >= 2
    edited = await team.as_(EDITOR, "PUT", f"/v1/posts/{made['post']}", json={"text": "Tip"})
    assert edited.status_code == 200, edited.text
    jobs = edited.json()["jobs"]
    assert [j["due_us"] for j in jobs] == [j["due_us"] for j in made["jobs"]]
    assert len({j["series"] for j in jobs}) == 1
    assert jobs[0]["series"] != made["series"]
    old = (await team.as_(EDITOR, "GET", f"/v1/series/{made['series']}")).json()
    assert old["state"] == "cancelled"


async def test_a_replaced_version_is_never_retried(team: Team) -> None:
    channel = await a_channel(team)
    made = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "First", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()
    await team.as_(EDITOR, "PUT", f"/v1/posts/{made['post']}", json={"text": "Second"})
    old = made["jobs"][0]["id"]
    retried = await team.as_(EDITOR, "POST", f"/v1/jobs/{old}/retry")
    assert retried.status_code == 409
    assert "version 2 replaced" in retried.json()["detail"]


async def test_whoever_made_a_version_does_not_approve_it(team: Team) -> None:
    channel = await a_channel(team)
    made = await team.as_(ADMIN, "POST", "/v1/workflows", json={
        "name": "Admins", "channels": [channel], "steps": [{"name": "Desk", "roles": ["admin"]}],
    })  # fmt: skip
    assert made.status_code == 201
    post = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Mine", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()["post"]
    rewritten = await team.as_(BOB, "PUT", f"/v1/posts/{post}", json={"text": "Bob's now"})
    assert rewritten.status_code == 200
    own = await team.as_(BOB, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert own.status_code == 403
    other = await team.as_(ADMIN, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert other.json()["state"] == "approved"


async def test_odd_changes_get_clear_answers(team: Team) -> None:
    channel = await a_channel(team)
    post = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Hi", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()["post"]
    nulls = await team.as_(EDITOR, "PUT", f"/v1/posts/{post}",
                           json={"text": None, "media": None, "tags": None, "variants": None,
                                 "visibility": None})  # fmt: skip
    assert nulls.status_code == 200, nulls.text
    assert (await team.as_(EDITOR, "GET", f"/v1/posts/{post}")).json()["text"] == "Hi"
    unknown = await team.as_(
        ADMIN,
        "PUT",
        "/v1/workflows/0123456789abcdef",
        json={"name": "x", "roles": ["editor"], "steps": [{"name": "s", "roles": ["admin"]}]},
    )
    assert unknown.status_code == 404
    long_id = await team.as_(ADMIN, "DELETE", "/v1/workflows/" + "x" * 200)
    assert long_id.status_code == 422
    await team.as_(
        ADMIN,
        "POST",
        "/v1/workflows",
        json={
            "name": "Desk",
            "channels": [channel],
            "steps": [{"name": "Desk", "roles": ["admin"]}],
        },
    )
    no_queue = await team.as_(
        EDITOR, "POST", "/v1/posts", json={"text": "Q", "channels": [channel], "queue": True}
    )
    assert no_queue.status_code == 422  # refused now, not when an admin approves
    assert "has no queue" in no_queue.json()["detail"]


async def test_a_review_outlives_its_deleted_workflow_and_removed_channel(team: Team) -> None:
    first, second = await a_channel(team), await a_channel(team, name="jobs")
    workflow = await a_workflow(team, first)
    made = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Both", "channels": [first, second], "at": "2027-03-29T09:00"},
        )
    ).json()
    post = made["post"]
    gone = await team.as_(ADMIN, "DELETE", f"/v1/workflows/{workflow['id']}")
    assert gone.status_code == 204
    edited = await team.as_(EDITOR, "PUT", f"/v1/posts/{post}", json={"text": "Both, edited"})
    assert edited.json()["review"]["waiting_on"] == ["ann", "bob"]  # its steps are kept
    assert edited.json()["jobs"] == []
    removed = await team.as_(ADMIN, "DELETE", f"/v1/channels/{first}")
    assert removed.status_code in (200, 204)
    for who in (ANN, BOB):
        await team.as_(who, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    link = (await team.as_(ADMIN, "POST", f"/v1/posts/{post}/links",
                           json={"name": "Client"})).json()["token"]  # fmt: skip
    done = await team.public("POST", f"/v1/public/reviews/{link}",
                             json={"decision": "approve", "version": 2})  # fmt: skip
    assert done.json()["state"] == "approved", done.text
    jobs = [j for j in (await team.as_(EDITOR, "GET", "/v1/jobs")).json() if j["post"] == post]
    assert [(j["channel"], j["state"]) for j in jobs if j["version"] == 2] == [
        (second, "scheduled")
    ]


async def test_a_link_approves_once_and_a_named_person_counts_once(team: Team) -> None:
    channel = await a_channel(team)
    await team.as_(ADMIN, "POST", "/v1/workflows", json={
        "name": "Two clients", "channels": [channel], "steps": [
            {"name": "Desk", "users": ["bob"], "roles": ["admin"], "mode": "all"},
            {"name": "Client A", "external": True}, {"name": "Client B", "external": True},
        ]})  # fmt: skip
    post = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Hi", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()["post"]
    bob = await team.as_(BOB, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert (bob.json()["step"], bob.json()["waiting_on"]) == (0, ["role:admin"])
    adm = await team.as_(ADMIN, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert adm.json()["step"] == 1
    link = (await team.as_(ADMIN, "POST", f"/v1/posts/{post}/links",
                           json={"name": "Dana"})).json()["token"]  # fmt: skip
    first = await team.public("POST", f"/v1/public/reviews/{link}",
                              json={"decision": "approve", "version": 1})  # fmt: skip
    assert first.json()["step"] == "Client B"
    again = await team.public("POST", f"/v1/public/reviews/{link}",
                              json={"decision": "approve", "version": 1})  # fmt: skip
    assert again.status_code == 403


async def test_a_held_post_can_be_cancelled_and_one_channel_of_a_queue_not_moved(
    team: Team,
) -> None:
    channel = await a_channel(team)
    await team.as_(ADMIN, "PUT", f"/v1/channels/{channel}/queue", json={"slots": "mon 09:00"})
    made = (
        await team.as_(
            EDITOR, "POST", "/v1/posts", json={"text": "Q", "channels": [channel], "queue": True}
        )
    ).json()
    await team.as_(ADMIN, "POST", f"/v1/channels/{channel}/pause")
    job = made["jobs"][0]["id"]
    cancelled = await team.as_(EDITOR, "POST", f"/v1/jobs/{job}/cancel")
    assert cancelled.json()["state"] == "cancelled", cancelled.text
    retried = await team.as_(EDITOR, "POST", f"/v1/jobs/{job}/retry")
    assert retried.json()["state"] == "held"  # the channel is still paused
    await team.as_(
        ADMIN,
        "POST",
        "/v1/workflows",
        json={
            "name": "Desk",
            "channels": [channel],
            "steps": [{"name": "Desk", "roles": ["admin"]}],
        },
    )
    queued = (
        await team.as_(
            EDITOR, "POST", "/v1/posts", json={"text": "Q2", "channels": [channel], "queue": True}
        )
    ).json()["post"]
    moved = await team.as_(EDITOR, "POST", f"/v1/posts/{queued}/reschedule",
                           json={"at": "2027-03-30T10:00", "channel": channel})  # fmt: skip
    assert moved.status_code == 422
    assert "every channel at once" in moved.json()["detail"]


async def test_a_posts_links_can_be_ended(team: Team, clock: FixedClock) -> None:
    channel = await a_channel(team)
    await a_workflow(team, channel)
    post = (
        await team.as_(
            EDITOR,
            "POST",
            "/v1/posts",
            json={"text": "Hi", "channels": [channel], "at": "2027-03-29T09:00"},
        )
    ).json()["post"]
    link = (await team.as_(ADMIN, "POST", f"/v1/posts/{post}/links",
                           json={"name": "Dana"})).json()["token"]  # fmt: skip
    assert (await team.public("GET", f"/v1/public/reviews/{link}")).status_code == 200
    theirs = await team.as_(("user:ann", "owner"), "DELETE", f"/v1/posts/{post}/links",
                            tenant="globex")  # fmt: skip
    assert theirs.status_code == 404
    assert (await team.public("GET", f"/v1/public/reviews/{link}")).status_code == 200
    ended = await team.as_(ADMIN, "DELETE", f"/v1/posts/{post}/links")
    assert ended.status_code == 204
    assert (await team.public("GET", f"/v1/public/reviews/{link}")).status_code == 404
    clock.advance(1)
    fresh = (await team.as_(ADMIN, "POST", f"/v1/posts/{post}/links",
                            json={"name": "Dana"})).json()["token"]  # fmt: skip
    assert (await team.public("GET", f"/v1/public/reviews/{fresh}")).status_code == 200
    trail = [e["action"] for e in (await team.as_(ADMIN, "GET", f"/v1/posts/{post}/audit")).json()]
    assert trail.count("links_ended") == 1


async def test_a_post_outside_any_workflow_has_its_trail_who_and_when(
    team: Team, clock: FixedClock
) -> None:
    channel = await a_channel(team)
    made = (await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "No review", "channels": [channel], "at": "2027-03-29T09:00",
    })).json()  # fmt: skip
    job = made["jobs"][0]["id"]
    clock.advance(60)
    cancelled = await team.as_(ADMIN, "POST", f"/v1/jobs/{job}/cancel")
    assert cancelled.json()["state"] == "cancelled", cancelled.text
    clock.advance(60)
    retried = await team.as_(EDITOR, "POST", f"/v1/jobs/{job}/retry")
    assert retried.json()["state"] == "scheduled", retried.text
    trail = (await team.as_(EDITOR, "GET", f"/v1/posts/{made['post']}/audit")).json()
    assert [(e["action"], e["actor"], e["at"][11:19]) for e in trail] == [
        ("created", "user:ed", "09:00:00"), ("scheduled", "user:ed", "09:00:00"),
        ("cancelled", "user:adm", "09:01:00"), ("scheduled", "user:ed", "09:02:00"),
    ]  # fmt: skip
    assert trail[0]["detail"] == "as editor"
    assert trail[2]["detail"] == "news.acme.example (bluesky)"


async def test_an_expired_link_shows_nothing_and_decides_nothing(
    team: Team, clock: FixedClock
) -> None:
    channel = await a_channel(team)
    await a_workflow(team, channel)
    post = (await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "Hi", "channels": [channel], "at": "2027-03-29T09:00",
    })).json()["post"]  # fmt: skip
    link = await team.as_(ADMIN, "POST", f"/v1/posts/{post}/links",
                          json={"name": "Dana", "hours": 1})  # fmt: skip
    token = link.json()["token"]
    assert (await team.public("GET", f"/v1/public/reviews/{token}")).status_code == 200
    clock.advance(3600 + 1)
    seen = await team.public("GET", f"/v1/public/reviews/{token}")
    assert seen.status_code == 404
    assert "no such link" in seen.json()["detail"]
    commented = await team.public("POST", f"/v1/public/reviews/{token}/comments",
                                  json={"text": "Late"})  # fmt: skip
    assert commented.status_code == 404
    decided = await team.public("POST", f"/v1/public/reviews/{token}",
                                json={"decision": "approve", "version": 1})  # fmt: skip
    assert decided.status_code == 404
    assert (await team.as_(EDITOR, "GET", f"/v1/posts/{post}/comments")).json() == []
    assert (await team.as_(EDITOR, "GET", f"/v1/posts/{post}/review")).json()["step"] == 0


async def test_reminders_spare_who_approved_come_again_and_a_late_post_tells_its_author(
    team: Team, clock: FixedClock
) -> None:
    channel = await a_channel(team)
    await team.as_(ADMIN, "POST", "/v1/workflows", json={
        "name": "Desk", "channels": [channel],
        "steps": [{"name": "Desk", "roles": ["admin", "owner"], "mode": "all"}],
    })  # fmt: skip
    waiting = (await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "Next week", "channels": [channel], "at": "2027-03-29T09:00",
    })).json()["post"]  # fmt: skip
    half = await team.as_(BOB, "POST", f"/v1/posts/{waiting}/review", json={"decision": "approve"})
    assert half.json()["waiting_on"] == ["role:owner"]
    late = (await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "Tomorrow", "channels": [channel], "at": "2027-03-23T11:00",
    })).json()["post"]  # fmt: skip
    await team.as_(ADMIN, "POST", f"/v1/posts/{late}/review",
                   json={"decision": "request_changes", "reason": "Which shop?"})  # fmt: skip
    publishing = await team.platform.publishing()  # type: ignore[attr-defined]
    clock.advance(86_400 + 60)  # 10:01 on the 23rd: the late post is due at 11:00
    assert await publishing.remind(86_400, 7_200) == 2
    told = [(n.post, n.kind, n.users, n.roles) for n in await notices(team)
            if n.kind in ("reminder", "overdue")]  # fmt: skip
    assert told == [
        (waiting, "reminder", [], ["owner"]),  # the admins' part is done: not them again
        (late, "overdue", ["ed"], []),  # it waits on its author, not on the desk
    ]
    assert await publishing.remind(86_400, 7_200) == 0
    clock.advance(86_400 + 60)  # another day waiting: reminded again
    assert await publishing.remind(86_400, 7_200) == 1
    again = [n for n in await notices(team) if n.kind == "reminder" and n.post == waiting]
    assert [n.roles for n in again] == [["owner"], ["owner"]]


async def test_an_admins_edit_keeps_the_workflow_of_the_authors_role(team: Team) -> None:
    channel = await a_channel(team)
    made = (await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "Before the rule", "channels": [channel], "at": "2027-03-29T09:00",
    })).json()  # fmt: skip
    assert made["review"] is None
    await team.as_(ADMIN, "POST", "/v1/workflows", json={
        "name": "Editors", "roles": ["editor"], "steps": [{"name": "Desk", "roles": ["admin"]}],
    })  # fmt: skip
    edited = await team.as_(ADMIN, "PUT", f"/v1/posts/{made['post']}",
                            json={"text": "After the rule"})  # fmt: skip
    assert edited.status_code == 200, edited.text
    assert edited.json()["review"]["waiting_on"] == ["role:admin"]  # the editor's workflow
    assert edited.json()["jobs"] == []
    own = await team.as_(ADMIN, "POST", f"/v1/posts/{made['post']}/review",
                         json={"decision": "approve"})  # fmt: skip
    assert own.status_code == 403  # who made the version does not approve it
    done = await team.as_(BOB, "POST", f"/v1/posts/{made['post']}/review",
                          json={"decision": "approve"})  # fmt: skip
    assert done.json()["state"] == "approved"
    jobs = [j for j in (await team.as_(EDITOR, "GET", "/v1/jobs")).json()
            if j["post"] == made["post"] and j["state"] == "scheduled"]  # fmt: skip
    assert [j["version"] for j in jobs] == [2]


def folded(store: Any, *people: Member) -> None:
    """Publishing's people table told of `people`, as its fold of the log tells it."""
    store.fold_people(people, {CONTROL: len(people)}, store.people_positions())


async def test_a_step_stops_waiting_on_someone_who_left_and_the_sweep_moves_it_on(
    team: Team, clock: FixedClock
) -> None:
    channel = await a_channel(team)
    await team.as_(ADMIN, "POST", "/v1/workflows", json={
        "name": "Desk", "channels": [channel],
        "steps": [{"name": "Team", "users": ["ann", "bob"], "mode": "all"}],
    })  # fmt: skip
    post = (await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "Launch", "channels": [channel], "at": "2027-03-29T09:00",
    })).json()["post"]  # fmt: skip
    half = await team.as_(ANN, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert half.json()["waiting_on"] == ["bob"]
    publishing = await team.platform.publishing()  # type: ignore[attr-defined]
    folded(publishing.store, Member("acme", "bob", "admin", active=False))  # bob was removed

    clock.advance(86_400 + 60)
    assert await publishing.remind(86_400, 7_200) == 1
    review = (await team.as_(EDITOR, "GET", f"/v1/posts/{post}/review")).json()
    assert review["state"] == "approved"
    jobs = [j for j in (await team.as_(EDITOR, "GET", "/v1/jobs")).json() if j["post"] == post]
    assert [j["state"] for j in jobs] == ["scheduled"]
    when = datetime.fromtimestamp(jobs[0]["due_us"] / 1e6, PARIS)
    assert (when.day, when.hour) == (29, 9)
    told = [(n.kind, n.users, n.title) for n in await notices(team) if n.post == post]
    assert ("approved", ["ed"], "Approved and scheduled: Launch") in told
    assert not [t for t in told if t[0] == "reminder"]  # nobody left to remind
    trail = (await team.as_(EDITOR, "GET", f"/v1/posts/{post}/audit")).json()
    passed = [e for e in trail if e["actor"] == "publisher" and e["action"] == "approved"]
    assert [e["detail"] for e in passed] == ["step 1 (Team): the others named left (bob)"]
    assert await publishing.remind(86_400, 7_200) == 0


async def test_a_step_whose_people_all_left_waits_on_admins_and_owners(
    team: Team, clock: FixedClock
) -> None:
    channel = await a_channel(team)
    await team.as_(ADMIN, "POST", "/v1/workflows", json={
        "name": "Desk", "channels": [channel], "steps": [
            {"name": "Team", "users": ["ann", "bob"], "mode": "all"},
            {"name": "Legal", "users": ["bob"]},
        ],
    })  # fmt: skip
    post = (await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "Terms", "channels": [channel], "at": "2027-03-29T09:00",
    })).json()["post"]  # fmt: skip
    await team.as_(ANN, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    publishing = await team.platform.publishing()  # type: ignore[attr-defined]
    event_log = team.platform.event_log  # type: ignore[attr-defined]
    await event_log.append([PersonChanged(
        id="bob-left", key="acme/bob", ts=clock.now_us(), source="gateway", tenant="acme",
        user="bob", email="bob@acme.example", role="admin", active=False,
    )])  # fmt: skip
    # The fold of the log moves the review on at once: Team needs ann only now.
    assert await fold_people(publishing.store, event_log, left=publishing.settle_departures)
    review = (await team.as_(EDITOR, "GET", f"/v1/posts/{post}/review")).json()
    assert (review["state"], review["step"]) == ("in_review", 1)  # Legal does not pass alone
    asked = [(n.users, n.roles) for n in await notices(team)
             if n.post == post and n.kind == "review_requested"]  # fmt: skip
    assert asked[-1] == ([], ["owner", "admin"])  # nobody left in Legal: the admins decide

    clock.advance(86_400 + 60)
    assert await publishing.remind(86_400, 7_200) == 1
    (reminder,) = [n for n in await notices(team) if n.post == post and n.kind == "reminder"]
    assert (reminder.users, reminder.roles) == ([], ["owner", "admin"])
    refused = await team.as_(ANN, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert refused.status_code == 403  # an editor is not an admin
    done = await team.as_(ADMIN, "POST", f"/v1/posts/{post}/review", json={"decision": "approve"})
    assert done.json()["state"] == "approved", done.text
    jobs = [j for j in (await team.as_(EDITOR, "GET", "/v1/jobs")).json() if j["post"] == post]
    assert [j["state"] for j in jobs] == ["scheduled"]


async def test_a_schedule_that_fails_leaves_no_trail(team: Team) -> None:
    channel = await a_channel(team)
    passed = await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "Once, long ago", "channels": [channel], "at": "2027-03-01T09:00",
        "repeat": "FREQ=DAILY;COUNT=1",
    })  # fmt: skip
    assert passed.status_code == 422, passed.text
    queued = await team.as_(EDITOR, "POST", "/v1/posts", json={
        "text": "Next slot", "channels": [channel], "queue": True,
    })  # fmt: skip
    assert queued.status_code == 422, queued.text  # the channel has no queue
    publishing = await team.platform.publishing()  # type: ignore[attr-defined]
    with publishing.store._engine.connect() as db:
        assert db.execute(sa.select(sa.func.count()).select_from(audit_table)).scalar() == 0


async def test_a_change_follows_the_authors_role_now_and_late_notices_spare_who_approved(
    team: Team, clock: FixedClock
) -> None:
    channel = await a_channel(team)
    made = (await team.as_(("user:ed", "admin"), "POST", "/v1/posts", json={
        "text": "As an admin", "channels": [channel], "at": "2027-03-23T11:00",
    })).json()  # fmt: skip
    assert made["review"] is None
    await team.as_(ADMIN, "POST", "/v1/workflows", json={
        "name": "Editors", "roles": ["editor"],
        "steps": [{"name": "Team", "users": ["ann", "bob"], "mode": "all"}],
    })  # fmt: skip
    publishing = await team.platform.publishing()  # type: ignore[attr-defined]
    folded(publishing.store, Member("acme", "ed", "editor"))  # ed is an editor now
    edited = await team.as_(ADMIN, "PUT", f"/v1/posts/{made['post']}", json={"text": "Now"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["review"]["waiting_on"] == ["ann", "bob"]  # the editors' workflow
    await team.as_(ANN, "POST", f"/v1/posts/{made['post']}/review", json={"decision": "approve"})
    clock.advance(86_400 + 60)  # 10:01 on the 23rd: the post is due at 11:00
    assert await publishing.remind(86_400, 7_200) == 2
    (late,) = [n for n in await notices(team)
               if n.post == made["post"] and n.kind == "overdue"]  # fmt: skip
    assert sorted(late.users) == ["bob", "ed"]  # ann approved already: not told again
