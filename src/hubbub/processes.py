"""How a process of the platform starts, shares its port and stops.

A role's server finishes on SIGINT or SIGTERM by closing what it holds, and stops on its
own when the supervisor that started it is gone (`close_after_signals`,
`stop_with_supervisor`). Replicas of a role are processes of their own listening on one
port (`shared_socket`, `run_replicas`). A supervisor stops its children on Ctrl-C,
SIGTERM or a closed terminal (`stop_on_signals`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

import structlog
import uvicorn

log = structlog.get_logger()


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket other processes may bind too; the kernel spreads connections."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def close_after_signals(server: uvicorn.Server) -> None:
    """uvicorn raises again the SIGINT or SIGTERM that stopped it once it has shut down,
    which would end the process before the platform closes. Handled here, that signal
    only asks the server to exit, so the platform closes (the mentions snapshot is
    written, files are closed) and the process exits 0."""

    def finish(signum: int, frame: object) -> None:
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, finish)


def stop_with_supervisor(server: uvicorn.Server, supervisor_pid: int | None) -> None:
    """A role started by `hubbub serve` stops when its supervisor is gone (killed with
    SIGKILL, say): the roles are in sessions of their own, so nothing else would stop
    them, and a new supervisor could not bind their ports."""
    if supervisor_pid is None:
        return

    async def watch() -> None:
        while True:  # no event says a parent died: its child is handed to another
            await asyncio.sleep(1.0)
            if os.getppid() != supervisor_pid:
                break
        log.warning("the supervisor is gone; stopping", supervisor=supervisor_pid)
        server.should_exit = True

    task = asyncio.get_running_loop().create_task(watch())
    _watchers.add(task)  # held, so the task is not collected while it runs


_watchers: set[asyncio.Task[None]] = set()


def stop_on_signals(stop: asyncio.Event) -> None:
    """Ctrl-C, SIGTERM and a closed terminal (SIGHUP) set `stop`: the children run in
    sessions of their own, so the supervisor must outlive its terminal to stop them."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)


def run_replicas(
    target: Callable[..., None],
    args: tuple[Any, ...],
    name: str,
    count: int,
    on_started: Callable[[], None],
) -> list[str]:
    """Run `target(*args, n)` in `count` spawned processes, n from 0, until all have
    exited; the names of those that exited with an error."""
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=target, args=(*args, n), name=f"{name}-{n}") for n in range(count)
    ]
    for process in processes:
        process.start()

    def stop(signum: int, frame: object) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    # SIGTERM (a supervisor, `kill`) is passed on; Ctrl-C reaches every process already.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    on_started()
    for process in processes:
        process.join()
    return [p.name for p in processes if p.exitcode not in (0, -signal.SIGINT, -signal.SIGTERM)]
