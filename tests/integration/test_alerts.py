"""Watches set from the CLI, checked against the rollups, raising alerts on the log, and
the alerts delivered to webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Final

import msgspec
import pytest

from hubbub.analytics.alerts import ALERTS, Alert, monitor_once
from hubbub.analytics.duckdb import DuckDBRollups
from hubbub.analytics.views import AlertViews
from hubbub.analytics.webhooks import GROUP, DeliveryPolicy, Dispatcher, signature
from hubbub.analytics.worker import catch_up
from hubbub.bootstrap import build_platform, open_secret_box
from hubbub.eventlog.ports import EventLog
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.destinations import ALLOWED_HINT
from hubbub.kernel.events import AlertRaised, Event, PostPublished, WatchChanged, WebhookDelivered
from hubbub.settings import Settings
from tests.conftest import serving, until
from tests.support.cli import cli
from tests.support.receiver import Receiver

CLOCK = SystemClock()

NOW = 29_600_000  # an epoch minute (2026-04-12); checks run at the end of the hour before it


def posts(tag: str, per_day: list[int]) -> list[Event]:
    """`per_day[d]` posts in the hour before NOW, d days ago (the last entry: today)."""
    events: list[Event] = []
    for day, count in enumerate(reversed(per_day)):
        for n in range(count):
            minute = NOW - 1 - day * 1440 - n % 60
            events.append(
                PostPublished(
                    id=f"{tag}-{day}-{n}", key="a", ts=minute * 60_000_000, source="jetstream",
                    post=f"{tag}/{day}/{n}", author=f"did:plc:{n}", text="…", tags=[tag],
                )
            )  # fmt: skip
    return events


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def test_a_watched_spike_raises_one_alert_and_a_quiet_watch_none(data_dir: Path) -> None:
    log = SqliteEventLog(data_dir / "eventlog.db")
    store = DuckDBRollups(data_dir / "analytics.duckdb")
    views = AlertViews.open(log, Settings(data_dir=data_dir))
    try:
        await log.append(posts("quake", [9, 12, 10, 11, 8, 10, 12, 140]))
        await log.append(posts("coffee", [30, 28, 33, 31, 29, 30, 32, 34]))
        await catch_up(store, log, clock=CLOCK)
        quake = await cli(data_dir, "watch", "add", "--hashtag", "#Quake", "--tenant", "newsroom")
        await cli(data_dir, "watch", "add", "--hashtag", "coffee", "--sensitivity", "high")
        search = await cli(data_dir, "watch", "add", "--search", "0a1b2c3d4e5f6a7b")
        watches = json.loads(await cli(data_dir, "watch", "list", "--json"))
        assert {(w["kind"], w["target"], w["tenant"]) for w in watches} == {
            ("hashtag", "quake", "newsroom"), ("hashtag", "coffee", "default"),
            ("search", "0a1b2c3d4e5f6a7b", "default"),
        }  # fmt: skip
        await cli(data_dir, "watch", "remove", search)  # a quiet search: no alert either way

        (alert,) = await monitor_once(store, log, views, NOW)
        assert (alert.watch, alert.tenant, alert.target, alert.count) == (
            quake, "newsroom", "quake", 140,
        )  # fmt: skip
        assert alert.usual == pytest.approx(72 / 7)  # the mean of the 7 days before
        (record,) = await log.read(ALERTS, 1, 10)
        assert isinstance(record.event, AlertRaised)
        assert msgspec.json.decode(record.event.message, type=Alert) == alert

        assert await monitor_once(store, log, views, NOW + 1) == []  # the cooldown holds
        restarted = AlertViews.open(log, Settings(data_dir=data_dir))
        assert await monitor_once(store, log, restarted, NOW + 2) == []  # and across restarts
        await cli(data_dir, "watch", "remove", quake)
        assert [
            w["target"] for w in json.loads(await cli(data_dir, "watch", "list", "--json"))
        ] == ["coffee"]
    finally:
        store.close()
        await log.close()


async def test_a_watch_made_more_sensitive_alerts_on_a_rise_it_let_pass(data_dir: Path) -> None:
    log = SqliteEventLog(data_dir / "eventlog.db")
    store = DuckDBRollups(data_dir / "analytics.duckdb")
    views = AlertViews.open(log, Settings(data_dir=data_dir))
    try:
        await log.append(posts("vote", [10, 30, 10, 30, 10, 30, 20, 36]))  # 1.8 times usual
        await catch_up(store, log, clock=CLOCK)
        vote = await cli(data_dir, "watch", "add", "--hashtag", "vote", "--sensitivity", "low")
        assert await monitor_once(store, log, views, NOW) == []  # within 3 deviations
        said = await cli(data_dir, "watch", "change", vote, "--sensitivity", "high")
        assert said == f"watch {vote} is high sensitivity now"
        (alert,) = await monitor_once(store, log, views, NOW)  # beyond 1.5 of them
        assert (alert.watch, alert.count) == (vote, 36)
        (listed,) = json.loads(await cli(data_dir, "watch", "list", "--json"))
        assert (listed["watch"], listed["sensitivity"]) == (vote, "high")
    finally:
        store.close()
        await log.close()


LOCAL: Final = DeliveryPolicy(
    backoff_s=0.01, poll_s=0.05, allowed=(ipaddress.ip_network("127.0.0.0/8"),)
)
"""Deliveries as configured, but quick to retry, and allowed to reach the test's receivers."""


