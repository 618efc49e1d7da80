"""Alert webhooks: each alert POSTed to its tenant's webhooks, signed, retried, logged.

- **Signed** as GitHub and Stripe sign theirs: the `Hubbub-Signature` header is
  `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the webhook's secret>`.
  A receiver recomputes it (`signature`) and rejects old timestamps to stop replays.
- **Only to public addresses:** the host is resolved and checked at each try, and the
  request goes to the address checked (`hubbub.kernel.destinations`). Redirects are
  not followed; no proxy from the environment is used.
- **Concurrent, and fair:** deliveries wait in a bounded retry queue (`RetryQueue`) and
  `concurrency` workers make their tries, at most one at a time per webhook, so a slow
  endpoint holds one worker and delays no other webhook. A failed try (a network error,
  a 5xx or a 429) goes back in the queue, due after an exponential backoff with jitter,
  up to `attempts` tries; a 4xx other than 429, a 3xx or a refused address is final.
- **Sealed at rest:** the secret travels in `WebhookChanged` sealed
  (`hubbub.kernel.sealing`), and is opened only to sign.
- **Logged:** each delivery's final outcome is a `WebhookDelivered` event on the
  `deliveries` topic (`hubbub webhook deliveries`), with the reason of a failure.

Delivery is at least once. The dispatcher reads the `alerts` topic as the consumer
group `webhooks` and commits a position only once every delivery of every alert up to
it is final and logged. After a restart it reads again the alerts after that position,
and skips the deliveries the `deliveries` topic already holds for them: a finished
delivery is not sent again, and one cut short by the restart is sent again (receivers
dedupe on the alert's id, in the body).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import httpx
import msgspec
import structlog

from hubbub.analytics.alerts import ALERTS, Alert
from hubbub.analytics.views import DELIVERIES, AlertViews
from hubbub.eventlog.ports import EventLog, Record
from hubbub.kernel.background import note_failure
from hubbub.kernel.clock import Clock, SystemClock
from hubbub.kernel.destinations import AddressRefused, Network, pinned, resolve
from hubbub.kernel.events import AlertRaised, WebhookChanged, WebhookDelivered
from hubbub.kernel.ids import event_id
from hubbub.kernel.sealing import SealError, SecretBox
from hubbub.settings import Settings

GROUP: Final = "webhooks"
_READ_PAGE: Final = 1000
_FETCH_PAGE: Final = 100
# An alert is stamped with the end of its minute, up to a minute after it was raised; the
# deliveries of an alert not yet committed are all later than this before its stamp.
_RESTART_MARGIN_US: Final = 5 * 60 * 1_000_000
log = structlog.get_logger("hubbub.webhooks")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How deliveries are made: tries, backoff, the time a try may take, how many run at
    once, how many may be in flight, and the networks allowed though not public."""

    attempts: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 10.0
    concurrency: int = 16
    queue_size: int = 1000
    allowed: Sequence[Network] = ()
    poll_s: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            attempts=settings.webhook_attempts, backoff_s=settings.webhook_backoff_s,
            timeout_s=settings.webhook_timeout_s, concurrency=settings.webhook_concurrency,
            queue_size=settings.webhook_queue_size,
            allowed=tuple(settings.webhook_allowed_networks),
        )  # fmt: skip

    def backoff(self, attempts_made: int) -> float:
        """Seconds before the next try, after `attempts_made` tries."""
        return self.backoff_s * 2.0 ** (attempts_made - 1) * random.uniform(0.8, 1.2)


@dataclass
class Delivery:
    """One alert to one webhook, and how its tries went so far."""

    position: int
    alert: AlertRaised
    hook: WebhookChanged
    attempts: int = 0
    status: int = 0
    error: str = ""
    due: float = 0.0
    order: int = 0

    def outcome(self, now_us: int) -> WebhookDelivered:
        alert, hook = self.alert, self.hook
        return WebhookDelivered(
            id=event_id(f"{alert.ts:016d}", f"{alert.id}/{hook.webhook}"), key=hook.tenant,
            ts=now_us, source="webhooks", tenant=hook.tenant,
            webhook=hook.webhook, alert=alert.id, status=self.status, attempts=self.attempts,
            error=self.error,
        )  # fmt: skip


