"""The folded views alerting reads, each kept in memory and advanced from the log
(`hubbub.eventlog.view.LogView`), never read from position 1 on a request path:

- `WatchesView`, `WebhooksView`: the active watches and webhooks, from `control`;
- `LastAlerts`: the minute of each watch's last alert, from `alerts` (the cooldown);
- `DeliveriesView`: the newest deliveries of each tenant, from `deliveries`.

`AlertViews` holds one of each for a process: `current` catches a view up (bounded)
before a read, so a change this process appended is visible to its next read.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

import msgspec
import structlog

from hubbub.analytics.alerts import ALERTS, Alert
from hubbub.eventlog.ports import EventLog
from hubbub.eventlog.view import LogView
from hubbub.kernel.events import (
    CONTROL,
    AlertRaised,
    Event,
    WatchChanged,
    WebhookChanged,
    WebhookDelivered,
)
from hubbub.settings import Settings

DELIVERIES: Final = "deliveries"
log = structlog.get_logger("hubbub.alerts")


class _Switchable(Protocol):
    @property
    def active(self) -> bool: ...

    @property
    def tenant(self) -> str: ...


Switchable = TypeVar("Switchable", bound=_Switchable)
View = TypeVar("View", bound=LogView)


class ActiveView(LogView, Generic[Switchable]):
    """The things of one kind switched on (and not since off) on the `control` topic,
    by name, in the order they were first switched on."""

    def __init__(
        self, event_log: EventLog, kind: type[Switchable], name: Callable[[Switchable], str]
    ) -> None:
        super().__init__(event_log, CONTROL)
        self._kind, self._name = kind, name
        self._active: dict[str, Switchable] = {}

    def get(self, name: str) -> Switchable | None:
        return self._active.get(name)

    def all(self) -> list[Switchable]:
        return list(self._active.values())

    def of_tenant(self, tenant: str) -> list[Switchable]:
        return [found for found in self._active.values() if found.tenant == tenant]

    def _fold(self, events: Iterable[Event]) -> int:
        changed = 0
        for event in events:
            if isinstance(event, self._kind):
                if event.active:
                    self._active[self._name(event)] = event
                else:
                    self._active.pop(self._name(event), None)
                changed += 1
        return changed


class WatchesView(ActiveView[WatchChanged]):
    """The active watches, by watch id."""

    what = "watches"

    def __init__(self, event_log: EventLog) -> None:
        super().__init__(event_log, WatchChanged, lambda change: change.watch)

    def watches_term(self, tenant: str, term: str) -> bool:
        """Whether `tenant` watches `term` (in `terms.term_key` form)."""
        return any(w.kind == "term" and w.target == term for w in self.of_tenant(tenant))


class WebhooksView(ActiveView[WebhookChanged]):
    """The active webhooks, by webhook id."""

    what = "webhooks"

    def __init__(self, event_log: EventLog) -> None:
        super().__init__(event_log, WebhookChanged, lambda change: change.webhook)


class LastAlerts(LogView):
    """The minute of each watch's last alert, from the `alerts` topic, so the cooldown
    holds across restarts (`forget_before` drops what no cooldown needs any more); and
    each tenant's newest `kept` alerts, for people to read."""

    what = "last alerts"

    def __init__(self, event_log: EventLog, kept: int = 200) -> None:
        super().__init__(event_log, ALERTS)
        self._last: dict[str, int] = {}
        self._kept = kept
        self._recent: dict[str, deque[Alert]] = {}

    def last(self, watch: str) -> int | None:
        return self._last.get(watch)

    def recent(self, tenant: str, limit: int) -> list[Alert]:
        """The tenant's newest alerts, newest first."""
        return list(itertools.islice(reversed(self._recent.get(tenant, ())), limit))

    def forget_before(self, minute: int) -> None:
        self._last = {watch: at for watch, at in self._last.items() if at >= minute}

    def _fold(self, events: Iterable[Event]) -> int:
        changed = 0
        for event in events:
            if isinstance(event, AlertRaised):
                try:
                    alert = msgspec.json.decode(event.message, type=Alert)
                except msgspec.DecodeError:
                    log.error("an alert on the log cannot be read", alert=event.id)
                    continue
                self._last[alert.watch] = max(alert.minute, self._last.get(alert.watch, 0))
                kept = self._recent.setdefault(alert.tenant, deque(maxlen=self._kept))
                kept.append(alert)
                changed += 1
        return changed


class DeliveriesView(LogView):
    """The newest `kept` deliveries of each tenant, from the `deliveries` topic."""

    what = "deliveries"

    def __init__(self, event_log: EventLog, kept: int) -> None:
        super().__init__(event_log, DELIVERIES)
        self._kept = kept
        self._order = itertools.count()  # log order, to merge tenants newest first
        self._tenants: dict[str, deque[tuple[int, WebhookDelivered]]] = {}

    def newest(
        self, *, limit: int, offset: int = 0, tenant: str | None = None
    ) -> list[WebhookDelivered]:
        """Up to `limit` deliveries, newest first, after skipping the `offset` newest;
        only `tenant`'s when given. Older ones than each tenant's newest `kept` are gone."""
        tenants = self._tenants.values() if tenant is None else [self._tenants.get(tenant, ())]
        newest_first = heapq.merge(*(reversed(kept) for kept in tenants), reverse=True)
        return [d for _, d in itertools.islice(newest_first, offset, offset + limit)]

    def _fold(self, events: Iterable[Event]) -> int:
        changed = 0
        for event in events:
            if isinstance(event, WebhookDelivered):
                kept = self._tenants.setdefault(event.tenant, deque(maxlen=self._kept))
                kept.append((next(self._order), event))
                changed += 1
        return changed


@dataclass(frozen=True)
class AlertViews:
    """One of each alerting view, for a process; `read_limit` bounds the records a read
    folds before it answers."""

    watches: WatchesView
    webhooks: WebhooksView
    last_alerts: LastAlerts
    deliveries: DeliveriesView
    read_limit: int = 10_000

    @classmethod
    def open(cls, event_log: EventLog, settings: Settings) -> AlertViews:
        return cls(
            WatchesView(event_log),
            WebhooksView(event_log),
            LastAlerts(event_log, settings.webhook_deliveries_kept),
            DeliveriesView(event_log, settings.webhook_deliveries_kept),
            settings.view_read_limit,
        )

    async def current(self, view: View) -> View:
        """`view`, caught up with the log (bounded by `read_limit`) for a read."""
        await view.fresh(self.read_limit)
        return view

    def named(self) -> dict[str, LogView]:
        """Every view, by name: what keeps each up is `view.follow(interval_s)`."""
        return {
            "watches": self.watches,
            "webhooks": self.webhooks,
            "last-alerts": self.last_alerts,
            "deliveries": self.deliveries,
        }


async def loaded(view: View) -> View:
    """`view` with the whole topic folded in (for a command, which starts empty)."""
    await view.catch_up()
    return view