@asynccontextmanager
async def dispatching(
    data_dir: Path, policy: DeliveryPolicy = LOCAL
) -> AsyncIterator[tuple[EventLog, AlertViews]]:
    """A webhook dispatcher running, on a log of its own (as a process would have), until
    the block ends (as a process would be stopped)."""
    settings = Settings(data_dir=data_dir)
    log = SqliteEventLog(data_dir / "eventlog.db")
    views = AlertViews.open(log, settings)
    task = asyncio.create_task(Dispatcher(log, views, open_secret_box(settings), policy).run())
    try:
        yield log, views
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await log.close()


async def deliveries(
    views: AlertViews, count: int, within_s: float = 5.0
) -> list[WebhookDelivered]:
    """The delivery log, oldest first, once it holds `count` deliveries."""
    deadline = time.monotonic() + within_s
    while True:
        found = (await views.current(views.deliveries)).newest(limit=100)
        if len(found) >= count:
            return list(reversed(found))
        assert time.monotonic() < deadline, f"{len(found)} of {count} deliveries logged"
        await asyncio.sleep(0.01)


async def raise_alert(data_dir: Path, tenant: str, n: int = 0) -> AlertRaised:
    alert = Alert(tenant, f"w{n}", "hashtag", "quake", NOW + n, 140, 10.0, 20.0)
    raised = AlertRaised(
        id=f"alert-{tenant}-{n}", key=tenant, ts=(NOW + n) * 60_000_000, source="analytics",
        name="spike:hashtag:quake", message=msgspec.json.encode(alert).decode(),
    )  # fmt: skip
    log = SqliteEventLog(data_dir / "eventlog.db")
    try:
        await log.append([raised])
    finally:
        await log.close()
    return raised


@pytest.fixture
def local_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI may add webhooks on loopback, where the tests' receivers listen."""
    monkeypatch.setenv("HUBBUB_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")


async def add_webhook(data_dir: Path, url: str, tenant: str) -> str:
    """Add a webhook with the CLI; returns its secret."""
    added = await cli(data_dir, "webhook", "add", "--url", url, "--tenant", tenant)
    return added.split("secret")[1].split()[0]


@pytest.mark.usefixtures("local_webhooks")
async def test_an_alert_reaches_its_tenants_webhook_signed_after_retries(data_dir: Path) -> None:
    receiver = Receiver(failures=2)
    log = SqliteEventLog(data_dir / "eventlog.db")
    store = DuckDBRollups(data_dir / "analytics.duckdb")
    try:
        async with serving(receiver) as url:
            await log.append(posts("quake", [9, 12, 10, 11, 8, 10, 12, 140]))
            await catch_up(store, log, clock=CLOCK)
            await cli(data_dir, "watch", "add", "--hashtag", "quake", "--tenant", "newsroom")
            secret = await add_webhook(data_dir, f"{url}/hook", "newsroom")
            await add_webhook(data_dir, "http://127.0.0.1:9/other-tenant", "default")
            views = AlertViews.open(log, Settings(data_dir=data_dir))
            (alert,) = await monitor_once(store, log, views, NOW)

            async with dispatching(data_dir) as (_, delivery_views):
                (delivery,) = await deliveries(delivery_views, 1)
            async with dispatching(data_dir) as (restarted, _):  # delivered once
                await asyncio.sleep(0.3)
                assert await restarted.committed(GROUP, ALERTS) == 1
    finally:
        store.close()
        await log.close()

    *failed, (body, signed) = receiver.received
    assert len(failed) == 2
    assert msgspec.json.decode(body, type=Alert) == alert
    stamp = int(signed.split(",")[0].removeprefix("t="))
    assert abs(stamp - time.time()) < 60
    assert signed == signature(secret, stamp, body)
    assert (delivery.tenant, delivery.status, delivery.attempts) == ("newsroom", 204, 3)
    (logged,) = json.loads(await cli(data_dir, "webhook", "deliveries", "--json"))
    assert (logged["tenant"], logged["status"], logged["attempts"]) == ("newsroom", 204, 3)


