"""Notifications' ports: where people's notifications are kept (`NotificationStore`) and
how email leaves (`Mailer`).

A notification is one person's copy of a `NoticeIssued`: the worker resolves who a notice
is for (the people folded from `PersonChanged` on `control`) and keeps one inbox row per
recipient, with an email in an outbox when email is on. The store's contract, which every
adapter meets (`tests/contract/test_notification_stores.py`):

- Positions. The log positions the store's content was folded up to, per topic, change
  only in `apply`, in the transaction that writes what they produced; `apply` refuses
  (`StalePositions`) a fold read from positions that have moved since, so two workers, or
  a replay, never deliver the same notice twice.
- Idempotency. A notification is unique by (tenant, notice, user): applying the same
  delivery again adds no row and queues no second email.
- Ids. Each notification has an id, a positive integer that grows with every row made
  (across users), so "after id N" resumes a person's stream; an id is never reused.
- Isolation. Every read and change names the tenant and the user: another tenant's or
  another person's notification is invisible and untouched, as one that does not exist.
- Bounds. `apply` keeps at most `keep_per_user` notifications per person (the oldest go
  first); `prune` drops read ones read before a moment, emails sent or dead before one.
- The outbox. An email is claimed with a lease (`claim_emails`); only its holder settles
  it, and a lapsed lease lets another claim it again. A failure either sets it due later,
  or, when `retry_at_us` is None, makes it dead with the reason (kept, listed by `dead`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class StalePositions(RuntimeError):
    """The positions a fold was read from are no longer the store's: read them again."""


@dataclass(frozen=True)
class Person:
    """Someone of a tenant, as `PersonChanged` last said."""

    tenant: str
    user: str
    email: str
    role: str
    time_zone: str = "UTC"
    active: bool = True


@dataclass(frozen=True)
class Notification:
    """One person's copy of a notice. `id` is 0 until the store keeps it."""

    tenant: str
    user: str
    notice: str
    kind: str
    title: str
    created_us: int
    body: str = ""
    link: str = ""
    post: str = ""
    actor: str = ""
    id: int = 0
    read_us: int | None = None


@dataclass(frozen=True)
class Email:
    """A plain-text email to one person. `id` is 0 until the store keeps it."""

    tenant: str
    user: str
    to: str
    subject: str
    text: str
    message_id: str
    """Stable for a (notice, user): the same notification is the same message."""
    id: int = 0
    attempts: int = 0


@dataclass(frozen=True)
class Delivery:
    """What one notice means for one person: the inbox row and, when email is on, the
    email to send them."""

    notification: Notification
    email: Email | None = None


@dataclass(frozen=True)
class Fold:
    """What a batch of the log changes: people, and notifications to deliver."""

    people: Sequence[Person] = ()
    deliveries: Sequence[Delivery] = ()
    at_us: int = 0
    """When it was folded: its emails are due then."""


@dataclass(frozen=True)
class DeadEmail:
    """An email given up on, and why."""

    id: int
    tenant: str
    user: str
    to: str
    subject: str
    attempts: int
    error: str
    at_us: int


@dataclass(frozen=True)
class Page:
    """A person's notifications, newest first, and how many of theirs are unread."""

    notifications: list[Notification]
    unread: int
    more: bool = False


@dataclass(frozen=True)
class Settled:
    """How an email try ended: sent (`error` None), again later, or dead."""

    email: int
    error: str | None = None
    retry_at_us: int | None = None


@dataclass
class Applied:
    """What `apply` did: notifications kept, emails queued, duplicates skipped."""

    kept: int = 0
    emails: int = 0
    duplicates: int = 0
    made: list[Notification] = field(default_factory=list)


class NotificationStore(Protocol):
    """See the module docstring for the contract. Methods block (call them in a thread)."""

    def positions(self) -> dict[str, int]:
        """The last position folded in, per topic (a topic never folded is absent)."""
        ...

    def people(self, tenants: Sequence[str]) -> list[Person]:
        """Every person (active or not) of these tenants."""
        ...

    def apply(
        self,
        fold: Fold,
        reached: Mapping[str, int],
        read_from: Mapping[str, int],
        keep_per_user: int,
    ) -> Applied:
        """In one transaction: the people changes, each new delivery (inbox row, and its
        email), and the positions `reached`; `StalePositions` when the store's positions
        are no longer `read_from`."""
        ...

    def listing(
        self,
        tenant: str,
        user: str,
        *,
        unread_only: bool = False,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> Page:
        """The person's notifications, newest first (with `after`: those with a greater
        id, oldest first, for a stream), at most `limit`."""
        ...

    def latest(self, tenant: str, user: str) -> int:
        """The id of the person's newest notification, 0 when none."""
        ...

    def unread(self, tenant: str, user: str) -> int:
        """How many of the person's notifications are unread."""
        ...

    def mark_read(self, tenant: str, user: str, ids: Sequence[int] | None, now_us: int) -> int:
        """Mark these of the person's notifications read (all of them with None); answers
        how many changed. Ids that are not the person's are ignored."""
        ...

    def claim_emails(self, holder: str, now_us: int, lease_s: float, limit: int) -> list[Email]:
        """Up to `limit` due emails, made `holder`'s until the lease lapses; each
        claim counts as an attempt."""
        ...

    def settle_emails(self, holder: str, outcomes: Sequence[Settled], now_us: int) -> None:
        """Record how each held email's try ended; an email no longer held is left alone."""
        ...

    def dead(self, tenant: str | None = None, limit: int = 100) -> list[DeadEmail]:
        """Emails given up on, newest first (of one tenant, or all)."""
        ...

    def prune(self, read_before_us: int, settled_before_us: int) -> int:
        """Drop notifications read before `read_before_us` and emails sent or dead
        before `settled_before_us`; answers how many rows went."""
        ...

    def close(self) -> None: ...


class MailRejected(Exception):
    """The mail server refused the message for good (a 5xx): trying again will not help."""


class MailUnavailable(Exception):
    """The message could not be handed over now (no connection, a timeout, a 4xx): try
    again later."""


class Mailer(Protocol):
    """Sends one email. Contract: returns once the server accepted the message; raises
    `MailRejected` when it refused it for good, `MailUnavailable` when it may accept it
    later. Sending the same message twice (after an unknown outcome) sends it twice: its
    `Message-ID` is the same, which mail clients use to show it once."""

    async def send(self, email: Email) -> None: ...
