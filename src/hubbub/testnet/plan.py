"""What runs where on a testnet: its hosts, their addresses and ports, and each
process's command line and environment.

Three NATS servers form a JetStream cluster (every stream with three replicas); one
host holds PostgreSQL (a database per role, so no role reads another's tables) and
Redis; every role of the platform has a host of its own, mentions two, which the
gateway balances between.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Final

NATS_HOSTS: Final = ("nats-1", "nats-2", "nats-3")
DATA_HOST: Final = "data"
MENTIONS_HOSTS: Final = ("mentions-1", "mentions-2")
HOST_NUMBERS: Final = {
    "nats-1": 11, "nats-2": 12, "nats-3": 13, "data": 20, "gateway": 30, "ingest": 31,
    "mentions-1": 32, "mentions-2": 33, "analytics": 34, "web": 35, "publishing": 36,
    "notifications": 37, "listening": 38,
}  # fmt: skip
ROLE_PORTS: Final = {
    "gateway": 8080, "ingest": 8081, "mentions": 8082, "analytics": 8083, "web": 8084,
    "publishing": 8085, "notifications": 8086, "listening": 8087,
}  # fmt: skip
ROLE_HOSTS: Final = (
    "ingest", *MENTIONS_HOSTS, "analytics", "publishing", "notifications", "listening", "web",
    "gateway",
)  # fmt: skip
NATS_PORT, NATS_ROUTE_PORT, NATS_MONITOR_PORT = 4222, 6222, 8222
POSTGRES_PORT, REDIS_PORT = 5432, 6379
STREAM_PREFIX: Final = "hubbub"


def role_of(host: str) -> str:
    """The platform role a role host runs (`mentions-2` runs `mentions`)."""
    return host.split("-")[0]


def database_of(host: str) -> str:
    return host.replace("-", "_")


def nats_server() -> str:
    return shutil.which("nats-server") or "/usr/sbin/nats-server"


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's programs."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version)
    if not found:
        raise FileNotFoundError("no PostgreSQL under /usr/lib/postgresql: install postgresql")
    return Path(found[-1]).parent


def _version(path: str) -> float:
    return float(Path(path).parent.parent.name)


def nats_config(
    name: str, address: str, peers: Mapping[str, str], store: Path, cluster: str
) -> str:
    """The config of NATS server `name`: a client port, a monitoring port, JetStream
    with its own store, and routes to every server of the cluster."""
    routes = ", ".join(f'"nats-route://{peer}:{NATS_ROUTE_PORT}"' for peer in peers.values())
    return (
        f'server_name: "{name}"\n'
        f'listen: "{address}:{NATS_PORT}"\n'
        f'http: "{address}:{NATS_MONITOR_PORT}"\n'
        f'jetstream {{ store_dir: "{store}" }}\n'
        f'cluster {{ name: "{cluster}", listen: "{address}:{NATS_ROUTE_PORT}", '
        f"routes: [{routes}] }}\n"
    )


def as_postgres(*argv: str) -> list[str]:
    """`argv` run as the postgres user (PostgreSQL refuses to run as root)."""
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]


def postgres_argv(data: Path, address: str, sockets: Path) -> list[str]:
    """PostgreSQL on `data`, listening on `address`; durability traded for speed
    (fsync off): a testnet's data is thrown away with it."""
    return as_postgres(
        str(postgres_bin() / "postgres"), "-D", str(data),
        "-c", f"listen_addresses={address}", "-c", f"port={POSTGRES_PORT}",
        "-c", f"unix_socket_directories={sockets}", "-c", "fsync=off",
        "-c", "synchronous_commit=off", "-c", "max_connections=300",
    )  # fmt: skip


def redis_argv(address: str, directory: Path) -> list[str]:
    return [
        shutil.which("redis-server") or "/usr/bin/redis-server",
        "--bind", address, "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no",
        "--protected-mode", "no", "--dir", str(directory),
    ]  # fmt: skip


def role_argv(hubbub: Path, host: str, data_dir: Path) -> list[str]:
    role = role_of(host)
    return [
        str(hubbub), "--data-dir", str(data_dir), "serve", "--role", role,
        "--host", "0.0.0.0", "--port", str(ROLE_PORTS[role]),
    ]  # fmt: skip


def role_env(
    host: str,
    addresses: Mapping[str, str],
    secrets: Mapping[str, str],
    *,
    home: Path,
    subnet: str,
    mentions_hosts: tuple[str, ...] = MENTIONS_HOSTS,
) -> dict[str, str]:
    """The whole environment of the role on `host`: nothing of this machine's HUBBUB_*
    settings, the cluster, its own database, Redis, the shared secrets, and where every
    other role answers (the gateway: both mentions replicas; the others: the first).
    Publishing may reach a PDS or Mastodon server on the testnet's own `subnet`."""
    data = addresses[DATA_HOST]
    database = database_of(host)
    nats = ",".join(f"nats://{addresses[n]}:{NATS_PORT}" for n in NATS_HOSTS)
    url = {role: f"http://{addresses[role]}:{port}" for role, port in ROLE_PORTS.items()
           if role in addresses}  # fmt: skip
    if role_of(host) == "mentions":
        mentions = f"http://{addresses[host]}:{ROLE_PORTS['mentions']}"
    elif host == "gateway":
        mentions = ",".join(
            f"http://{addresses[m]}:{ROLE_PORTS['mentions']}" for m in mentions_hosts
        )
    else:
        mentions = f"http://{addresses[mentions_hosts[0]]}:{ROLE_PORTS['mentions']}"
    relational = f"postgresql+psycopg://postgres@{data}:{POSTGRES_PORT}/{database}"
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "HUBBUB_LOG_FORMAT": "json",
        "HUBBUB_EVENT_LOG": "jetstream",
        "HUBBUB_NATS_URL": nats,
        "HUBBUB_NATS_REPLICAS": "3",
        "HUBBUB_STREAM_PREFIX": STREAM_PREFIX,
        "HUBBUB_RELATIONAL_URL": relational,
        "HUBBUB_LISTENING_DB_URL": relational,
        "HUBBUB_NOTIFICATIONS_DB_URL": relational,
        "HUBBUB_ANALYTICS_STORE": "postgres",
        "HUBBUB_ANALYTICS_POSTGRES_URL": f"postgresql://postgres@{data}:{POSTGRES_PORT}/{database}",
        "HUBBUB_CACHE": "redis",
        "HUBBUB_RATE_LIMITER": "redis",
        "HUBBUB_REDIS_URL": f"redis://{data}:{REDIS_PORT}/0",
        "HUBBUB_INTERNAL_SECRET": secrets["internal"],
        "HUBBUB_SECRET_KEY": secrets["fernet"],
        "HUBBUB_ADMIN_TOKEN": secrets["admin"],
        "HUBBUB_INGEST_URL": url["ingest"],
        "HUBBUB_MENTIONS_URL": mentions,
        "HUBBUB_ANALYTICS_URL": url["analytics"],
        "HUBBUB_WEB_URL": url["web"],
        "HUBBUB_PUBLISHING_URL": url["publishing"],
        "HUBBUB_NOTIFICATIONS_URL": url["notifications"],
        "HUBBUB_LISTENING_URL": url["listening"],
        "HUBBUB_GATEWAY_URL": url["gateway"],
        "HUBBUB_PUBLIC_URL": url["gateway"],
        "HUBBUB_PUBLISH_ALLOWED_NETWORKS": subnet,
    }