class RetryQueue:
    """Deliveries waiting for their next try, taken by when it is due, at most one try
    in flight per webhook (`take` to `release`).

    Due times are read from `time.monotonic`, not an injected clock: they drive real
    waits on the event loop, which a fake clock would never end."""

    def __init__(self) -> None:
        self._waiting: list[Delivery] = []
        self._busy: set[str] = set()
        self._changed = asyncio.Condition()
        self._order = itertools.count()

    async def put(self, delivery: Delivery, delay_s: float = 0.0) -> None:
        delivery.due = time.monotonic() + delay_s
        delivery.order = next(self._order)
        async with self._changed:
            self._waiting.append(delivery)
            self._changed.notify_all()

    async def take(self) -> Delivery:
        """The delivery due first whose webhook has no try in flight, once it is due."""
        async with self._changed:
            while True:
                ready = [d for d in self._waiting if d.hook.webhook not in self._busy]
                first = min(ready, key=lambda d: (d.due, d.order), default=None)
                wait = None if first is None else first.due - time.monotonic()
                if first is not None and wait is not None and wait <= 0:
                    self._waiting.remove(first)
                    self._busy.add(first.hook.webhook)
                    return first
                with contextlib.suppress(TimeoutError):  # a delivery fell due
                    async with asyncio.timeout(wait):
                        await self._changed.wait()

    async def release(self, delivery: Delivery) -> None:
        """The webhook of `delivery` may have its next try."""
        async with self._changed:
            self._busy.discard(delivery.hook.webhook)
            self._changed.notify_all()


