"""Watches and the alerts they raise.

A watch is a tenant's interest in a hashtag, a page, a term or one of its listening
searches (the volume of its matches). Watches are changed through the log's `control`
topic (`WatchChanged`), so every process sees the same list by folding that topic
(`views.WatchesView`), and the CLI needs no access to the analytics store.

Every `alert_check_interval_s` the monitor takes, for each watch, the last hour (up to
the current minute) and the same hour on each of the 7 days before (Socialmetrix-style:
a day against the week), asks the spike detector, and appends an `AlertRaised` to the
log for each spike. The cooldown counts from the watch's last alert in the log (folded
by `views.LastAlerts`), so a restart does not alert twice. Window, baseline, minimum
volume, cooldown and statistic are settings (`AlertPolicy.from_settings`); the
sensitivity is each watch's own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import msgspec
import structlog

from hubbub.analytics import service
from hubbub.analytics.ports import RollupStore
from hubbub.analytics.rollups import search_key
from hubbub.analytics.spikes import SENSITIVITY, Rule, Spike, Statistic, detect
from hubbub.analytics.terms import term_key
from hubbub.eventlog.follow import every
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import AlertRaised, WatchChanged
from hubbub.kernel.ids import event_id
from hubbub.settings import Settings

if TYPE_CHECKING:
    from hubbub.analytics.views import AlertViews

ALERTS: Final = "alerts"
log = structlog.get_logger("hubbub.alerts")


@dataclass(frozen=True)
class AlertPolicy:
    """How watches are judged: the recent `window_minutes` against the same window on
    each of the `baseline_days` before, with the detector's volume, ratio and statistic."""

    window_minutes: int = 60
    baseline_days: int = 7
    min_volume: int = 20
    min_ratio: float = 1.5
    cooldown_minutes: int = 6 * 60
    statistic: Statistic = "mean"

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertPolicy:
        return cls(
            window_minutes=settings.spike_window_minutes,
            baseline_days=settings.spike_baseline_days,
            min_volume=settings.spike_min_volume,
            min_ratio=settings.spike_min_ratio,
            cooldown_minutes=settings.spike_cooldown_minutes,
            statistic=settings.spike_statistic,
        )

    def rule(self, sensitivity: str) -> Rule:
        return Rule(
            k=SENSITIVITY[sensitivity], baseline=self.baseline_days, min_volume=self.min_volume,
            min_ratio=self.min_ratio, cooldown=0, statistic=self.statistic,
        )  # fmt: skip


class Alert(msgspec.Struct, frozen=True):
    """What an `AlertRaised` message carries, as JSON."""

    tenant: str
    watch: str
    kind: str
    target: str
    minute: int
    count: int
    usual: float
    threshold: float


_COUNTED: Final = {
    "hashtag": ("tag", "posts"),
    "page": ("page", "posts + mentions_received"),
    "term": ("term", "posts"),
    "search": ("search", "posts"),
}
"""What a watch counts: (rollup, counted expression); a page's own posts and mentions, a
search's matches."""


def check(
    store: RollupStore, watch: WatchChanged, now: int, policy: AlertPolicy = AlertPolicy()
) -> Spike | None:
    """The spike of the window ending at minute `now`, if it is one, against the same
    window of the days before."""
    days, width = policy.baseline_days, policy.window_minutes
    prefix, counted = _COUNTED[watch.kind]
    target = counted_key(watch)
    counts = [  # oldest day first; the last is the window just ended
        service.total(store.query, prefix, target, counted, end - width, end)
        for end in range(now - days * 1440, now + 1, 1440)
    ]
    spikes = detect(counts, policy.rule(watch.sensitivity))
    return spikes[0] if spikes else None


async def monitor_once(
    store: RollupStore,
    event_log: EventLog,
    views: AlertViews,
    now: int,
    policy: AlertPolicy = AlertPolicy(),
) -> list[Alert]:
    """Check every watch at minute `now`; append and return the alerts raised. A watch
    alerted less than the cooldown ago (`views.last_alerts`) is not checked."""
    watches = await views.current(views.watches)
    last_alerts = await views.current(views.last_alerts)
    last_alerts.forget_before(now - policy.cooldown_minutes + 1)
    raised = []
    for watch in watches.all():
        if last_alerts.last(watch.watch) is not None:
            continue
        try:
            spike = await asyncio.to_thread(check, store, watch, now, policy)
        except Exception:  # one watch's failure must not keep the others from alerting
            log.exception("a watch could not be checked", watch=watch.watch)
            continue
        if spike is not None:
            raised.append(
                Alert(watch.tenant, watch.watch, watch.kind, watch.target, now,
                      spike.count, spike.usual, spike.threshold)
            )  # fmt: skip
    if raised:
        await _append_alerts(event_log, raised, now)
    return raised


async def _append_alerts(event_log: EventLog, raised: list[Alert], now: int) -> None:
    ts = now * 60_000_000
    await event_log.append(
        [
            AlertRaised(
                id=event_id(f"{ts:016d}", f"{alert.watch}@{now}"),
                key=alert.tenant,
                ts=ts,
                source="analytics",
                name=f"spike:{alert.kind}:{alert.target}",
                message=msgspec.json.encode(alert).decode(),
            )
            for alert in raised
        ]
    )
    for alert in raised:
        log.info("spike", **msgspec.structs.asdict(alert))


async def monitor(
    store: RollupStore,
    event_log: EventLog,
    views: AlertViews,
    clock: Clock,
    interval_s: float = 30.0,
    policy: AlertPolicy = AlertPolicy(),
) -> None:
    """Check the watches every `interval_s` until cancelled (well within a minute); a
    failed check is logged and does not stop the next ones."""

    async def check() -> None:
        # The hour up to the end of the current minute: a spike shows at once.
        await monitor_once(store, event_log, views, clock.now_us() // 60_000_000 + 1, policy)

    await every(interval_s, check, what="the spike check")


def counted_key(watch: WatchChanged) -> str:
    """The rollup key a watch reads: its target (`watch_target`); for a search, the
    watch's tenant's search of that id (`rollups.search_key`), so a watch never reads
    another tenant's search."""
    if watch.kind == "search":
        return search_key(watch.tenant, watch.target)
    return watch_target(watch.kind, watch.target)


def watch_target(kind: str, target: str) -> str:
    """What a watch of `kind` matches: a hashtag as posts carry it (no `#`, lower case),
    a term by its words (`InvalidTerm` if it has none); a page or a search (its id) as
    given."""
    if kind == "term":
        return term_key(target)
    return target.lstrip("#").lower() if kind == "hashtag" else target
