"""What a review tells its people, through the gateway, from the action to their inbox
(`/v1/notifications`) and their mailbox (a real SMTP server, aiosmtpd): a comment's
@handle, a request for changes and a rejection, and the approved post published on the
Mastodon API test server; and the post's audit trail of it all, who and when."""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from hubbub.sandbox.mastodon import mastodon_server
from tests.conftest import until
from tests.e2e.test_notifications_api import join, listed
from tests.integration.test_notifications_worker import Mailbox
from tests.support.net import free_port
from tests.support.stack import Stack, auth, start_stack


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
async def stack(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> AsyncIterator[Stack]:
    settings = {
        "notifications_poll_s": 0.1, "publish_allowed_networks": [
            ipaddress.ip_network("127.0.0.0/8")],
        "smtp_host": "127.0.0.1", "smtp_port": mailbox[1], "smtp_security": "none",
        "smtp_from": "Hubbub <notices@hubbub.example>", "public_url": "https://hubbub.example",
        "email_backoff_s": 1.0,
    }  # fmt: skip
    built, resources = await start_stack(tmp_path, settings)
    async with resources:
        yield built


async def notified(stack: Stack, token: str, kind: str) -> dict[str, Any]:
    """The person's newest notification of `kind`, once it has come."""
    found: list[dict[str, Any]] = []

    async def came() -> bool:
        found[:] = [n for n in (await listed(stack, token))["notifications"] if n["kind"] == kind]
        return bool(found)

    await until(came)
    return found[0]


async def test_a_review_tells_whom_it_names_and_its_author_what_became_of_the_post(
    stack: Stack, mailbox: tuple[Mailbox, int]
) -> None:
    acme = await stack.tenant("acme")
    ed = await join(stack, acme, "ed@acme.example", "editor")
    ann = await join(stack, acme, "ann@acme.example", "admin")
    owner = auth(acme["token"])
    async with mastodon_server() as server:
        newsroom = server.state.add_account("newsroom")
        channel = await stack.client.post("/v1/channels", headers=owner, json={
            "network": "mastodon", "account": "newsroom@127.0.0.1", "service": server.url,
            "access_token": newsroom.access_token,
        })  # fmt: skip
        assert channel.status_code == 201, channel.text
        flow = await stack.client.post("/v1/workflows", headers=owner, json={
            "name": "Desk", "channels": [channel.json()["id"]],
            "steps": [{"name": "Desk", "roles": ["admin"]}],
        })  # fmt: skip
        assert flow.status_code == 201, flow.text
        written = await stack.client.post("/v1/posts", headers=auth(ed["token"]), json={
            "text": "Launch day", "channels": [channel.json()["id"]],
        })  # fmt: skip
        assert written.status_code == 201, written.text
        post = written.json()["post"]

        # A comment naming @ann reaches her inbox and her mailbox, as written.
        said = "@ann is <b>this</b> fine?"
        commented = await stack.client.post(
            f"/v1/posts/{post}/comments", headers=auth(ed["token"]), json={"text": said}
        )
        assert commented.status_code == 201, commented.text
        mention = await notified(stack, ann["token"], "mentioned")
        assert mention["title"] == f"{ed['user']['id']} mentioned you: {said}"
        assert (mention["body"], mention["post"], mention["link"]) == (
            said, post, f"/publish/posts/{post}",
        )  # fmt: skip
        assert mention["actor"] == ed["user"]["id"]

        async def emailed() -> bool:
            return any("mentioned you" in str(m["Subject"]) for m in mailbox[0].received)

        await until(emailed)
        (mail,) = [m for m in mailbox[0].received if "mentioned you" in str(m["Subject"])]
        assert mail["To"] == "ann@acme.example"
        assert said in mail.get_content()
        assert f"https://hubbub.example/publish/posts/{post}" in mail.get_content()

        # Decisions that need the author tell the author, with the reason.
        as_ann = auth(ann["token"])
        asked = await stack.client.post(f"/v1/posts/{post}/review", headers=as_ann,
                                        json={"decision": "request_changes",
                                              "reason": "Say which day"})  # fmt: skip
        assert asked.status_code == 200, asked.text
        changes = await notified(stack, ed["token"], "changes_requested")
        assert changes["body"] == "Say which day"
        assert changes["actor"] == ann["user"]["id"]
        edited = await stack.client.put(f"/v1/posts/{post}", headers=auth(ed["token"]),
                                        json={"text": "Launch day: Monday"})  # fmt: skip
        assert edited.status_code == 200, edited.text
        rejected = await stack.client.post(f"/v1/posts/{post}/review", headers=as_ann,
                                           json={"decision": "reject",
                                                 "reason": "Off-brand, =SUM(A1)"})  # fmt: skip
        assert rejected.json()["state"] == "rejected", rejected.text
        refusal = await notified(stack, ed["token"], "rejected")
        assert refusal["body"] == "Off-brand, =SUM(A1)"

        # The approved version goes out; its author is told where.
        await stack.client.put(f"/v1/posts/{post}", headers=auth(ed["token"]),
                               json={"text": "Launch day: Monday at nine"})  # fmt: skip
        approved = await stack.client.post(f"/v1/posts/{post}/review", headers=as_ann,
                                           json={"decision": "approve"})  # fmt: skip
        assert approved.json()["state"] == "approved", approved.text
        published = await notified(stack, ed["token"], "published")
        assert published["title"] == (
            "Published on newsroom@127.0.0.1 (mastodon): Launch day: Monday at nine"
        )
        (status,) = server.state.statuses.values()
        assert status.text == "Launch day: Monday at nine"
        jobs = (await stack.client.get("/v1/jobs", headers=owner)).json()
        assert [(j["state"], j["url"]) for j in jobs if j["post"] == post] == [
            ("published", published["body"])
        ]
        assert status.id in published["body"]
        assert not [n for n in (await listed(stack, ann["token"]))["notifications"]
                    if n["kind"] == "published"]  # fmt: skip

        # Every action is in the trail, who and when, and in its CSV.
        trail = (await stack.client.get(f"/v1/posts/{post}/audit", headers=owner)).json()
        ed_key, ann_key = f"user:{ed['user']['id']}", f"user:{ann['user']['id']}"
        assert [(e["action"], e["actor"], e["version"]) for e in trail] == [
            ("created", ed_key, 1), ("submitted", ed_key, 1), ("commented", ed_key, 1),
            ("changes_requested", ann_key, 1), ("edited", ed_key, 2), ("submitted", ed_key, 2),
            ("rejected", ann_key, 2), ("edited", ed_key, 3), ("submitted", ed_key, 3),
            ("approved", ann_key, 3), ("scheduled", ann_key, 3), ("published", "publisher", 3),
        ]  # fmt: skip
        assert trail[0]["detail"] == "as editor"
        assert trail[6]["detail"] == "step 1 (Desk): Off-brand, =SUM(A1)"
        assert trail[-1]["detail"] == "newsroom@127.0.0.1 (mastodon)"
        moments = [datetime.fromisoformat(e["at"]) for e in trail]
        assert moments == sorted(moments)
        assert moments[-1] > moments[-2]  # published after it was scheduled
        sheet = await stack.client.get(f"/v1/posts/{post}/audit.csv", headers=owner)
        rows = list(csv.DictReader(io.StringIO(sheet.text)))
        assert [r["action"] for r in rows] == [e["action"] for e in trail]
        assert (rows[6]["actor"], rows[6]["detail"]) == (ann_key, trail[6]["detail"])
        assert rows[-1]["at"] == trail[-1]["at"]