@dataclass
class Dispatcher:
    """Delivers the alerts of the log to their tenants' webhooks until cancelled."""

    event_log: EventLog
    views: AlertViews
    box: SecretBox
    policy: DeliveryPolicy = DeliveryPolicy()
    clock: Clock = field(default_factory=SystemClock)
    _queue: RetryQueue = field(default_factory=RetryQueue, init=False)
    _pending: dict[int, set[str]] = field(default_factory=dict, init=False)
    """Alert positions in log order, each with its webhooks not yet final."""
    _in_flight: int = field(default=0, init=False)
    _room: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _committing: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _final: int = field(default=0, init=False)
    """The last alert position up to which every delivery is final."""
    _committed: int = field(default=0, init=False)
    _finished: set[tuple[str, str]] = field(default_factory=set, init=False)
    """(alert id, webhook) of deliveries logged before a restart, not to send again."""

    async def run(self) -> None:
        """Deliver alerts as they come, until cancelled."""
        limits = httpx.Limits(max_keepalive_connections=0)  # each try connects, checked
        timeout = httpx.Timeout(self.policy.timeout_s)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
            await self._recover()
            async with asyncio.TaskGroup() as group:
                for _ in range(self.policy.concurrency):
                    group.create_task(self._work(client))
                group.create_task(self._admit())

    async def _recover(self) -> None:
        """Note the deliveries already logged for the alerts after the committed position."""
        while True:
            try:
                self._finished = await finished_deliveries(self.event_log)
                return
            except Exception as failure:
                log.exception("the delivery log cannot be read; retrying")
                note_failure(failure)
                await asyncio.sleep(self.policy.poll_s)

    async def _admit(self) -> None:
        """Fetch alerts while the queue has room, and queue their deliveries. Alerts
        fetched are queued even if a read fails meanwhile: they are retried, not lost."""
        fetched: deque[Record] = deque()
        while True:
            room = self.policy.queue_size - self._in_flight
            if not fetched and room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                if not fetched:
                    limit = min(room, _FETCH_PAGE)
                    fetched += await self.event_log.fetch(
                        GROUP, ALERTS, limit, wait=self.policy.poll_s
                    )
                if fetched:
                    await self.views.current(self.views.webhooks)
                while fetched:
                    await self._queue_deliveries(fetched[0])
                    fetched.popleft()
            except Exception as failure:  # a failed read must not stop the deliveries
                log.exception("alerts cannot be read; retrying")
                note_failure(failure)
                await asyncio.sleep(self.policy.poll_s)

    async def _queue_deliveries(self, record: Record) -> None:
        alert = record.event
        hooks = self._hooks_of(alert) if isinstance(alert, AlertRaised) else []
        self._pending[record.position] = {hook.webhook for hook in hooks}
        for hook in hooks:
            assert isinstance(alert, AlertRaised)  # no hooks otherwise
            self._in_flight += 1
            await self._queue.put(Delivery(record.position, alert, hook))
        await self._commit_finished()

    def _hooks_of(self, alert: AlertRaised) -> list[WebhookChanged]:
        """The webhooks of the alert's tenant it has not been delivered to yet."""
        try:
            tenant = msgspec.json.decode(alert.message, type=Alert).tenant
        except msgspec.DecodeError:
            log.error("an alert on the log cannot be read; not delivered", alert=alert.id)
            return []
        hooks = self.views.webhooks.of_tenant(tenant)
        done = {hook.webhook for hook in hooks if (alert.id, hook.webhook) in self._finished}
        self._finished -= {(alert.id, webhook) for webhook in done}
        return [hook for hook in hooks if hook.webhook not in done]

    async def _work(self, client: httpx.AsyncClient) -> None:
        while True:
            delivery = await self._queue.take()
            try:
                await self._try(client, delivery)
            except Exception as failure:  # one delivery's bug must not stop the worker
                log.exception("a webhook delivery failed", webhook=delivery.hook.webhook)
                note_failure(failure)
            finally:
                await self._queue.release(delivery)

    async def _try(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        delivery.attempts += 1
        retry = await attempt(client, delivery, self.box, self.policy, self.clock)
        if retry and delivery.attempts < self.policy.attempts:
            await self._queue.put(delivery, self.policy.backoff(delivery.attempts))
            return
        await self._finish(delivery)

    async def _finish(self, delivery: Delivery) -> None:
        """Log the outcome (until the log takes it), then commit what is final."""
        outcome = delivery.outcome(self.clock.now_us())
        while True:
            try:
                await self.event_log.append([outcome])
                break
            except Exception as failure:
                log.exception("a delivery cannot be logged; retrying", webhook=outcome.webhook)
                note_failure(failure)
                await asyncio.sleep(self.policy.poll_s)
        log.info(
            "webhook delivered", webhook=outcome.webhook, status=outcome.status,
            tries=outcome.attempts, error=outcome.error,
        )  # fmt: skip
        self._pending[delivery.position].discard(delivery.hook.webhook)
        self._in_flight -= 1
        self._room.set()
        await self._commit_finished()

    async def _commit_finished(self) -> None:
        """Commit the last alert position up to which every delivery is final. A failed
        commit is logged and made by the next call: a restart meanwhile only reads
        again alerts whose deliveries are logged, and skips them."""
        async with self._committing:  # commits in order: a later one never goes first
            while self._pending and not self._pending[next(iter(self._pending))]:
                self._final = next(iter(self._pending))
                del self._pending[self._final]
            if self._final > self._committed:
                try:
                    await self.event_log.commit(GROUP, ALERTS, self._final)
                    self._committed = self._final
                except Exception as failure:
                    log.exception("the alerts position cannot be committed; retrying later")
                    note_failure(failure)


async def attempt(
    client: httpx.AsyncClient,
    delivery: Delivery,
    box: SecretBox,
    policy: DeliveryPolicy,
    clock: Clock,
) -> bool:
    """Make one try of `delivery`, noting its status and error; whether to try again."""
    hook = delivery.hook
    try:
        secret = box.open(hook.secret)
    except SealError as failure:  # logged as a failed delivery, not retried
        delivery.status, delivery.error = 0, str(failure)
        return False
    body = delivery.alert.message.encode()
    headers = {
        "Content-Type": "application/json",
        "Hubbub-Signature": signature(secret, clock.now_us() // 1_000_000, body),
    }
    try:
        async with asyncio.timeout(policy.timeout_s):  # the whole try, however it dribbles
            status = await post(client, hook.url, body, headers, policy.allowed)
    except AddressRefused as refused:
        delivery.status, delivery.error = 0, f"refused: {refused}"
        return False
    except (httpx.HTTPError, TimeoutError, OSError) as failure:
        delivery.status, delivery.error = 0, f"{type(failure).__name__}: {failure}".strip()
        return True
    delivery.status = status
    delivery.error = _error_of(status)
    return status >= 500 or status == 429


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    allowed: Sequence[Network],
) -> int:
    """POST `body` to `url` at an address its host resolves to, every one checked;
    returns the status (the answer's body is not read)."""
    request = client.build_request("POST", url, content=body, headers=headers)
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    addresses = await resolve(request.url.host, port, allowed)
    response = await client.send(
        pinned(client, request, addresses[0]), stream=True, follow_redirects=False
    )
    await response.aclose()
    return response.status_code


def _error_of(status: int) -> str:
    if status < 300:
        return ""
    if status < 400:
        return f"HTTP {status}: redirects are not followed"
    return f"HTTP {status}"


async def finished_deliveries(event_log: EventLog) -> set[tuple[str, str]]:
    """(alert id, webhook) of the deliveries logged for alerts the group `webhooks` has
    not committed: the `deliveries` topic read back from its end, a page at a time, to
    a little before the first such alert was raised, not the whole topic."""
    committed = await event_log.committed(GROUP, ALERTS)
    first = await event_log.read(ALERTS, committed + 1, 1)
    if not first:
        return set()
    since = first[0].event.ts - _RESTART_MARGIN_US
    found: set[tuple[str, str]] = set()
    end = await _last_position(event_log, DELIVERIES)
    while end >= 1:
        start = max(1, end - _READ_PAGE + 1)
        records = await event_log.read(DELIVERIES, start, end - start + 1)
        for record in records:
            if isinstance(record.event, WebhookDelivered):
                found.add((record.event.alert, record.event.webhook))
        if records and records[0].event.ts < since:
            break
        end = start - 1
    return found


async def _last_position(event_log: EventLog, topic: str) -> int:
    stats = (await event_log.stats()).topics
    return next((t.last_position for t in stats if t.topic == topic), 0)


async def dispatch(
    event_log: EventLog,
    views: AlertViews,
    box: SecretBox,
    policy: DeliveryPolicy,
    clock: Clock | None = None,
) -> None:
    """Deliver alerts as they come, until cancelled."""
    await Dispatcher(event_log, views, box, policy, clock or SystemClock()).run()
