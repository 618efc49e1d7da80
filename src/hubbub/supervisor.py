"""Run the platform's roles as child processes on one machine, restarting any that dies.

Each role is its own process, so one crash leaves the others serving. The supervisor
starts every role, waits on all of them, and when one exits without being asked to it
starts it again after a backoff: `Backoff.initial_s`, doubling on each quick failure up
to `Backoff.cap_s`, less a random part (`jitter`) so that roles failing together do not
retry in step. A child that stayed up `Backoff.reset_after_s` was healthy: its next
delay is the initial one again. A role whose process cannot even be started (a missing
executable) is retried the same way; it never stops the other roles.

Stopping (setting the `stop` event given to `Supervisor.run`) sends SIGTERM to every
child, and SIGKILL to those still running after `grace_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from rich.table import Table

from hubbub.settings import Settings

PLATFORM_ROLES = (
    "ingest", "mentions", "analytics", "publishing", "notifications", "listening", "web",
    "gateway",
)  # fmt: skip
DEFAULT_PORTS = {"http": 80, "https": 443}

log = structlog.get_logger()


@dataclass(frozen=True)
class RoleSpec:
    """A role to keep running: the command of its process and where it answers.

    `env` is the child's whole environment (None: the supervisor's own); `url` is only
    shown to people.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None
    url: str = ""


@dataclass(frozen=True)
class Backoff:
    """How long to wait before starting a role again."""

    initial_s: float = 0.5
    cap_s: float = 30.0
    reset_after_s: float = 60.0
    jitter: float = 0.2

    def delay(self, failures: int, draw: float) -> float:
        """The wait after `failures` quick failures in a row (1 for the first), with
        `draw` in [0, 1) taking up to `jitter` of it off; never more than `cap_s`."""
        nominal = min(self.cap_s, self.initial_s * 2.0 ** max(0, failures - 1))
        return nominal * (1 - self.jitter * draw)


