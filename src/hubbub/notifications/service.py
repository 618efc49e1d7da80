"""Notifications' use cases: who a notice is for, what each of them gets (an inbox row, an
email), and what a person reads and marks read.

Who a `NoticeIssued` is for: the users it names, every member of each role it names, and
the person each handle names (`alice` from "@alice": whose email's local part, or whole
email, it is, ignoring case); only active people of the notice's tenant, never its actor,
each once. Pure functions over the people folded from the log, so a replay resolves the
same notice to the same people.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr

from hubbub.kernel.clock import Clock
from hubbub.kernel.events import NoticeIssued, PersonChanged
from hubbub.notifications.ports import (
    Delivery,
    Email,
    Notification,
    NotificationStore,
    Page,
    Person,
)

TITLE_CHARS = 300
BODY_CHARS = 4000
LINK_CHARS = 2000


@dataclass
class Directory:
    """The people of some tenants, by tenant and user id, with changes laid over them."""

    people: dict[str, dict[str, Person]] = field(default_factory=dict)

    @classmethod
    def of(cls, people: Iterable[Person]) -> Directory:
        directory = cls()
        for person in people:
            directory.put(person)
        return directory

    def put(self, person: Person) -> None:
        self.people.setdefault(person.tenant, {})[person.user] = person

    def tenant(self, tenant: str) -> Mapping[str, Person]:
        return self.people.get(tenant, {})


def person_of(change: PersonChanged) -> Person:
    return Person(
        tenant=change.tenant, user=change.user, email=change.email, role=change.role,
        time_zone=change.time_zone, active=change.active,
    )  # fmt: skip


def handle_matches(handle: str, email: str) -> bool:
    """Whether `@handle` names the person of `email`: its local part, or all of it,
    ignoring case (and a leading `@`)."""
    wanted = handle.strip().removeprefix("@").casefold()
    address = email.strip().casefold()
    return bool(wanted) and wanted in (address, address.partition("@")[0])


def user_id(named: str) -> str:
    """A user's id, also when named as its sessions' key (`user:<id>`)."""
    return named.removeprefix("user:")


def recipients(notice: NoticeIssued, directory: Directory) -> list[Person]:
    """Who `notice` is for, in a stable order (named users, role members, handles), each
    once: active people of its tenant, not its actor."""
    people = [p for p in directory.tenant(notice.tenant).values() if p.active]
    named = {user_id(user) for user in notice.users}
    roles = set(notice.roles)
    actor = user_id(notice.actor)
    chosen = [p for p in people if p.user in named]
    chosen += sorted((p for p in people if p.role in roles), key=lambda p: p.user)
    for handle in notice.handles:
        chosen += sorted((p for p in people if handle_matches(handle, p.email)),
                         key=lambda p: p.user)  # fmt: skip
    unique: dict[str, Person] = {}
    for person in chosen:
        if person.user != actor:
            unique.setdefault(person.user, person)
    return list(unique.values())


def safe_link(link: str) -> str:
    """A web app path (`/publish/posts/x`), or nothing: a notice never links elsewhere."""
    link = link.strip()
    if not link.startswith("/") or link.startswith("//") or "\\" in link:
        return ""
    return link[:LINK_CHARS]


def absolute(link: str, public_url: str) -> str:
    """Where a person's browser opens `link`: the app's public URL and the path."""
    return f"{public_url.rstrip('/')}{link}" if link else public_url


def message_id(notice: str, user: str, sender: str) -> str:
    """The same (notice, person) always makes the same Message-ID."""
    digest = hashlib.sha256(f"{notice}\0{user}".encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "hubbub.invalid"
    return f"<{digest}@{domain}>"


@dataclass(frozen=True)
class EmailPolicy:
    """How emails are written: who they are from, and where the web app is."""

    sender: str
    public_url: str


def email_text(notification: Notification, public_url: str) -> str:
    """A notification as plain text: what happened, and where to look at it."""
    parts = [notification.title]
    if notification.body:
        parts.append(notification.body)
    parts.append(f"Open it: {absolute(notification.link, public_url)}")
    parts.append("-- \nYou get this because you are a member of a Hubbub workspace.")
    return "\n\n".join(parts) + "\n"


def email_for(notification: Notification, person: Person, policy: EmailPolicy) -> Email:
    subject = " ".join(notification.title.split())[:200] or notification.kind
    return Email(
        tenant=person.tenant, user=person.user, to=person.email, subject=subject,
        text=email_text(notification, policy.public_url),
        message_id=message_id(notification.notice, person.user, policy.sender),
    )  # fmt: skip


def deliveries(
    notice: NoticeIssued, directory: Directory, email: EmailPolicy | None
) -> list[Delivery]:
    """One delivery per person `notice` is for: the inbox row, and the email when email
    is on (`email` given) and the person has an address."""
    made = []
    for person in recipients(notice, directory):
        notification = Notification(
            tenant=notice.tenant, user=person.user, notice=notice.notice, kind=notice.kind,
            title=notice.title[:TITLE_CHARS], body=notice.body[:BODY_CHARS],
            link=safe_link(notice.link), post=notice.post, actor=notice.actor,
            created_us=notice.ts,
        )  # fmt: skip
        mail = email_for(notification, person, email) if email and person.email else None
        made.append(Delivery(notification, mail))
    return made


def plan(
    people: Sequence[PersonChanged],
    notices: Sequence[NoticeIssued],
    known: Iterable[Person],
    email: EmailPolicy | None,
) -> tuple[list[Person], list[Delivery]]:
    """What a batch of the log means: the people it changes, and the deliveries of its
    notices, resolved against `known` with the batch's own changes laid over it."""
    directory = Directory.of(known)
    changed = [person_of(change) for change in people]
    for person in changed:
        directory.put(person)
    made = [d for notice in notices for d in deliveries(notice, directory, email)]
    return changed, made


