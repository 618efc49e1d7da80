"""`hubbub serve`: every role in a process of its own under a supervisor, restarted when
it dies; and `hubbub serve --role mentions --replicas 2`: replicas sharing a port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.events import PageSeen
from hubbub.settings import Settings
from hubbub.supervisor import platform_roles
from tests.conftest import signed
from tests.support.net import free_port


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
        url = f"http://127.0.0.1:{port}/v1/mentions"
        unsigned = httpx.get(url, params={"q": "odeg"})
        assert unsigned.status_code == 401, "a role answers only what the gateway signed"
        auth = signed(Settings(data_dir=tmp_path))
        for _ in range(20):  # connections land on both; each answers from its own index
            answer = httpx.get(url, params={"q": "odeg"}, auth=auth)
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


ROLES = (
    "ingest", "mentions", "analytics", "publishing", "notifications", "listening", "web",
    "gateway",
)  # fmt: skip


def test_serve_runs_every_role_and_restarts_one_that_dies(tmp_path: Path) -> None:
    supervisor, ports = start_serve(tmp_path)
    try:
        until_healthy(ports)
        killed = role_process(supervisor.pid, "mentions")
        killed.kill()
        until_healthy({"mentions": ports["mentions"]})
        assert role_process(supervisor.pid, "mentions").pid != killed.pid
        gateway = f"http://127.0.0.1:{ports['gateway']}/healthz"
        assert wait_for(lambda: httpx.get(gateway).json()["roles"] == dict.fromkeys(ROLES, "ok"))
        children = psutil.Process(supervisor.pid).children(recursive=True)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def start_serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """`hubbub serve` with every role on a free port; answers it and the ports."""
    ports = {role: free_port() for role in ROLES}
    env = {
        **os.environ,
        "HUBBUB_LOG_LEVEL": "warning",
        "HUBBUB_HTTP_PORT": str(ports["gateway"]),
        **{f"HUBBUB_{r.upper()}_URL": f"http://127.0.0.1:{ports[r]}" for r in ROLES[:-1]},
    }
    command = [sys.executable, "-m", "hubbub", "--data-dir", str(data_dir), "serve"]
    return subprocess.Popen(command, env=env), ports


def role_process(supervisor: int, role: str) -> psutil.Process:
    """The supervisor's child running `role`."""
    found = [
        child
        for child in psutil.Process(supervisor).children()
        if child.cmdline()[-4:-2] == ["--role", role]
    ]
    assert len(found) == 1, f"{len(found)} {role} processes"
    return found[0]


def until_healthy(ports: dict[str, int], timeout_s: float = 45.0) -> None:
    """Wait until every role of `ports` answers /healthz with 200."""

    def healthy(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_for(lambda: all(healthy(port) for port in ports.values()), timeout_s):
        down = [role for role, port in ports.items() if not healthy(port)]
        raise AssertionError(f"{', '.join(down)} did not answer /healthz within {timeout_s} s")


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll `check` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_roles_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    supervisor, ports = start_serve(tmp_path)
    try:
        until_healthy(ports)
        children = psutil.Process(supervisor.pid).children(recursive=True)
    finally:
        supervisor.kill()  # SIGKILL: it cannot stop its roles itself
        supervisor.wait(10)
    _, alive = psutil.wait_procs(children, timeout=20)
    assert alive == []


def test_the_roles_listen_on_loopback_wherever_the_gateway_is_published(
    tmp_path: Path,
) -> None:
    specs = platform_roles(Settings(data_dir=tmp_path), host="0.0.0.0")
    hosts = {spec.name: spec.argv[spec.argv.index("--host") + 1] for spec in specs}
    assert hosts == {"ingest": "127.0.0.1", "mentions": "127.0.0.1", "analytics": "127.0.0.1",
                     "publishing": "127.0.0.1", "notifications": "127.0.0.1",
                     "listening": "127.0.0.1", "web": "127.0.0.1",
                     "gateway": "0.0.0.0"}  # fmt: skip
