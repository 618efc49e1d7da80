"""Watches set from the CLI, checked against the rollups, raising alerts on the log."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from typer.testing import CliRunner

from hubbub.analytics.alerts import ALERTS, Alert, monitor_once
from hubbub.analytics.duckdb_store import DuckDBRollups
from hubbub.analytics.webhooks import dispatch_once, signature
from hubbub.analytics.worker import catch_up
from hubbub.bootstrap import build_platform, open_secret_box
from hubbub.cli import app
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.events import AlertRaised, Event, PostPublished, WatchChanged
from hubbub.settings import Settings
from tests.conftest import until
from tests.integration.test_mentions_replica import free_port

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


async def cli(data_dir: Path, *args: str) -> str:
    """Run a command as a person would (in a thread: the command runs its own loop)."""
    result = await asyncio.to_thread(CliRunner().invoke, app, ["--data-dir", str(data_dir), *args])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def test_a_watched_spike_raises_one_alert_and_a_quiet_watch_none(data_dir: Path) -> None:
    log = SqliteEventLog(data_dir / "eventlog.db")
    store = DuckDBRollups(data_dir / "analytics.duckdb")
    try:
        await log.append(posts("quake", [9, 12, 10, 11, 8, 10, 12, 140]))
        await log.append(posts("coffee", [30, 28, 33, 31, 29, 30, 32, 34]))
        await catch_up(store, log)
        quake = await cli(data_dir, "watch", "add", "--hashtag", "#Quake", "--tenant", "newsroom")
        await cli(data_dir, "watch", "add", "--hashtag", "coffee", "--sensitivity", "high")
        watches = json.loads(await cli(data_dir, "watch", "list", "--json"))
        assert {(w["target"], w["tenant"]) for w in watches} == {
            ("quake", "newsroom"), ("coffee", "default"),
        }  # fmt: skip

        (alert,) = await monitor_once(store, log, NOW)
        assert (alert.watch, alert.tenant, alert.target, alert.count) == (
            quake, "newsroom", "quake", 140,
        )  # fmt: skip
        assert alert.usual == pytest.approx(72 / 7)  # the mean of the 7 days before
        (record,) = await log.read(ALERTS, 1, 10)
        assert isinstance(record.event, AlertRaised)
        assert msgspec.json.decode(record.event.message, type=Alert) == alert

        assert await monitor_once(store, log, NOW + 1) == []  # the cooldown holds
        await cli(data_dir, "watch", "remove", quake)
        assert [
            w["target"] for w in json.loads(await cli(data_dir, "watch", "list", "--json"))
        ] == ["coffee"]
    finally:
        store.close()
        await log.close()


class Receiver:
    """A tenant's webhook endpoint: fails its first `failures` requests, then records."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[bytes, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        self.received.append((body, headers.get(b"hubbub-signature", b"").decode()))
        status = 503 if len(self.received) <= self.failures else 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_an_alert_reaches_its_tenants_webhook_signed_after_retries(data_dir: Path) -> None:
    receiver = Receiver(failures=2)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(receiver, port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    log = SqliteEventLog(data_dir / "eventlog.db")
    store = DuckDBRollups(data_dir / "analytics.duckdb")
    try:
        await until(lambda: asyncio.sleep(0.01, server.started))
        await log.append(posts("quake", [9, 12, 10, 11, 8, 10, 12, 140]))
        await catch_up(store, log)
        await cli(data_dir, "watch", "add", "--hashtag", "quake", "--tenant", "newsroom")
        added = await cli(data_dir, "webhook", "add", "--url", f"http://127.0.0.1:{port}/hook",
                          "--tenant", "newsroom")  # fmt: skip
        await cli(data_dir, "webhook", "add", "--url", "http://127.0.0.1:9/other-tenant")
        secret = added.split("secret")[1].split()[0]
        (alert,) = await monitor_once(store, log, NOW)

        box = open_secret_box(Settings(data_dir=data_dir))  # the key the CLI sealed with
        async with httpx.AsyncClient(timeout=5) as client:
            assert await dispatch_once(log, client, box, backoff_s=0.01) == 1
            assert await dispatch_once(log, client, box, backoff_s=0.01) == 0  # delivered once

        *failed, (body, signed) = receiver.received
        assert len(failed) == 2
        assert msgspec.json.decode(body, type=Alert) == alert
        stamp = int(signed.split(",")[0].removeprefix("t="))
        assert abs(stamp - time.time()) < 60
        assert signed == signature(secret, stamp, body)
        (delivery,) = json.loads(await cli(data_dir, "webhook", "deliveries", "--json"))
        assert (delivery["tenant"], delivery["status"], delivery["attempts"]) == (
            "newsroom", 204, 3,
        )  # fmt: skip
    finally:
        server.should_exit = True
        await serving
        store.close()
        await log.close()


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
