"""What the notifications role runs in the background.

- The fold (`catch_up`, kept running by `follow`): reads `control` (the people, from
  `PersonChanged`) and `notices` (`NoticeIssued`) past the positions kept with the
  store's content, resolves each notice to its people and hands the store, in one
  transaction, the people changes, one delivery per recipient (an inbox row, and an email
  in the outbox when email is on) and the positions reached. The people are folded first:
  notices are read once `control` is caught up, so a notice finds the people the log
  named before it. Killed at any moment, it resumes where the last transaction ended; a
  fold from positions that moved meanwhile (another replica) is refused and read again,
  so no notice reaches anyone twice.
- The postman (`send_emails`): claims due emails from the outbox with a lease and hands
  them to the `Mailer`; one that fails for now is due again after a backoff (doubling
  from `email_backoff_s`), one refused for good, or failing `email_attempts` times, is
  kept as dead with its reason, logged, and told to the log's dead-letter topic
  (`hubbub deadletter list`). Without a mailer (no SMTP host set) email is
  off: notifications reach the inbox only, as the role says when it starts.
- Retention (`keep_bounded`): read notifications older than `keep_read_s`, sent and dead
  emails older than that too, are dropped every `prune_every_s`.

Streams of this process are woken (`Arrivals`) when the fold kept something; a stream
served by another replica finds it at its next poll.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from typing import Final

import structlog
from prometheus_client import Counter

from hubbub.eventlog.follow import every
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.background import Background, note_failure
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import CONTROL, NOTICES, InputRejected, NoticeIssued, PersonChanged
from hubbub.kernel.tracing import consumer_span
from hubbub.notifications.ports import (
    Email,
    Fold,
    Mailer,
    MailRejected,
    NotificationStore,
    Settled,
    StalePositions,
)
from hubbub.notifications.service import Arrivals, EmailPolicy, plan

log = structlog.get_logger("hubbub.notifications")
EMAILS: Final = Counter(
    "hubbub_notifications_emails_total",
    "Notification emails by outcome: sent, retried (due again later), dead (given up).",
    ["outcome"],
)
DELIVERED: Final = Counter(
    "hubbub_notifications_delivered_total", "Notifications kept in people's inboxes."
)


@dataclass(frozen=True)
class NotificationPolicy:
    """The worker's tunables (settings `HUBBUB_NOTIFICATIONS_*`, `HUBBUB_EMAIL_*`)."""

    email: EmailPolicy | None = None
    """How emails are written; None: email is off."""
    batch: int = 1000
    interval_s: float = 0.5
    keep_per_user: int = 500
    keep_read_s: float = 30 * 86400.0
    prune_every_s: float = 3600.0
    email_attempts: int = 5
    email_backoff_s: float = 30.0
    email_lease_s: float = 120.0
    email_batch: int = 20
    email_interval_s: float = 1.0


async def catch_up(
    store: NotificationStore,
    event_log: EventLog,
    policy: NotificationPolicy,
    clock: Clock,
    arrivals: Arrivals | None = None,
) -> int:
    """Fold everything the log holds past the stored positions; returns the records read."""
    folded = 0
    while True:
        positions = await asyncio.to_thread(store.positions)
        # The notices are read before the people, so a person appended before a notice
        # (as the gateway does before publishing can address them) is read with it; and
        # folded only once the people are caught up.
        notices = await event_log.read(NOTICES, positions.get(NOTICES, 0) + 1, policy.batch)
        control = await event_log.read(CONTROL, positions.get(CONTROL, 0) + 1, policy.batch)
        if len(control) == policy.batch:
            notices = []
        if not control and not notices:
            return folded
        people = [r.event for r in control if isinstance(r.event, PersonChanged)]
        issued = [r.event for r in notices if isinstance(r.event, NoticeIssued)]
        reached = {r.topic: r.position for r in (*control, *notices)}
        known = await asyncio.to_thread(store.people, [n.tenant for n in issued])
        changed, deliveries = plan(people, issued, known, policy.email)
        try:
            with consumer_span("notifications fold", (r.event.trace for r in notices)):
                applied = await asyncio.to_thread(
                    store.apply, Fold(changed, deliveries, clock.now_us()), reached, positions,
                    policy.keep_per_user,
                )  # fmt: skip
        except StalePositions as error:
            log.info("positions moved under the worker; folding on from them", why=str(error))
            continue
        folded += len(control) + len(notices)
        if applied.kept:
            DELIVERED.inc(applied.kept)
            log.info("notifications kept", kept=applied.kept, emails=applied.emails,
                     duplicates=applied.duplicates)  # fmt: skip
            if arrivals is not None:
                arrivals.notify()