@pytest.mark.usefixtures("local_webhooks")
async def test_a_slow_webhook_does_not_delay_another_tenants_delivery(data_dir: Path) -> None:
    slow, quick = Receiver(delay_s=10), Receiver()
    async with serving(slow) as slow_url, serving(quick) as quick_url:
        await add_webhook(data_dir, f"{slow_url}/hook", "slow")
        await add_webhook(data_dir, f"{quick_url}/hook", "quick")
        await raise_alert(data_dir, "slow")  # first in the log
        await raise_alert(data_dir, "quick")
        started = time.monotonic()
        async with dispatching(data_dir, replace(LOCAL, timeout_s=15)) as (log, views):
            first, second = await deliveries(views, 2, within_s=15)  # the slow one: 10 s

            assert quick.times[0] - started < 1.0
            assert (first.tenant, first.status) == ("quick", 204)
            assert (second.tenant, second.status) == ("slow", 204)

            async def both_committed() -> bool:  # committed just after it is logged
                return await log.committed(GROUP, ALERTS) == 2

            await until(both_committed)


@pytest.mark.usefixtures("local_webhooks")
async def test_a_restart_neither_loses_nor_sends_again_a_delivery(data_dir: Path) -> None:
    done, failing = Receiver(), Receiver(failures=1)
    async with serving(done) as done_url, serving(failing) as failing_url:
        await add_webhook(data_dir, f"{done_url}/hook", "newsroom")
        await add_webhook(data_dir, f"{failing_url}/hook", "newsroom")
        await raise_alert(data_dir, "newsroom")
        slow_retry = replace(LOCAL, backoff_s=60)
        async with dispatching(data_dir, slow_retry) as (log, views):
            (finished,) = await deliveries(views, 1)  # the other waits for its retry
            await until(lambda: asyncio.sleep(0, len(failing.received) == 1))
            assert await log.committed(GROUP, ALERTS) == 0  # not every delivery is final
        # Stopped with one delivery made and one not: a new process makes the other.
        async with dispatching(data_dir) as (log, views):
            first, second = await deliveries(views, 2)
            await until(lambda: log.committed(GROUP, ALERTS))

    assert first == finished
    assert (second.status, second.attempts) == (204, 1)
    assert (len(done.received), len(failing.received)) == (1, 2)


async def test_a_webhook_that_resolves_to_a_refused_address_is_not_called(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver()
    async with serving(receiver) as url:
        monkeypatch.setenv("HUBBUB_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
        await add_webhook(data_dir, f"{url}/hook", "newsroom")
        await add_webhook(data_dir, url.replace("127.0.0.1", "2130706433"), "newsroom")
        await raise_alert(data_dir, "newsroom")
        # The operator no longer allows loopback: every delivery checks again.
        async with dispatching(data_dir, replace(LOCAL, allowed=())) as (_, views):
            refused = await deliveries(views, 2)

    assert receiver.received == []
    assert [(d.status, d.attempts) for d in refused] == [(0, 1), (0, 1)]
    assert {d.error for d in refused} == {
        "refused: 127.0.0.1 is a loopback address: " + ALLOWED_HINT,
        "refused: 2130706433 (127.0.0.1) is a loopback address: " + ALLOWED_HINT,
    }


async def test_a_spike_starting_now_is_alerted_within_a_minute(tmp_path: Path) -> None:
    platform = await build_platform(Settings(data_dir=tmp_path, alert_check_interval_s=1))
    now = int(time.time() // 60)
    usual = [
        PostPublished(
            id=f"usual-{day}-{n}", key="a", ts=(now - day * 1440 - n) * 60_000_000,
            source="jetstream", post=f"usual/{day}/{n}", author="did:plc:x", text="…",
            tags=["quake"],
        )
        for day in range(1, 8) for n in range(10)
    ]  # fmt: skip
    watch = WatchChanged(
        id="w", key="newsroom", ts=0, source="test", tenant="newsroom", watch="w1",
        kind="hashtag", target="quake",
    )  # fmt: skip
    try:
        await platform.event_log.append([*usual, watch])
        await platform.analytics()
        await asyncio.sleep(1.5)  # a check of the quiet hour: no alert
        assert await platform.event_log.read(ALERTS, 1, 10) == []
        started = time.monotonic()
        burst = [
            PostPublished(
                id=f"burst-{n}", key="a", ts=time.time_ns() // 1000, source="jetstream",
                post=f"burst/{n}", author=f"did:plc:{n}", text="…", tags=["quake"],
            )
            for n in range(120)
        ]  # fmt: skip
        await platform.event_log.append(burst)

        async def alerted() -> bool:
            return bool(await platform.event_log.read(ALERTS, 1, 10))

        await until(alerted)
        assert time.monotonic() - started < 60
    finally:
        await platform.close()
