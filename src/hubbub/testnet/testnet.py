"""A testnet: the whole platform on many hosts of one machine, up and torn down.

`Testnet.up` builds the wheel of a checkout and installs it, makes the network, starts
the NATS cluster, PostgreSQL and Redis, then every role, each on its host from the
installed wheel, and waits until the gateway says every role is ok. What it made is
written to `testnet.json` in the testnet's directory as it goes, so `Testnet.load`
finds it again from another process and `down` removes all of it: processes (their
whole process group), namespaces, links, the bridge and every directory it made, even
when `up` stopped half way.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from hubbub.testnet import install, plan, processes
from hubbub.testnet.network import Host, Network, free_subnet, namespaces
from hubbub.testnet.processes import Process

STATE: Final = "testnet.json"
MADE: Final = ("wheel", "venv", "hosts", "logs")
"""What a testnet makes in its directory, and `down` removes (with the state file)."""
DEFAULT_CACHE: Final = Path.home() / ".cache" / "hubbub" / "testnet"


class TestnetError(Exception):
    """The testnet could not be brought up, or is not there; the message says why."""


@dataclass
class State:
    """What a testnet is made of, as written to its directory."""

    net_id: str
    subnet: str
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    directories: list[str] = field(default_factory=list)
    """Directories made outside the testnet's own (PostgreSQL's), removed by `down`."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> State:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            net_id=raw["net_id"],
            subnet=raw["subnet"],
            hosts={name: Host(**host) for name, host in raw["hosts"].items()},
            processes=[Process(**process) for process in raw["processes"]],
            secrets=raw["secrets"],
            directories=raw["directories"],
        )


@dataclass(frozen=True)
class HostStatus:
    host: str
    address: str
    namespace: bool
    cut_off: bool
    processes: dict[str, bool]


