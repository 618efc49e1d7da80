"""What the chaos tests share: the platform as real processes (`hubbub serve --role X`,
one per role, each started again by the test the moment it is killed), a synthetic
firehose pushed through the gateway at a steady rate with retries, and the ground truth
computed from the very lines pushed, independently of the platform's own code."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.net import free_port

HUBBUB = [sys.executable, "-m", "hubbub"]
OPERATOR = "chaos-operator-token"
ROLES = ("ingest", "mentions", "analytics", "publishing", "listening", "gateway")
POST, LIKE, REPOST = "app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost"
TAG_FEATURE = "app.bsky.richtext.facet#tag"


long_run = pytest.mark.skipif(
    os.environ.get("HUBBUB_CHAOS") != "1",
    reason="a chaos run (minutes, real processes and servers): `make chaos` runs it",
)
"""Marks a test of `make chaos` (HUBBUB_CHAOS=1), too long for every CI run."""


def env_int(name: str, default: int) -> int:
    """An integer setting of the chaos runs (`make chaos` sets the full sizes)."""
    return int(os.environ.get(name, str(default)))


def hubbub(env: Mapping[str, str], *args: str, timeout: float = 300) -> str:
    """Run the CLI to its end; its output, or a failure with its errors."""
    done = subprocess.run(
        [*HUBBUB, *args], env=dict(env), capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def firehose(directory: Path, events: int, seed: int) -> list[bytes]:
    """`events` lines of the synthetic Jetstream firehose, starting now."""
    out = directory / "firehose.jsonl"
    hubbub(os.environ, "generate", "firehose", "--events", str(events), "--pages", "20000",
           "--seed", str(seed), "--out", str(out))  # fmt: skip
    return out.read_bytes().splitlines()


@dataclass
class Truth:
    """What the rollups must hold after the lines, counted straight from their JSON:
    posts and replies standing (created, not deleted), posts deleted, likes and reposts
    net of their undos, and each hashtag's posts standing (in its latest version)."""

    posts: int = 0
    replies: int = 0
    likes: int = 0
    reposts: int = 0
    deleted: int = 0
    tags: Counter[str] = field(default_factory=Counter)

    def totals(self) -> dict[str, int]:
        names = ("posts", "replies", "likes", "reposts", "deleted")
        return {name: getattr(self, name) for name in names}


def ground_truth(lines: Iterable[bytes]) -> Truth:
    """The truth of `lines` (see `Truth`); a like or repost delete counts only when its
    create came before it, a post edit only for a post created and not deleted."""
    standing: dict[str, tuple[bool, frozenset[str]]] = {}
    engaged: dict[str, str] = {}
    truth = Truth()
    for line in lines:
        event = json.loads(line)
        commit = event.get("commit")
        if event.get("kind") != "commit" or not commit:
            continue
        key = f"{event['did']}/{commit['collection']}/{commit['rkey']}"
        collection, operation = commit["collection"], commit["operation"]
        if collection == POST:
            _post(truth, standing, key, operation, commit.get("record"))
        elif collection in (LIKE, REPOST) and operation == "create":
            if "/app.bsky.feed.post/" in commit["record"]["subject"]["uri"]:
                engaged[key] = collection
                _engage(truth, collection, 1)
        elif collection in (LIKE, REPOST) and operation == "delete" and key in engaged:
            _engage(truth, engaged.pop(key), -1)
    truth.posts = len(standing)
    truth.replies = sum(reply for reply, _ in standing.values())
    truth.tags = Counter(tag for _, tags in standing.values() for tag in tags)
    return truth


def _post(
    truth: Truth,
    standing: dict[str, tuple[bool, frozenset[str]]],
    key: str,
    operation: str,
    record: dict[str, Any] | None,
) -> None:
    if operation == "delete":
        if standing.pop(key, None) is not None:
            truth.deleted += 1
    elif operation == "create" or key in standing:
        assert record is not None
        if operation == "create" and key in standing:
            return  # a post counts once
        tags = frozenset(
            feature["tag"].lower()
            for facet in record.get("facets") or ()
            for feature in facet["features"]
            if feature.get("$type") == TAG_FEATURE
        )
        standing[key] = ("reply" in record, tags)


def _engage(truth: Truth, collection: str, delta: int) -> None:
    if collection == LIKE:
        truth.likes += delta
    else:
        truth.reposts += delta


