"""Alert webhooks: each alert POSTed to its tenant's webhooks, signed, retried, logged.

- **Signed** as GitHub and Stripe sign theirs: the `Hubbub-Signature` header is
  `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the webhook's secret>`.
  A receiver recomputes it (`signature`) and rejects old timestamps to stop replays.
- **Retried** with exponential backoff and jitter on a network error or a 5xx/429,
  up to `attempts` tries; a 4xx other than 429 is final.
- **Sealed at rest:** the secret travels in `WebhookChanged` sealed
  (`hubbub.kernel.sealing`), and is opened only to sign.
- **Logged:** each delivery's outcome is a `WebhookDelivered` event on the `deliveries`
  topic (`hubbub webhook deliveries`).

Webhooks are added and removed through the `control` topic (`WebhookChanged`). The
dispatcher reads the `alerts` topic as the consumer group `webhooks`, committing after
each alert, so a restart resumes after the last alert it finished.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from typing import Final

import httpx
import msgspec
import structlog

from hubbub.analytics.alerts import ALERTS, Alert, fold_active
from hubbub.eventlog.port import EventLog
from hubbub.kernel.events import CONTROL, AlertRaised, WebhookChanged, WebhookDelivered
from hubbub.kernel.ids import event_id
from hubbub.kernel.sealing import SealError, SecretBox

GROUP: Final = "webhooks"
DELIVERIES: Final = "deliveries"
_READ_PAGE: Final = 1000
log = structlog.get_logger("hubbub.webhooks")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def check_url(url: str) -> str:
    """`url`, if alerts can be POSTed to it; otherwise `ValueError` saying what to give."""
    if not url.startswith(("https://", "http://")):
        raise ValueError("the url must start with https:// or http://")
    return url


async def read_webhooks(event_log: EventLog) -> dict[str, WebhookChanged]:
    """The active webhooks, by id, from the control topic."""
    events = (r.event for r in await event_log.read(CONTROL, 1, 10**9))
    return fold_active(events, WebhookChanged, lambda change: change.webhook)


async def read_deliveries(
    event_log: EventLog, *, limit: int, offset: int = 0, tenant: str | None = None
) -> list[WebhookDelivered]:
    """Up to `limit` deliveries, newest first, after skipping the `offset` newest; only
    `tenant`'s when given. The topic is read back from its end a page at a time, so an
    answer costs what it skips and returns, not the whole log."""
    wanted = offset + limit
    found: list[WebhookDelivered] = []
    end = await _last_position(event_log, DELIVERIES)
    while end >= 1 and len(found) < wanted:
        start = max(1, end - _READ_PAGE + 1)
        records = await event_log.read(DELIVERIES, start, end - start + 1)
        found += [
            r.event
            for r in reversed(records)
            if isinstance(r.event, WebhookDelivered) and tenant in (None, r.event.tenant)
        ]
        end = start - 1
    return found[offset:wanted]


async def _last_position(event_log: EventLog, topic: str) -> int:
    stats = (await event_log.stats()).topics
    return next((t.last_position for t in stats if t.topic == topic), 0)


async def deliver(
    client: httpx.AsyncClient,
    hook: WebhookChanged,
    body: bytes,
    box: SecretBox,
    *,
    attempts: int = 5,
    backoff_s: float = 0.5,
) -> tuple[int, int, str]:
    """POST `body` to the hook, signed with its secret (opened with `box`), retrying;
    returns (status or 0, attempts made, error)."""
    status, error = 0, ""
    try:
        secret = box.open(hook.secret)
    except SealError as failure:  # logged as a failed delivery, not retried
        return 0, 0, str(failure)
    for attempt in range(1, attempts + 1):
        now = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Hubbub-Signature": signature(secret, now, body),
        }
        try:
            response = await client.post(hook.url, content=body, headers=headers)
            status, error = response.status_code, ""
            if status < 500 and status != 429:
                return status, attempt, "" if status < 300 else f"HTTP {status}"
            error = f"HTTP {status}"
        except httpx.HTTPError as failure:
            status, error = 0, f"{type(failure).__name__}: {failure}"
        if attempt < attempts:
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1) * random.uniform(0.8, 1.2))
    return status, attempts, error


async def dispatch_once(
    event_log: EventLog,
    client: httpx.AsyncClient,
    box: SecretBox,
    *,
    attempts: int = 5,
    backoff_s: float = 0.5,
) -> int:
    """Deliver every alert not yet delivered; returns how many alerts were handled."""
    handled = 0
    while records := await event_log.fetch(GROUP, ALERTS, 100):
        hooks = await read_webhooks(event_log)
        for record in records:
            event = record.event
            if not isinstance(event, AlertRaised):
                continue
            alert = msgspec.json.decode(event.message, type=Alert)
            body = event.message.encode()
            outcomes = []
            for hook in (h for h in hooks.values() if h.tenant == alert.tenant):
                status, made, error = await deliver(
                    client, hook, body, box, attempts=attempts, backoff_s=backoff_s
                )
                outcomes.append(
                    WebhookDelivered(
                        id=event_id(f"{event.ts:016d}", f"{event.id}/{hook.webhook}"),
                        key=hook.tenant, ts=time.time_ns() // 1000, source="webhooks",
                        tenant=hook.tenant, webhook=hook.webhook, alert=event.id,
                        status=status, attempts=made, error=error,
                    )
                )  # fmt: skip
                log.info("webhook delivered", webhook=hook.webhook, status=status, tries=made)
            if outcomes:
                await event_log.append(outcomes)
            await event_log.commit(GROUP, ALERTS, record.position)
            handled += 1
    return handled


async def dispatch(event_log: EventLog, box: SecretBox, interval_s: float = 1.0) -> None:
    """Deliver alerts as they come, until cancelled."""
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            try:
                await dispatch_once(event_log, client, box)
            except Exception:
                log.exception("webhook dispatch failed; retrying")
            await asyncio.sleep(interval_s)