class Supervisor:
    """Keeps every role of `roles` running until `run`'s stop event is set.

    `restarts[name]` counts the starts of a role after its first; `delays[name]` the
    waits chosen before them; `pid(name)` is its current process, None while it is down.
    """

    def __init__(
        self,
        roles: Sequence[RoleSpec],
        *,
        backoff: Backoff | None = None,
        grace_s: float = 10.0,
        rng: random.Random | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.roles = list(roles)
        self.log_file = log_file
        """Where the roles' output goes (appended), instead of the supervisor's own."""
        self.backoff = backoff or Backoff()
        self._log_fd: int | None = None
        self.grace_s = grace_s
        self.restarts = {role.name: 0 for role in self.roles}
        self.delays: dict[str, list[float]] = {role.name: [] for role in self.roles}
        self._processes: dict[str, asyncio.subprocess.Process | None] = {}
        self._rng = rng or random.Random()

    def pid(self, name: str) -> int | None:
        process = self._processes.get(name)
        return process.pid if process is not None and process.returncode is None else None

    async def run(self, stop: asyncio.Event, on_started: Callable[[], None] | None = None) -> None:
        """Start every role, call `on_started`, then keep them up until `stop` is set;
        return once every child has exited. Cancelling `run` kills the children."""
        try:
            first = [await self._start(role) for role in self.roles]
            if on_started is not None:
                on_started()
            async with asyncio.TaskGroup() as group:
                for role, process in zip(self.roles, first, strict=True):
                    group.create_task(self._keep_up(role, process, stop))
        finally:
            for process in self._processes.values():
                _kill_if_running(process)
            if self._log_fd is not None:
                os.close(self._log_fd)
                self._log_fd = None

    def table(self) -> Table:
        """Role, pid and URL of every role, for people."""
        table = Table("role", "pid", "url")
        for role in self.roles:
            pid = self.pid(role.name)
            table.add_row(role.name, str(pid) if pid else "down", role.url)
        return table

    async def _keep_up(
        self, role: RoleSpec, process: asyncio.subprocess.Process | None, stop: asyncio.Event
    ) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            if process is not None and not await self._exited_before(process, stop):
                await self._terminate(role, process)
                return
            if stop.is_set():
                return
            healthy = time.monotonic() - started >= self.backoff.reset_after_s
            failures = 1 if healthy else failures + 1
            if not await self._wait_to_restart(role, process, failures, stop):
                return
            self.restarts[role.name] += 1
            process = await self._start(role)

    async def _start(self, role: RoleSpec) -> asyncio.subprocess.Process | None:
        """The role's new process, or None when it could not be started."""
        try:
            # A session of its own (uvloop has no `process_group`): Ctrl-C in a terminal
            # reaches the supervisor alone, which stops the children in order (a demo
            # stops its feeder first) instead of seeing them all exit and restarting them.
            env = {**(role.env if role.env is not None else os.environ)}
            env["HUBBUB_SUPERVISOR_PID"] = str(os.getpid())  # a role outliving us stops
            output = self._output()
            process = await asyncio.create_subprocess_exec(
                *role.argv, env=env, start_new_session=True, stdout=output, stderr=output
            )
        except OSError as error:
            log.error("role failed to start", role=role.name, error=str(error))
            self._processes[role.name] = None
            return None
        log.info("role started", role=role.name, pid=process.pid)
        self._processes[role.name] = process
        return process

    async def _exited_before(
        self, process: asyncio.subprocess.Process, stop: asyncio.Event
    ) -> bool:
        """Wait for the process to exit or `stop` to be set; whether it exited first."""
        exited = asyncio.ensure_future(process.wait())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            exited.cancel()
        return process.returncode is not None and not stop.is_set()

    async def _wait_to_restart(
        self,
        role: RoleSpec,
        process: asyncio.subprocess.Process | None,
        failures: int,
        stop: asyncio.Event,
    ) -> bool:
        """Log the exit and wait out the backoff; False when `stop` was set meanwhile."""
        delay = self.backoff.delay(failures, self._rng.random())
        self.delays[role.name].append(delay)
        if process is None:
            log.warning("role not started", role=role.name, next_delay_s=round(delay, 3))
        else:
            log.warning(
                "role exited",
                role=role.name,
                pid=process.pid,
                exit_code=process.returncode,
                next_delay_s=round(delay, 3),
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()
        if stop.is_set():
            return False
        log.info("role restarting", role=role.name, restarts=self.restarts[role.name] + 1)
        return True

    def _output(self) -> int | None:
        """A file descriptor of the log file for a child to write to (None: inherit)."""
        if self.log_file is None:
            return None
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self._log_fd is None:
            self._log_fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return self._log_fd

    async def _terminate(self, role: RoleSpec, process: asyncio.subprocess.Process) -> None:
        """SIGTERM, then SIGKILL after the grace period."""
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(self.grace_s):
                await process.wait()
        except TimeoutError:
            log.warning("role killed", role=role.name, pid=process.pid, grace_s=self.grace_s)
            _kill_if_running(process)
            await process.wait()
        log.info("role stopped", role=role.name, pid=process.pid, exit_code=process.returncode)


def _kill_if_running(process: asyncio.subprocess.Process | None) -> None:
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()


def url_port(url: str) -> int:
    """The port of `url`, or its scheme's default one."""
    parts = urlsplit(url)
    return parts.port or DEFAULT_PORTS.get(parts.scheme, 80)


def role_urls(settings: Settings, gateway_host: str, gateway_port: int) -> dict[str, str]:
    """Where each platform role answers."""
    return {
        "ingest": settings.ingest_url,
        "mentions": settings.mentions_url,
        "analytics": settings.analytics_url,
        "publishing": settings.publishing_url,
        "notifications": settings.notifications_url,
        "listening": settings.listening_url,
        "web": settings.web_url,
        "gateway": f"http://{gateway_host}:{gateway_port}",
    }


def platform_roles(
    settings: Settings,
    *,
    host: str | None = None,
    gateway_port: int | None = None,
    roles: Sequence[str] = PLATFORM_ROLES,
    mentions_replicas: int = 1,
) -> list[RoleSpec]:
    """`hubbub serve --role NAME` for each of `roles`, each on the port of its URL
    setting (the gateway on `gateway_port`, by default `settings.http_port`), with the
    settings' data dir and event log; the rest of the settings reach the children
    through the environment they inherit. The gateway listens on `host` (by default
    `http_host`); the roles behind it on `role_host`, loopback unless told otherwise,
    so publishing the gateway never publishes them."""
    port = gateway_port or settings.http_port
    gateway_host = host or settings.http_host
    urls = role_urls(settings, gateway_host, port)
    common = (
        sys.executable, "-m", "hubbub",
        "--data-dir", str(settings.data_dir.resolve()),
        "--event-log", settings.event_log,
        "serve",
    )  # fmt: skip
    specs = []
    for name in roles:
        gateway = name == "gateway"
        role_port = port if gateway else url_port(urls[name])
        listen = gateway_host if gateway else settings.role_host
        where = ("--host", listen, "--role", name, "--port", str(role_port))
        argv: tuple[str, ...] = (*common, *where)
        if name == "mentions" and mentions_replicas > 1:
            argv = (*argv, "--replicas", str(mentions_replicas))
        env = None
        if name == "web":  # it asks the gateway's API, wherever that listens here
            env = {**os.environ, "HUBBUB_GATEWAY_URL": f"http://127.0.0.1:{port}"}
        specs.append(RoleSpec(name, argv, env, urls[name]))
    return specs