async def send_emails(
    store: NotificationStore,
    mailer: Mailer,
    policy: NotificationPolicy,
    clock: Clock,
    holder: str,
    event_log: EventLog | None = None,
) -> int:
    """Send the emails due now, all at once; returns how many were tried. Each one given
    up on is also told to the log's dead-letter topic (when `event_log` is given), before
    it is settled: a crash between the two tries it again and tells the same event, which
    the log drops."""
    now_us = clock.now_us()
    claimed = await asyncio.to_thread(
        store.claim_emails, holder, now_us, policy.email_lease_s, policy.email_batch
    )
    if not claimed:
        return 0
    outcomes = await asyncio.gather(*(_try(mailer, e, policy, clock) for e in claimed))
    dead = [
        rejected(email, outcome.error, now_us)
        for email, outcome in zip(claimed, outcomes, strict=True)
        if outcome.error is not None and outcome.retry_at_us is None
    ]
    if dead and event_log is not None:
        await event_log.append(dead)
    await asyncio.to_thread(store.settle_emails, holder, outcomes, clock.now_us())
    return len(claimed)


def rejected(email: Email, reason: str, now_us: int) -> InputRejected:
    """A dead email, for the dead-letter topic: its Message-ID and why it was given up on;
    who it was for by id (the address and the text stay in the outbox)."""
    return InputRejected(
        id=f"email-dead-{email.id}-{email.message_id}", key=email.tenant, ts=now_us,
        source="notifications", raw=email.message_id.encode(),
        reason=f"the email to user {email.user} was given up on: {reason}",
        detail=f"notifications outbox email {email.id}, tenant {email.tenant}",
    )  # fmt: skip


async def _try(mailer: Mailer, email: Email, policy: NotificationPolicy, clock: Clock) -> Settled:
    """One try of one email, and what it means: sent, again later, or dead."""
    try:
        await mailer.send(email)
    except MailRejected as error:
        return _dead(email, f"refused: {error}")
    except Exception as error:  # MailUnavailable, or a fault of the mailer: try again
        if email.attempts >= policy.email_attempts:
            return _dead(email, f"failed {email.attempts} times, last: {error}")
        delay_s = policy.email_backoff_s * 2 ** (email.attempts - 1)
        EMAILS.labels("retried").inc()
        log.warning("an email will be tried again", email=email.id, attempts=email.attempts,
                    in_s=delay_s, why=str(error))  # fmt: skip
        return Settled(email.id, str(error), clock.now_us() + int(delay_s * 1e6))
    EMAILS.labels("sent").inc()
    return Settled(email.id)


def _dead(email: Email, reason: str) -> Settled:
    EMAILS.labels("dead").inc()
    log.error("an email was given up on", email=email.id, tenant=email.tenant, user=email.user,
              attempts=email.attempts, reason=reason)  # fmt: skip
    return Settled(email.id, reason, None)


async def deliver_emails(
    store: NotificationStore,
    mailer: Mailer,
    policy: NotificationPolicy,
    clock: Clock,
    event_log: EventLog | None = None,
) -> None:
    """Send due emails every `email_interval_s` (at once again while there are more)."""
    holder = f"{socket.gethostname()}:{os.getpid()}"
    while True:
        try:
            tried = await send_emails(store, mailer, policy, clock, holder, event_log)
        except Exception as failure:  # the store did not answer: the next tick tries again
            log.exception("emails could not be sent")
            note_failure(failure)
            tried = 0
        if tried < policy.email_batch:
            await asyncio.sleep(policy.email_interval_s)


async def keep_bounded(store: NotificationStore, policy: NotificationPolicy, clock: Clock) -> None:
    """Drop read notifications and settled emails past `keep_read_s`, now and every
    `prune_every_s`."""

    async def prune() -> None:
        before = clock.now_us() - int(policy.keep_read_s * 1e6)
        dropped = await asyncio.to_thread(store.prune, before, before)
        if dropped:
            log.info("old notifications dropped", rows=dropped)

    await every(policy.prune_every_s, prune, what="dropping old notifications")


def run(
    background: Background,
    *,
    store: NotificationStore,
    event_log: EventLog,
    mailer: Mailer | None,
    policy: NotificationPolicy,
    clock: Clock,
    arrivals: Arrivals,
) -> None:
    """Start the fold, the postman (when email is on) and retention under `background`."""
    background.start(
        "notifications",
        lambda: every(
            policy.interval_s,
            lambda: catch_up(store, event_log, policy, clock, arrivals),
            what="folding notices into notifications",
        ),
    )
    background.start("notifications-retention", lambda: keep_bounded(store, policy, clock))
    if mailer is None or policy.email is None:
        log.info("email is off (HUBBUB_SMTP_HOST is not set): notifications go to the inbox only")
        return
    log.info("notifications are emailed too", sender=policy.email.sender)
    background.start("emails", lambda: deliver_emails(store, mailer, policy, clock, event_log))
