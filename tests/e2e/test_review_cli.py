"""Approvals on the command line, as the operator runs them for a team: a workflow added,
a post scheduled under it waiting for its steps, decisions made as named people (and
refused to the wrong ones), a new version, the approved version published on the
Mastodon API test server, comments as a thread, the audit trail as CSV, a reviewer's
link and a paused channel; nothing of it seen from another workspace."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest

from hubbub.bootstrap import open_publishing
from hubbub.kernel.clock import SystemClock
from hubbub.publishing.ports import NotFound
from hubbub.publishing.worker import Publisher
from hubbub.sandbox.mastodon import MastodonState, mastodon_server
from hubbub.settings import Settings
from tests.support.cli import cli, hubbub

PUBLIC = "https://hubbub.example"


async def refused(data: Path, *args: str) -> str:
    """What the command says when it refuses (exit code 2)."""
    code, said = await asyncio.to_thread(hubbub, data, *args)
    assert code == 2, said
    return " ".join(said.split())  # as read, whatever the terminal's width


async def publish_due(data: Path) -> int:
    parts = open_publishing(Settings(data_dir=data), SystemClock(), None)
    try:
        return await Publisher(parts.service.store, parts.networks, SystemClock()).once()
    finally:
        await parts.close()


async def test_a_post_goes_through_its_workflow_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBBUB_PUBLISH_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("HUBBUB_PUBLIC_URL", PUBLIC)
    state = MastodonState()
    login = state.add_account("newsroom")
    data = tmp_path / "data"
    tenant = await cli(data, "tenants", "create", "Acme")
    people = {
        name: await cli(data, "users", "create", "--tenant", tenant, "--email",
                        f"{name}@example.com", "--role", role)
        for name, role in [("ann", "editor"), ("bob", "admin"), ("cat", "editor"),
                           ("dan", "viewer")]
    }  # fmt: skip
    acme = ("--tenant", tenant)

    async with mastodon_server(state) as server:
        channel = await cli(
            data, "channels", "add", "mastodon", "--account", "newsroom@127.0.0.1",
            "--service", server.url, *acme, stdin=login.access_token + "\n",
        )  # fmt: skip

        # A workflow: the desk (any admin), then legal (cat and dan, both).
        said = await refused(data, "workflows", "add", "--name", "Newsroom", "--step", "Desk",
                             "--channel", channel, *acme)  # fmt: skip
        assert 'write it "NAME: any users=' in said
        said = await refused(data, "workflows", "add", "--name", "Newsroom", "--channel",
                             channel, "--step", "Desk: users=zed@example.com", *acme)  # fmt: skip
        assert "no person 'zed@example.com' in workspace" in said
        said = await refused(data, "workflows", "add", "--name", "Newsroom", "--step",
                             "Desk: roles=boss", "--channel", channel, *acme)  # fmt: skip
        assert "unknown role 'boss'" in said
        workflow = await cli(
            data, "workflows", "add", "--name", "Newsroom", "--channel", channel,
            "--step", "Desk: roles=admin", "--step", "Legal: all users=cat@example.com,"
            + people["dan"], *acme,
        )  # fmt: skip
        (listed,) = json.loads(await cli(data, "workflows", "list", "--json", *acme))
        assert listed["id"] == workflow
        assert listed["channels"] == [channel]
        assert [(s["name"], s["mode"], s["users"], s["roles"]) for s in listed["steps"]] == [
            ("Desk", "any", [], ["admin"]),
            ("Legal", "all", [people["cat"], people["dan"]], []),
        ]
        _, table = await asyncio.to_thread(hubbub, data, "workflows", "list", *acme)
        assert "cat@example.com" in table

        # Scheduled under it: nothing to publish until the last step approves.
        made = await cli(data, "posts", "schedule", "Launch day", "--channel", channel,
                         "--json", *acme)  # fmt: skip
        said = json.loads(made)
        assert (said["review"], said["waiting_on"]) == ("in_review", ["role:admin"])
        (waiting,) = json.loads(
            await cli(data, "posts", "reviews", "--as", "bob@example.com", "--json", *acme)
        )
        post = waiting["post"]
        assert post == said["post"]
        assert (waiting["text"], waiting["waiting_on"], waiting["can_decide"]) == (
            "Launch day", ["role:admin"], True,
        )  # fmt: skip
        assert json.loads(await cli(data, "posts", "reviews", "--as", "cat@example.com",
                                    "--json", *acme)) == []  # fmt: skip

        # Only the step's approvers decide it; a request for changes says why.
        said = await refused(data, "posts", "approve", post, "--as", "cat@example.com", *acme)
        assert "not an approver of step 1 (Desk)" in said
        said = await refused(data, "posts", "request-changes", post, "--as", "bob@example.com",
                             *acme)  # fmt: skip
        assert "needs a reason" in said
        asked = json.loads(await cli(
            data, "posts", "request-changes", post, "--as", "bob@example.com",
            "--reason", "Say when", "--json", *acme,
        ))  # fmt: skip
        assert asked["state"] == "changes_requested"
        assert asked["steps"][0]["decisions"][0]["reason"] == "Say when"

        # An edit (by its author, the command line) is a new version, and the review
        # starts again. (An admin who changed it could not approve that version.)
        edited = json.loads(await cli(
            data, "posts", "edit", post, "--text", "Launch day, at nine", "--json", *acme,
        ))  # fmt: skip
        assert (edited["version"], edited["jobs"]) == (2, [])
        assert (edited["review"]["state"], edited["review"]["step"]) == ("in_review", 0)
        _, shown = await asyncio.to_thread(hubbub, data, "posts", "review", post, *acme)
        assert "version 2: in review, at step 1 of 2" in shown
        assert "waiting on any admin" in shown

        await cli(data, "posts", "approve", post, "--as", people["bob"], *acme)
        after = json.loads(await cli(data, "posts", "approve", post, "--as", "cat@example.com",
                                     "--json", *acme))  # fmt: skip
        assert (after["step"], after["waiting_on"]) == (1, [people["dan"]])
        said = await refused(data, "posts", "approve", post, "--as", "cat@example.com", *acme)
        assert "you approved step 2 (Legal) already" in said
        said = await refused(data, "posts", "approve", post, "--as", "dan@example.com",
                             "--version", "1", *acme)  # fmt: skip
        assert "is at version 2, not 1" in said
        done = json.loads(await cli(data, "posts", "approve", post, "--as", "dan@example.com",
                                    "--json", *acme))  # fmt: skip
        assert done["state"] == "approved"

        # The approved version is the one published.
        (job,) = json.loads(await cli(data, "posts", "list", "--json", *acme))
        assert (job["post"], job["version"], job["state"]) == (post, 2, "scheduled")
        assert await publish_due(data) == 1
        assert [s.text for s in state.statuses_by(login.account)] == ["Launch day, at nine"]
        said = await refused(data, "posts", "move", post, "--at", "2100-01-01T09:00", "--as",
                             "bob@example.com", *acme)  # fmt: skip
        assert "published" in said

    # Nobody approves their own post: one bob wrote, as the API keeps a person's.
    parts = open_publishing(Settings(data_dir=data), SystemClock(), None)
    try:
        own, _ = await parts.service.schedule(
            tenant, f"user:{people['bob']}", "Bob's own", [channel], at="2100-01-04T09:00",
            role="admin",
        )  # fmt: skip
    finally:
        await parts.close()
    said = await refused(data, "posts", "approve", own.id, "--as", "bob@example.com", *acme)
    assert "nobody approves their own post" in said
    said = await refused(data, "posts", "move", own.id, "--at", "2100-01-05T09:00", *acme)
    assert "only the post's author, or an admin, changes it" in said
    moved = json.loads(await cli(data, "posts", "move", own.id, "--at", "2100-01-05T09:00",
                                 "--as", "bob@example.com", "--json", *acme))  # fmt: skip
    assert (moved["version"], moved["review"]["plan"]["at"]) == (2, "2100-01-05T09:00")

    # Comments, as a thread.
    first = await cli(data, "posts", "comment", post, "Is nine right? @bob", "--as",
                      "ann@example.com", *acme)  # fmt: skip
    await cli(data, "posts", "comment", post, "Yes, nine.", "--reply-to", first, "--as",
              "bob@example.com", *acme)  # fmt: skip
    said = await refused(data, "posts", "comment", post, "Hm", "--reply-to", "nope", "--as",
                         "ann@example.com", *acme)  # fmt: skip
    assert "no comment 'nope' on post" in said
    thread = json.loads(await cli(data, "posts", "comments", post, "--json", *acme))
    assert [(c["author"], c["text"], [(r["author"], r["text"]) for r in c["replies"]])
            for c in thread] == [(f"user:{people['ann']}", "Is nine right? @bob",
                                  [(f"user:{people['bob']}", "Yes, nine.")])]  # fmt: skip
    _, shown = await asyncio.to_thread(hubbub, data, "posts", "comments", post, *acme)
    lines = shown.splitlines()
    asked_at = next(n for n, line in enumerate(lines) if line.startswith("ann@example.com"))
    assert lines[asked_at + 1] == "  Is nine right? @bob"
    assert lines[asked_at + 2].startswith("  bob@example.com")  # the answer, under it
    assert lines[asked_at + 3] == "    Yes, nine."

    # The audit trail, as CSV.
    path = tmp_path / "audit.csv"
    await cli(data, "posts", "audit", post, "--csv", str(path), *acme)
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [(r["action"], r["version"]) for r in rows][:8] == [
        ("created", "1"), ("submitted", "1"), ("changes_requested", "1"), ("edited", "2"),
        ("submitted", "2"), ("approved", "2"), ("approved", "2"), ("approved", "2"),
    ]  # fmt: skip
    assert rows[2]["actor"] == f"user:{people['bob']}"
    assert rows[2]["detail"] == "step 1 (Desk): Say when"
    assert [r["action"] for r in rows].count("commented") == 2

    # A link for an external reviewer, at the web app's public address.
    url = await cli(data, "posts", "share", own.id, "--name", "Dana", "--hours", "24", *acme)
    assert url.startswith(f"{PUBLIC}/review/")
    parts = open_publishing(Settings(data_dir=data), SystemClock(), None)
    try:
        assert parts.service.linked(url.rpartition("/")[2])[:2] == (tenant, own.id)
        said = await cli(data, "posts", "unshare", own.id, *acme)
        assert "has ended" in said
        with pytest.raises(NotFound):
            parts.service.linked(url.rpartition("/")[2])
    finally:
        await parts.close()

    # A paused channel, and back.
    paused = json.loads(await cli(data, "channels", "pause", channel, "--json", *acme))
    assert paused["paused"] is True
    resumed = json.loads(await cli(data, "channels", "resume", channel, "--json", *acme))
    assert resumed["paused"] is False

    # Another workspace sees none of it.
    other = ("--tenant", await cli(data, "tenants", "create", "Other"))
    assert json.loads(await cli(data, "workflows", "list", "--json", *other)) == []
    assert json.loads(await cli(data, "posts", "reviews", "--json", *other)) == []
    assert "no post" in await refused(data, "posts", "review", post, *other)
    assert "no post" in await refused(data, "posts", "comments", post, *other)
    assert "no post" in await refused(data, "posts", "audit", post, *other)


def test_a_step_is_read_as_written() -> None:
    from hubbub.cli.review import parse_step
    from hubbub.publishing.ports import Step

    assert parse_step("Legal: all users=ann@example.com,b1 roles=admin") == Step(
        "Legal", ("ann@example.com", "b1"), ("admin",), "all", False
    )
    assert parse_step("Step 2: the client: external") == Step(
        "Step 2: the client", (), (), "any", True
    )
    with pytest.raises(ValueError, match="names no approver"):
        parse_step("Desk: all")
    with pytest.raises(ValueError, match="'who=ann' is not any, all"):
        parse_step("Desk: who=ann")
