"""`hubbub serve --role mentions --replicas 2`: replicas sharing a port, stopped together."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.events import PageSeen
from tests.integration.test_mentions_replica import free_port


async def seed(data_dir: Path) -> None:
    log = SqliteEventLog(data_dir / "eventlog.db")
    await log.append(
        [
            PageSeen(id="p", key="d", ts=1, source="jetstream", page="did:plc:zoe",
                     handle="zoe.example", display_name="Zoë Ødegård", followers_count=5)
        ]
    )  # fmt: skip
    await log.close()


def test_mentions_replicas_share_a_port_and_stop_together(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path))
    port = free_port()
    env = {**os.environ, "HUBBUB_DATA_DIR": str(tmp_path), "HUBBUB_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "hubbub", "serve", "--role", "mentions", "--port", str(port)]
    server = subprocess.Popen([*command, "--replicas", "2"], env=env)
    try:
        replicas = listening(server.pid, port, expected=2)
        for _ in range(20):  # connections land on both; each answers from its own index
            answer = httpx.get(f"http://127.0.0.1:{port}/v1/mentions", params={"q": "odeg"})
            assert [page["handle"] for page in answer.json()] == ["zoe.example"]
            assert answer.headers["x-mentions-backend"] == "memory"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
    _, alive = psutil.wait_procs(replicas, timeout=10)
    assert alive == []


def listening(pid: int, port: int, expected: int) -> list[psutil.Process]:
    """The child processes of `pid` listening on `port`, once there are `expected`."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [
            child
            for child in psutil.Process(pid).children()
            if any(c.laddr.port == port and c.status == "LISTEN" for c in child.net_connections())
        ]
        if len(found) == expected:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{expected} replicas did not listen on {port} within 30 s")