@dataclass
class Role:
    """One role's process (`hubbub serve --role NAME`), its port and its log file."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)
    """Seconds from each kill to the role answering /healthz again."""

    def start(self) -> None:
        command = [*HUBBUB, "serve", "--role", self.name, "--port", str(self.port)]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=sink, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """SIGKILL: the role gets no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it has not ended within `timeout_s`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    async def healthy(self, client: httpx.AsyncClient) -> bool:
        try:
            answer = await client.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    async def answering(self, client: httpx.AsyncClient, within_s: float = 180.0) -> float:
        """Wait until the role answers /healthz; the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < within_s:
            assert self.process is not None
            assert self.process.poll() is None, (
                f"the {self.name} role exited:\n{self.log.read_text()[-3000:]}"
            )
            if await self.healthy(client):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise AssertionError(f"the {self.name} role did not answer within {within_s} s")

    async def restart_after_kill(self, client: httpx.AsyncClient) -> float:
        """Kill it with SIGKILL, start it again at once; seconds until it answers."""
        killed = time.monotonic()
        self.kill()
        self.start()
        await self.answering(client)
        self.restarts.append(time.monotonic() - killed)
        return self.restarts[-1]


class Platform:
    """Every role of `roles` as a process of its own over one data directory, behind
    the gateway; `settings` are extra HUBBUB_* variables for every role."""

    def __init__(
        self, data_dir: Path, roles: Iterable[str] = ROLES, settings: Mapping[str, str] = {}
    ) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in roles}
        self.env = {
            **os.environ,
            "HUBBUB_DATA_DIR": str(data_dir),
            "HUBBUB_LOG_LEVEL": "warning",
            "HUBBUB_LOG_FORMAT": "json",
            "HUBBUB_ADMIN_TOKEN": OPERATOR,
            "HUBBUB_ALERT_CHECK_INTERVAL_S": "1",
            "HUBBUB_CONTROL_POLL_S": "0.2",
            **{f"HUBBUB_{name.upper()}_URL": f"http://127.0.0.1:{port}"
               for name, port in ports.items() if name != "gateway"},
            **settings,
        }  # fmt: skip
        self.roles = {
            name: Role(name, port, self.env, data_dir.parent / f"{name}.log")
            for name, port in ports.items()
        }
        self.url = f"http://127.0.0.1:{ports['gateway']}"

    async def start(self, client: httpx.AsyncClient) -> None:
        for role in self.roles.values():
            role.start()
        for role in self.roles.values():
            await role.answering(client)

    def stop(self) -> None:
        for role in self.roles.values():
            role.stop()

    def logs(self, pattern: str) -> list[str]:
        """The lines of every role's log that contain `pattern`."""
        return [
            line
            for role in self.roles.values()
            if role.log.exists()
            for line in role.log.read_text(errors="replace").splitlines()
            if pattern in line
        ]


@dataclass
class Tenant:
    """A tenant made through the gateway: its id, its owner's token, a pushing key."""

    id: str
    token: str
    pusher: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


async def make_tenant(client: httpx.AsyncClient, url: str, name: str) -> Tenant:
    """A tenant, and a key of its that the operator granted `ingest`."""
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    made = await client.post(f"{url}/v1/tenants", json={"name": name}, headers=operator)
    assert made.status_code == 201, made.text
    tenant, owner = made.json()["tenant"]["id"], made.json()["owner_key"]["token"]
    key = await client.post(
        f"{url}/v1/keys", json={"name": "pusher", "role": "editor"},
        headers={"Authorization": f"Bearer {owner}"},
    )  # fmt: skip
    assert key.status_code == 201, key.text
    granted = await client.put(
        f"{url}/v1/tenants/{tenant}/keys/{key.json()['id']}/permissions",
        json={"permissions": ["ingest"]}, headers=operator,
    )  # fmt: skip
    assert granted.status_code == 200, granted.text
    return Tenant(tenant, owner, key.json()["token"])


@dataclass
class PushStats:
    """What a push did: lines sent, requests retried, the longest wait of one chunk
    (first try to acceptance), and the refusals seen (status: count)."""

    lines: int = 0
    retries: int = 0
    max_stall_s: float = 0.0
    refusals: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.lines / self.elapsed_s if self.elapsed_s else 0.0


