"""The JetStream log on a real three-node NATS cluster survives losing a stream's leader.

The cluster runs on free loopback ports, each node with its own store in the test's tmp
dir, and never touches the shared NATS on 4222. Every node the test started is killed
when it ends, whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from hubbub.bootstrap import open_event_log
from hubbub.eventlog.ports import EventLog, LogUnavailable, Record
from hubbub.kernel.events import POSTS, Event
from hubbub.settings import Settings
from tests.conftest import post

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
BATCHES, PER_BATCH, KILL_AFTER = 30, 200, 10

pytestmark = pytest.mark.services


@dataclass
class Node:
    name: str
    client_port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    with closing(sockets[0]):
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        ports = [sock.getsockname()[1] for sock in sockets]
        for sock in sockets:
            sock.close()
    return ports


def node_config(tmp: Path, index: int, client: int, route: int, routes: list[int]) -> Path:
    peers = ", ".join(f"nats-route://127.0.0.1:{port}" for port in routes)
    config = tmp / f"n{index}.conf"
    config.write_text(
        f'server_name: "n{index}"\n'
        f"listen: 127.0.0.1:{client}\n"
        f'jetstream {{ store_dir: "{tmp / f"store-n{index}"}" }}\n'
        f'cluster {{ name: "hubbub_test", listen: 127.0.0.1:{route}, routes: [{peers}] }}\n'
    )
    return config


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    if not os.access(NATS_SERVER, os.X_OK):
        reason = f"no nats-server at {NATS_SERVER} to start a cluster with"
        if os.environ.get("HUBBUB_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    ports = free_ports(6)
    clients, routes = ports[:3], ports[3:]
    nodes: list[Node] = []
    try:
        for index in range(3):
            config = node_config(tmp_path, index, clients[index], routes[index], routes)
            with (tmp_path / f"n{index}.log").open("wb") as log:
                process = subprocess.Popen(
                    [NATS_SERVER, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
                )
            nodes.append(Node(f"n{index}", clients[index], process))
        yield nodes
    finally:
        for node in nodes:
            if node.process.poll() is None:
                node.process.kill()
        for node in nodes:
            node.process.wait(timeout=10)


async def wait_for_jetstream(urls: list[str], within: float = 20.0) -> None:
    """Until the cluster has elected its JetStream meta leader (account info answers)."""
    deadline = time.monotonic() + within
    while True:
        try:
            nc = await nats.connect(urls, connect_timeout=1, max_reconnect_attempts=0)
            try:
                await nc.jetstream(timeout=1).account_info()
                return
            finally:
                await nc.close()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def append_until_stored(log: EventLog, batch: list[Event]) -> None:
    """Append as a connector does: retry the same batch while the log is unavailable."""
    deadline = time.monotonic() + 20
    while True:
        try:
            await log.append(batch)
            return
        except LogUnavailable:
            assert time.monotonic() < deadline, "the cluster did not take writes again"
            await asyncio.sleep(0.2)


async def leader_of(urls: list[str], stream: str) -> str:
    """The name of the node leading `stream`, asked as an operator would."""
    nc = await nats.connect(urls)
    try:
        info = await nc.jetstream(timeout=5).stream_info(stream)
    finally:
        await nc.close()
    assert info.cluster is not None
    assert info.cluster.leader is not None
    assert len(info.cluster.replicas or []) == 2, "the stream has three copies"
    return info.cluster.leader


async def test_every_event_is_in_the_log_once_after_the_stream_leader_is_killed(
    cluster: list[Node],
) -> None:
    urls = [node.url for node in cluster]
    await wait_for_jetstream(urls)
    settings = Settings(
        event_log="jetstream",
        nats_url=",".join(urls),
        nats_replicas=3,
        stream_prefix="cluster",
        events_per_message=50,
    )
    log = await open_event_log(settings)
    try:
        batches: list[list[Event]] = [
            [post(n) for n in range(start, start + PER_BATCH)]
            for start in range(0, BATCHES * PER_BATCH, PER_BATCH)
        ]
        for number, batch in enumerate(batches):
            if number == KILL_AFTER:
                leader = await leader_of(urls, "cluster_posts")
                victim = next(node for node in cluster if node.name == leader)
                victim.process.send_signal(signal.SIGKILL)
                victim.process.wait(timeout=10)
            await append_until_stored(log, batch)

        expected = [event.id for batch in batches for event in batch]
        records = await read_all(log, len(expected))
        assert len(records) == len(expected)
        assert sorted(r.event.id for r in records) == sorted(expected)
        assert [r.position for r in records] == list(range(1, len(expected) + 1))
        assert await leader_of(urls, "cluster_posts") != leader
    finally:
        await log.close()


async def read_all(log: EventLog, count: int) -> list[Record]:
    """Every record of `posts`. Reads are direct gets any replica may answer, and one
    that lost the leader may take a moment to store the newest: read again until
    `count` are there or five seconds have passed."""
    deadline = time.monotonic() + 5
    while True:
        records: list[Record] = []
        while batch := await log.read(POSTS, len(records) + 1, limit=1000):
            records.extend(batch)
        if len(records) >= count or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.2)
