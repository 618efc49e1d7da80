"""Stop the real Redis on 127.0.0.1:6379 for a while, and always start it again.

Other tests share this server, so an outage is kept short and ends whatever happens in
the block: Redis is started again in a `finally`, and the helper waits until it
answers PING before the block's caller goes on.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

HOST, PORT = "127.0.0.1", 6379
START = [
    "redis-server", "--daemonize", "yes", "--bind", HOST, "--port", str(PORT),
    "--save", "", "--appendonly", "no",
]  # fmt: skip


@contextmanager
def redis_stopped() -> Iterator[None]:
    """Redis shut down (nothing saved) while the block runs, started again after it."""
    try:
        subprocess.run(
            ["redis-cli", "-h", HOST, "-p", str(PORT), "shutdown", "nosave"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        _wait(listening=False)
        yield
    finally:
        if not _listening():
            subprocess.run(START, capture_output=True, timeout=10, check=True)
        _wait(listening=True)
        _wait_for_pong()


def _listening() -> bool:
    try:
        socket.create_connection((HOST, PORT), timeout=0.5).close()
    except OSError:
        return False
    return True


def _wait(*, listening: bool, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _listening() != listening:
        if time.monotonic() > deadline:
            state = "listen" if listening else "stop"
            raise AssertionError(f"Redis did not {state} on {HOST}:{PORT} in {timeout_s} s")
        time.sleep(0.02)


def _wait_for_pong(timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["redis-cli", "-h", HOST, "-p", str(PORT), "ping"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if done.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    raise AssertionError(f"Redis on {HOST}:{PORT} did not answer PING in {timeout_s} s")
