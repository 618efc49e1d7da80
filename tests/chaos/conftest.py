"""Private NATS, PostgreSQL and Redis servers for the chaos tests, on ports and in
directories of their own, so that stopping one never touches the shared servers other
tests use. Each is stopped for good when its test ends, whatever happened."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import service_missing
from tests.support.net import free_port


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def wait_listening(port: int, name: str, up: bool = True, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while listening(port) != up:
        assert time.monotonic() < deadline, f"{name} did not {'start' if up else 'stop'}"
        time.sleep(0.05)


class Server:
    """A server process of this test's own: `start`, `stop` (as an operator would:
    SIGTERM, for a clean shutdown) and `url`."""

    name = "server"

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(self.command(), stdout=sink, stderr=subprocess.STDOUT)
        wait_listening(self.port, self.name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        wait_listening(self.port, self.name, up=False)


class Nats(Server):
    name = "nats"

    def command(self) -> list[str]:
        return ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js",
                "-sd", str(self.directory / "jetstream")]  # fmt: skip

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


class Redis(Server):
    name = "redis"

    def command(self) -> list[str]:
        return ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no"]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Postgres(Server):
    """A cluster of its own (initdb in a directory the `postgres` user owns), run by
    pg_ctl as that user; `url` names its database `hubbub`."""

    name = "postgres"

    def __init__(self, port: int, directory: Path, bin_dir: Path) -> None:
        super().__init__(port, directory)
        self.bin = bin_dir
        self.cluster = directory / "cluster"
        self.log = directory / "postgres.log"

    def as_postgres(self, *command: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout

    def init(self) -> None:
        self.as_postgres(str(self.bin / "initdb"), "-D", str(self.cluster), "-U", "postgres",
                         "--auth=trust", "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.cluster), "-l", str(self.log),
                         "-o", options, "-w", "start")  # fmt: skip
        wait_listening(self.port, self.name)

    def stop(self) -> None:
        if (self.cluster / "postmaster.pid").exists():
            self.as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.cluster), "-m", "fast",
                             "-w", "stop")  # fmt: skip
        wait_listening(self.port, self.name, up=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/hubbub"


def _needs(executable: str) -> None:
    if shutil.which(executable) is None:
        service_missing(f"{executable} is not installed")


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A directory the `postgres` user may enter (pytest's own are root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="hubbub-chaos-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def nats(private_dir: Path) -> Iterator[Nats]:
    _needs("nats-server")
    server = Nats(free_port(), private_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis(private_dir: Path) -> Iterator[Redis]:
    _needs("redis-server")
    server = Redis(free_port(), private_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres(private_dir: Path) -> Iterator[Postgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or os.geteuid() != 0:
        service_missing("PostgreSQL's initdb (run as root, for runuser) is not available")
    directory = private_dir / "pg"
    directory.mkdir()
    shutil.chown(directory, "postgres", "postgres")
    server = Postgres(free_port(), directory, Path(found[-1]).parent)
    server.init()
    server.start()
    try:
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-c",
             "CREATE DATABASE hubbub"], check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        yield server
    finally:
        server.stop()
