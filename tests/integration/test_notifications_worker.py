"""The notifications worker over the embedded log and store, built by `bootstrap`, emailing
through a real SMTP server (aiosmtpd) on a local port: what each person's inbox holds, what
their mailbox receives, and that a replay or a crash never tells anyone twice."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from hubbub.bootstrap import (
    build_platform,
    notification_policy,
    open_event_log,
    open_mailer,
    open_notification_store,
)
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import DEADLETTER, InputRejected, NoticeIssued, PersonChanged
from hubbub.notifications import worker
from hubbub.notifications.ports import Mailer, NotificationStore
from hubbub.notifications.worker import NotificationPolicy
from hubbub.settings import Settings
from tests.conftest import until
from tests.support.net import free_port

T0 = 1_800_000_000_000_000
CLOCK = FixedClock(T0)


@dataclass
class Mailbox:
    """What the SMTP server received; recipients in `refuse` are answered 550."""

    received: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 Message accepted for delivery"


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


def settings_for(tmp_path: Path, port: int, **more: Any) -> Settings:
    return Settings(
        data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
        smtp_from="Hubbub <notices@hubbub.example>", public_url="https://hubbub.example",
        email_backoff_s=1.0, **more,
    )  # fmt: skip


@dataclass
class Parts:
    store: NotificationStore
    event_log: EventLog
    mailer: Mailer
    policy: NotificationPolicy


@pytest.fixture
async def parts(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> AsyncIterator[Parts]:
    settings = settings_for(tmp_path, mailbox[1])
    event_log = await open_event_log(settings)
    store = open_notification_store(settings)
    mailer = open_mailer(settings)
    assert mailer is not None
    yield Parts(store, event_log, mailer, notification_policy(settings))
    store.close()
    await event_log.close()


def person(user: str, email_address: str, role: str = "editor", **more: Any) -> PersonChanged:
    return PersonChanged(
        id=f"person-{user}-{len(more)}", key=f"acme/{user}", ts=T0, source="gateway",
        tenant=more.pop("tenant", "acme"), user=user, email=email_address, role=role, **more,
    )  # fmt: skip


def issued(notice: str, **fields: Any) -> NoticeIssued:
    return NoticeIssued(
        id=f"notice-{notice}-{fields.pop('n', 0)}", key=notice, ts=T0, source="publishing",
        tenant=fields.pop("tenant", "acme"), notice=notice,
        kind=fields.pop("kind", "commented"), title=fields.pop("title", "Ann commented"),
        **fields,
    )  # fmt: skip


TEAM = [
    person("u-ann", "ann@acme.example", "admin"),
    person("u-bob", "Bob@acme.example"),
    person("u-cy", "cy@acme.example"),
    person("u-eve", "eve@globex.example", tenant="globex"),
]


async def send_all(parts: Parts, clock: FixedClock) -> None:
    while await worker.send_emails(
        parts.store, parts.mailer, parts.policy, clock, "test", parts.event_log
    ):
        pass


async def test_a_notice_reaches_each_persons_inbox_and_mailbox(
    parts: Parts, mailbox: tuple[Mailbox, int]
) -> None:
    await parts.event_log.append(TEAM)
    await parts.event_log.append([
        issued("n1", users=["u-eve"], roles=["editor"], handles=["ann"], actor="u-cy",
               title="Ann commented on “Launch”", body="Ship it on Monday?",
               link="/publish/posts/p1"),
    ])  # fmt: skip
    await worker.catch_up(parts.store, parts.event_log, parts.policy, CLOCK)
    for user in ("u-ann", "u-bob"):
        (kept,) = parts.store.listing("acme", user).notifications
        assert (kept.title, kept.link) == ("Ann commented on “Launch”", "/publish/posts/p1")
    assert parts.store.listing("acme", "u-cy").notifications == []  # the actor
    assert parts.store.listing("globex", "u-eve").notifications == []  # another tenant

    await send_all(parts, FixedClock(T0))
    received = {m["To"]: m for m in mailbox[0].received}
    assert sorted(received) == ["Bob@acme.example", "ann@acme.example"]
    message = received["ann@acme.example"]
    assert message["Subject"] == "Ann commented on “Launch”"
    assert message["From"] == "Hubbub <notices@hubbub.example>"
    assert message.get_content_type() == "text/plain"
    text = message.get_content()
    assert "Ship it on Monday?" in text
    assert "Open it: https://hubbub.example/publish/posts/p1" in text


async def test_a_replay_never_tells_anyone_twice(
    parts: Parts, mailbox: tuple[Mailbox, int]
) -> None:
    await parts.event_log.append([*TEAM, issued("n1", users=["u-bob"])])
    assert await worker.catch_up(parts.store, parts.event_log, parts.policy, CLOCK) == 5
    assert await worker.catch_up(parts.store, parts.event_log, parts.policy, CLOCK) == 0
    await parts.event_log.append([issued("n1", users=["u-bob"], n=1)])  # the notice again
    assert await worker.catch_up(parts.store, parts.event_log, parts.policy, CLOCK) == 1
    await send_all(parts, FixedClock(T0))
    assert len(parts.store.listing("acme", "u-bob").notifications) == 1
    assert [m["To"] for m in mailbox[0].received] == ["Bob@acme.example"]


async def test_a_person_who_joins_while_the_worker_reads_gets_the_notice_that_follows(
    parts: Parts,
) -> None:
    """The gateway appends a person before publishing can address them; a fold that reads
    in between those appends still delivers the notice."""

    class JoinWhileReading:
        def __init__(self, log: EventLog) -> None:
            self.log, self.joined = log, False

        async def read(self, topic: str, position: int = 1, limit: int = 1000) -> Any:
            records = await self.log.read(topic, position, limit)
            if not self.joined:  # between the worker's first read and its second
                self.joined = True
                await self.log.append([person("u-bob", "bob@acme.example")])
                await self.log.append([issued("n1", users=["u-bob"])])
            return records

    reading: Any = JoinWhileReading(parts.event_log)
    await worker.catch_up(parts.store, reading, parts.policy, CLOCK)
    (kept,) = parts.store.listing("acme", "u-bob").notifications
    assert kept.title == "Ann commented"


async def test_a_fold_from_positions_that_moved_is_read_again(parts: Parts) -> None:
    """Two workers at once (replicas, or one restarted while the old one finishes): each
    notice reaches each person once."""
    await parts.event_log.append([*TEAM, *(issued(f"n{n}", users=["u-bob"]) for n in range(20))])
    small = replace(parts.policy, batch=3)
    await asyncio.gather(
        *(worker.catch_up(parts.store, parts.event_log, small, CLOCK) for _ in range(3))
    )
    assert len(parts.store.listing("acme", "u-bob", limit=100).notifications) == 20
    assert parts.store.positions() == {"control": 4, "notices": 20}


async def test_a_refused_email_is_dead_with_the_servers_reason(
    parts: Parts, mailbox: tuple[Mailbox, int]
) -> None:
    mailbox[0].refuse.add("Bob@acme.example")
    await parts.event_log.append([*TEAM, issued("n1", users=["u-bob", "u-ann"])])
    await worker.catch_up(parts.store, parts.event_log, parts.policy, CLOCK)
    await send_all(parts, FixedClock(T0))
    assert [m["To"] for m in mailbox[0].received] == ["ann@acme.example"]
    (dead,) = parts.store.dead("acme")
    assert dead.to == "Bob@acme.example"
    assert "550" in dead.error
    assert "no such mailbox" in dead.error
    assert len(parts.store.listing("acme", "u-bob").notifications) == 1  # the inbox has it
    (told,) = [r.event for r in await parts.event_log.read(DEADLETTER)]
    assert isinstance(told, InputRejected)
    assert told.reason.startswith("the email to user u-bob was given up on: refused: ")
    assert "550" in told.reason
    assert "Bob@acme.example" not in told.detail


async def test_an_unreachable_server_is_tried_again_with_backoff_then_given_up(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path, free_port(), email_attempts=3)  # nothing listens
    event_log = await open_event_log(settings)
    store = open_notification_store(settings)
    mailer = open_mailer(settings)
    assert mailer is not None
    policy = notification_policy(settings)
    clock = FixedClock(T0)
    try:
        await event_log.append([*TEAM, issued("n1", users=["u-bob"])])
        await worker.catch_up(store, event_log, policy, clock)
        tries = []
        for _ in range(3):
            tries.append(await worker.send_emails(store, mailer, policy, clock, "test"))
            tries.append(await worker.send_emails(store, mailer, policy, clock, "test"))
            clock.advance(4.0)  # past 1 s, then 2 s of backoff
        assert tries == [1, 0, 1, 0, 1, 0]
        (dead,) = store.dead()
        assert dead.attempts == 3
        assert dead.error.startswith("failed 3 times, last: the SMTP server at 127.0.0.1:")
    finally:
        store.close()
        await event_log.close()


async def test_the_role_folds_and_emails_in_the_background(
    tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    platform = await build_platform(settings_for(tmp_path, mailbox[1]))
    try:
        inbox = await platform.notifications()
        await platform.event_log.append([*TEAM, issued("n1", users=["u-bob"], link="/x")])

        async def emailed() -> bool:
            return len(mailbox[0].received) == 1

        await until(emailed)
        assert (await inbox.unread("acme", "u-bob")) == 1
        assert (await platform.positions(mentions=False, analytics=False))["notices"] == 1
    finally:
        await platform.close()


async def test_without_an_smtp_server_notifications_reach_the_inbox_only(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)
    assert open_mailer(settings) is None
    assert notification_policy(settings).email is None
    platform = await build_platform(settings)
    try:
        inbox = await platform.notifications()
        await platform.event_log.append([*TEAM, issued("n1", users=["u-bob"])])

        async def kept() -> bool:
            return await inbox.unread("acme", "u-bob") == 1

        await until(kept)
        assert platform.background.failing() == {}
    finally:
        await platform.close()