class Testnet:
    """One testnet, in `directory` (see the module)."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, directory: Path, state: State) -> None:
        self.directory = directory
        self.state = state
        self.network = Network(state.net_id, state.subnet)

    @classmethod
    def load(cls, directory: Path) -> Testnet:
        path = directory / STATE
        if not path.exists():
            raise TestnetError(f"no testnet in {directory} (no {STATE})")
        return cls(directory, State.from_json(path.read_text()))

    @classmethod
    def up(
        cls,
        directory: Path,
        *,
        source: Path,
        subnet: str | None = None,
        cache: Path = DEFAULT_CACHE,
        step: Callable[[str], None] = lambda _: None,
    ) -> Testnet:
        """A testnet in `directory` (which must not hold one) running the wheel of the
        checkout at `source`; `step` is told what is being done. On any failure what
        was made is removed before the error is raised."""
        if (directory / STATE).exists():
            raise TestnetError(f"{directory} holds a testnet already: `hubbub testnet down` it")
        directory.mkdir(parents=True, exist_ok=True)
        state = State(net_id=secrets.token_hex(3), subnet=free_subnet(subnet))
        net = cls(directory, state)
        try:
            net._save()  # from now on, `down` finds what was made, whatever stops `up`
            net._build(source, cache, step)
        except BaseException:
            net.down()
            raise
        return net

    def _build(self, source: Path, cache: Path, step: Callable[[str], None]) -> None:
        step("building the wheel")
        wheel = install.build_wheel(source, self.directory / "wheel")
        step("installing its dependencies (once per set of them)")
        dependencies = install.dependencies_venv(wheel, cache)
        step("installing the wheel (once per wheel)")
        hubbub = install.install(wheel, self.directory / "venv", dependencies, cache)
        step(f"making the network {self.state.subnet}")
        self._make_network()
        step("starting NATS, PostgreSQL and Redis")
        sockets = self._start_servers()
        self._wait_for_servers(sockets, step)
        step("starting the roles")
        for name in plan.ROLE_HOSTS:
            self._start_role(name, hubbub)
        step("waiting for every role to answer")
        self.wait_until_healthy(timeout_s=180)

    # The network

    def _make_network(self) -> None:
        self.network.create()
        self._save()
        for name, number in plan.HOST_NUMBERS.items():
            host = self.network.host(name, number)
            self.state.hosts[name] = host
            self._save()
            self.network.add(host)
        self.state.secrets = {
            "admin": secrets.token_urlsafe(24),
            "internal": secrets.token_urlsafe(32),
            "fernet": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        self._save()

    def host(self, name: str) -> Host:
        if name not in self.state.hosts:
            raise TestnetError(f"no host {name!r}: {', '.join(self.state.hosts)}")
        return self.state.hosts[name]

    def partition(self, name: str) -> None:
        """Cut the host off the network: everything sent to it or by it is dropped."""
        self.network.partition(self.host(name))

    def heal(self, name: str) -> None:
        self.network.heal(self.host(name))

    # Servers

    def _start_servers(self) -> Path:
        """NATS, Redis and PostgreSQL started; the directory of PostgreSQL's socket."""
        peers = {n: self.host(n).address for n in plan.NATS_HOSTS}
        for name in plan.NATS_HOSTS:
            home = self._home(name)
            config = home / "nats.conf"
            config.write_text(plan.nats_config(
                name, peers[name], peers, home / "jetstream", f"hbt{self.state.net_id}"
            ))  # fmt: skip
            self._start(name, "nats-server", [plan.nats_server(), "-c", str(config)])
        data = self.host(plan.DATA_HOST)
        self._start(
            plan.DATA_HOST, "redis-server", plan.redis_argv(data.address, self._home("data"))
        )
        pgdata = self._init_postgres()
        self._start(plan.DATA_HOST, "postgres", plan.postgres_argv(
            pgdata / "data", data.address, pgdata
        ))  # fmt: skip
        return pgdata

    def _init_postgres(self) -> Path:
        """A new cluster, in a directory the postgres user may reach (a test's own tmp
        dir may not be), trusting the role hosts alone over TCP: the subnet's first address
        is this machine's root namespace, where any user could connect as superuser."""
        root = Path(tempfile.mkdtemp(prefix=f"hbt-{self.state.net_id}-pg-"))
        self.state.directories.append(str(root))
        self._save()
        shutil.chown(root, "postgres", "postgres")
        done = subprocess.run(
            plan.as_postgres(str(plan.postgres_bin() / "initdb"), "-D", str(root / "data"),
                             "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise TestnetError(f"initdb failed: {done.stderr.strip()}")
        with (root / "data" / "pg_hba.conf").open("a") as hba:
            for name in plan.ROLE_HOSTS:
                hba.write(f"host all all {self.host(name).address}/32 trust\n")
        return root

    def _wait_for_servers(self, sockets: Path, step: Callable[[str], None]) -> None:
        """Until every server answers; a database made for each role over PostgreSQL's
        socket in `sockets` (only root and postgres reach it; TCP from here is refused)."""
        data = self.host(plan.DATA_HOST).address
        _wait_for_port(data, plan.REDIS_PORT, "Redis")
        _wait_for_port(data, plan.POSTGRES_PORT, "PostgreSQL")
        _wait_for_postgres(sockets)
        step("making a database for each role")
        for name in plan.ROLE_HOSTS:
            done = subprocess.run(
                [str(plan.postgres_bin() / "createdb"), "-h", str(sockets), "-U", "postgres",
                 plan.database_of(name)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise TestnetError(f"createdb {name}: {done.stderr.strip()}")
        step("waiting for the NATS cluster to elect its JetStream leader")
        deadline = time.monotonic() + 60
        while self.jetstream_leader() is None:
            if time.monotonic() > deadline:
                raise TestnetError("the NATS cluster elected no JetStream leader in 60 s")
            time.sleep(0.25)

    def _start_role(self, name: str, hubbub: Path) -> None:
        addresses = {h: host.address for h, host in self.state.hosts.items()}
        home = self._home(name)
        env = plan.role_env(
            name, addresses, self.state.secrets, home=home, subnet=self.state.subnet
        )
        self._start(name, plan.role_of(name), plan.role_argv(hubbub, name, home / "data"), env=env)

    def _start(
        self, host: str, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> None:
        log = self.directory / "logs" / f"{host}.{name}.log"
        environment = env or {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        started = processes.start(host, name, self.host(host).argv(argv), log=log, env=environment)
        self.state.processes.append(started)
        self._save()

    def _home(self, host: str) -> Path:
        home = self.directory / "hosts" / host
        home.mkdir(parents=True, exist_ok=True)
        return home

    # What is running

    def process(self, host: str, name: str) -> Process:
        """The last process called `name` started on `host`."""
        found = [p for p in self.state.processes if p.host == host and p.name == name]
        if not found:
            raise TestnetError(f"no process {name!r} on {host!r}")
        return found[-1]

    def kill(self, host: str, name: str) -> None:
        """SIGKILL the process `name` on `host` (and what it started)."""
        processes.signal_group(self.process(host, name), signal.SIGKILL)

    def restart(self, host: str, name: str) -> None:
        """Start `name` on `host` again, as it was started first."""
        if name == "nats-server":
            config = self._home(host) / "nats.conf"
            self._start(host, name, [plan.nats_server(), "-c", str(config)])
        else:
            raise TestnetError(f"only nats-server is started again, not {name!r}")

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host('gateway').address}:{plan.ROLE_PORTS['gateway']}"

    @property
    def admin_token(self) -> str:
        return self.state.secrets["admin"]

    @property
    def nats_urls(self) -> list[str]:
        return [f"nats://{self.host(n).address}:{plan.NATS_PORT}" for n in plan.NATS_HOSTS]

    def gateway_health(self, timeout_s: float = 3.0) -> dict[str, Any] | None:
        """The gateway's `/healthz`, or None while it does not answer."""
        try:
            answer = httpx.get(f"{self.gateway_url}/healthz", timeout=timeout_s)
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        health: dict[str, Any] = answer.json()
        return health

    def wait_until_healthy(self, timeout_s: float = 60.0) -> None:
        """Until the gateway says every role is ok; the roles' logs' last lines if not."""
        deadline = time.monotonic() + timeout_s
        while True:
            health = self.gateway_health()
            if health is not None and set(health["roles"].values()) == {"ok"}:
                return
            if time.monotonic() > deadline:
                raise TestnetError(f"not every role is ok after {timeout_s:g} s: {health}\n"
                                   + self._dead_processes())  # fmt: skip
            time.sleep(0.5)

    def _dead_processes(self) -> str:
        dead = [p for p in self.state.processes if not processes.running(p)]
        return "\n".join(
            f"{p.host} {p.name} exited; its log ends:\n{_tail(Path(p.log))}" for p in dead
        )

    def jetstream_leader(self) -> str | None:
        """The NATS server leading JetStream's meta group, asked of any that answers."""
        for details in self._jetstream():
            leader = (details.get("meta_cluster") or {}).get("leader")
            if leader:
                return str(leader)
        return None

    def stream_leader(self, topic: str) -> str | None:
        """The NATS server leading the stream of `topic`, and so its host's name."""
        stream = f"{plan.STREAM_PREFIX}_{topic}"
        for details in self._jetstream("?accounts=true&streams=true"):
            for account in details.get("account_details") or []:
                for info in account.get("stream_detail") or []:
                    if info.get("name") == stream and (info.get("cluster") or {}).get("leader"):
                        return str(info["cluster"]["leader"])
        return None

    def stream_replicas(self, topic: str) -> int:
        """How many copies of `topic`'s stream the cluster keeps."""
        stream = f"{plan.STREAM_PREFIX}_{topic}"
        for details in self._jetstream("?accounts=true&streams=true"):
            for account in details.get("account_details") or []:
                for info in account.get("stream_detail") or []:
                    if info.get("name") == stream:
                        return 1 + len((info.get("cluster") or {}).get("replicas") or [])
        return 0

    def _jetstream(self, query: str = "") -> Iterator[dict[str, Any]]:
        for name in plan.NATS_HOSTS:
            url = f"http://{self.host(name).address}:{plan.NATS_MONITOR_PORT}/jsz{query}"
            with contextlib.suppress(httpx.HTTPError, ValueError):
                answer = httpx.get(url, timeout=1.0)
                if answer.status_code == 200:
                    yield answer.json()

    def status(self) -> list[HostStatus]:
        present = namespaces()
        return [
            HostStatus(
                host=name,
                address=host.address,
                namespace=host.namespace in present,
                cut_off=host.namespace in present and self.network.is_cut_off(host),
                processes={
                    p.name: processes.running(p) for p in self.state.processes if p.host == name
                },
            )
            for name, host in self.state.hosts.items()
        ]

    # Down

    def down(self) -> list[str]:
        """Remove everything the testnet made; what could not be removed, as messages."""
        problems = [
            f"{p.host} {p.name} (pid {p.pid}) is still running"
            for p in processes.stop(self.state.processes)
        ]
        problems += self.network.remove(list(self.state.hosts.values()))
        made = [self.directory / part for part in MADE]
        for directory in [*map(Path, self.state.directories), *made]:
            if directory.is_symlink():  # the venv, kept in the cache
                directory.unlink()
            shutil.rmtree(directory, ignore_errors=True)
            if directory.exists():
                problems.append(f"{directory} could not be removed")
        (self.directory / STATE).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory.rmdir()  # when nothing else is in it
        return problems

    def _save(self) -> None:
        path = self.directory / STATE
        path.write_text(self.state.to_json())
        path.chmod(0o600)  # it holds the deployment's secrets


def _wait_for_port(address: str, port: int, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((address, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TestnetError(f"{what} does not answer on {address}:{port}") from None
            time.sleep(0.2)


def _wait_for_postgres(sockets: Path, timeout_s: float = 60.0) -> None:
    """Until PostgreSQL takes connections on its socket in `sockets` (it listens before
    it has started up)."""
    ready = [str(plan.postgres_bin() / "pg_isready"), "-q", "-h", str(sockets), "-U", "postgres"]
    deadline = time.monotonic() + timeout_s
    while subprocess.run(ready, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise TestnetError(f"PostgreSQL on {sockets} does not take connections")
        time.sleep(0.2)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