class Arrivals:
    """Tells the streams of this process that notifications were kept: each waiter of
    `wait` wakes at the next `notify` (or at its timeout)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self._event.wait()
        except TimeoutError:
            pass


@dataclass(frozen=True)
class StreamPolicy:
    """How a live stream runs: it ends after `last_s` (the client reconnects, resuming
    where it was), sends a comment every `heartbeat_s` when nothing else, and asks the
    store every `poll_s` unless this process's worker wakes it first."""

    last_s: float = 300.0
    heartbeat_s: float = 10.0
    poll_s: float = 1.0


class NotForPeople(Exception):
    """The caller is not a person (an API key): it has no notifications."""


@dataclass
class Inbox:
    """What a person reads of their notifications, and marks read. Every call names the
    tenant and the person: nobody else's notification is ever seen or changed."""

    store: NotificationStore
    clock: Clock
    arrivals: Arrivals = field(default_factory=Arrivals)
    stream: StreamPolicy = field(default_factory=StreamPolicy)

    async def page(
        self, tenant: str, user: str, *, unread_only: bool, before: int | None, limit: int
    ) -> Page:
        """The person's notifications, newest first, before the id `before` if given."""
        return await asyncio.to_thread(
            self.store.listing, tenant, user, unread_only=unread_only, before=before, limit=limit
        )

    async def mark_read(self, tenant: str, user: str, ids: Sequence[int] | None) -> tuple[int, int]:
        """Mark these (all with None) read; answers how many changed and how many of the
        person's are still unread."""
        marked = await asyncio.to_thread(
            self.store.mark_read, tenant, user, ids, self.clock.now_us()
        )
        return marked, await asyncio.to_thread(self.store.unread, tenant, user)

    async def latest(self, tenant: str, user: str) -> int:
        return await asyncio.to_thread(self.store.latest, tenant, user)

    async def unread(self, tenant: str, user: str) -> int:
        return await asyncio.to_thread(self.store.unread, tenant, user)

    async def arrived(self, tenant: str, user: str, after: int, limit: int = 100) -> Page:
        """The person's notifications with ids past `after`, oldest first."""
        return await asyncio.to_thread(self.store.listing, tenant, user, after=after, limit=limit)