RETRIED = frozenset({429, 500, 502, 503, 504, 507})


async def push(
    client: httpx.AsyncClient,
    url: str,
    token: str,
    lines: list[bytes],
    rate: int,
    stats: PushStats,
    *,
    chunk: int = 1000,
    stop: asyncio.Event | None = None,
) -> None:
    """Push `lines` to `url`/v1/ingest/jetstream at `rate` lines a second, in chunks,
    each chunk tried again (after 0.1 s) until it is accepted: a dropped connection or
    a 5xx may or may not have ingested it, and ingest must take the retry as a
    duplicate. Stops early, at a chunk's edge, once `stop` is set; `stats.lines` then
    says how many lines went in."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    for offset in range(0, len(lines), chunk):
        if stop is not None and stop.is_set():
            break
        due = started + offset / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        body = b"\n".join(lines[offset : offset + chunk])
        first_try = time.monotonic()
        while not await _accepted(client, f"{url}/v1/ingest/jetstream", body, headers, stats):
            stats.retries += 1
            await asyncio.sleep(0.1)
        stats.max_stall_s = max(stats.max_stall_s, time.monotonic() - first_try)
        stats.lines = min(len(lines), offset + chunk)
    stats.elapsed_s = time.monotonic() - started


async def _accepted(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], stats: PushStats
) -> bool:
    try:
        answer = await client.post(url, content=body, headers=headers, timeout=60)
    except httpx.HTTPError as error:
        stats.refusals[type(error).__name__] += 1
        return False
    if answer.status_code in RETRIED:
        stats.refusals[str(answer.status_code)] += 1
        return False
    assert answer.status_code == 200, f"{answer.status_code}: {answer.text}"
    return True


def window() -> dict[str, str]:
    """A report window around now wide enough for every generated event."""
    now = datetime.now(UTC)
    return {
        "start": (now - timedelta(days=1)).isoformat(),
        "end": (now + timedelta(days=1)).isoformat(),
    }


async def hashtags(client: httpx.AsyncClient, tenant: Tenant, url: str) -> Counter[str]:
    """Every hashtag's posts as the top-hashtags report answers them."""
    answer = await client.get(
        f"{url}/v1/reports/top/hashtags", params={**window(), "limit": 1000},
        headers=tenant.auth(), timeout=30,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return Counter({row["key"]: row["count"] for row in answer.json() if row["count"]})


async def until_reports_equal(
    client: httpx.AsyncClient, tenant: Tenant, url: str, truth: Truth, within_s: float
) -> float:
    """Poll the hashtag report until it equals the truth; the seconds it took. Fails
    with the difference when it does not within `within_s`."""
    started = time.monotonic()
    found: Counter[str] = Counter()
    while time.monotonic() - started < within_s:
        try:
            found = await hashtags(client, tenant, url)
        except (httpx.HTTPError, AssertionError):
            found = Counter()
        if found == truth.tags:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    over, under = found - truth.tags, truth.tags - found
    raise AssertionError(f"hashtag report differs from the truth: over {over}, under {under}")


def totals(env: Mapping[str, str]) -> dict[str, int]:
    """`hubbub analytics totals --json`, the global counters (with the analytics role
    stopped: it holds the rollups' file)."""
    found: dict[str, Any] = json.loads(hubbub(env, "analytics", "totals", "--json"))
    return {name: found[name] for name in ("posts", "replies", "likes", "reposts", "deleted")}


async def alerts(client: httpx.AsyncClient, tenant: Tenant, url: str) -> list[dict[str, Any]]:
    answer = await client.get(f"{url}/v1/alerts", params={"limit": 200}, headers=tenant.auth())
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


async def watch(client: httpx.AsyncClient, tenant: Tenant, url: str, tag: str) -> str:
    """Watch `tag` for spikes (most sensitive); the watch's id."""
    answer = await client.post(
        f"{url}/v1/watches", json={"kind": "hashtag", "target": tag, "sensitivity": "high"},
        headers=tenant.auth(),
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    made: str = answer.json()["id"]
    return made


def report(title: str, figures: Mapping[str, object]) -> None:
    """Print one result line the runs collect (`make chaos` shows them: `-s`)."""
    print(f"\nCHAOS {title}: " + json.dumps(figures, default=str), flush=True)
