"""The publisher killed with SIGKILL at random moments while it publishes to Bluesky's own
PDS and to the Mastodon API test server: every job ends published, exactly once on each.

`HUBBUB_CRASH_POSTS` (default 150) posts go to both channels; the publishing role
(`hubbub serve --role publishing`, a process of its own) is killed `HUBBUB_CRASH_KILLS`
times (default 6) at a random moment after it answers, then left to finish.
`make chaos` runs it at the issue's size (1,000 posts, 20 kills)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hubbub.bootstrap import open_publishing
from hubbub.kernel.clock import SystemClock
from hubbub.publishing.ports import Job
from hubbub.sandbox.mastodon import MastodonState, mastodon_server
from hubbub.settings import Settings
from tests.support.net import free_port
from tests.support.pds import local_pds

POSTS = int(os.environ.get("HUBBUB_CRASH_POSTS", "150"))
KILLS = int(os.environ.get("HUBBUB_CRASH_KILLS", "6"))
FINISH_S = 180.0
ENV = {
    "HUBBUB_PUBLISH_ALLOWED_NETWORKS": "127.0.0.0/8",
    "HUBBUB_PUBLISH_LEASE_S": "2",
    "HUBBUB_LOG_FORMAT": "json",
}


def start(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "hubbub", "--data-dir", str(data), "serve",
               "--role", "publishing", "--port", str(port)]  # fmt: skip
    with log.open("ab") as sink:
        return subprocess.Popen(
            command, env={**os.environ, **ENV}, stdout=sink, stderr=subprocess.STDOUT
        )


async def answering(port: int, child: subprocess.Popen[bytes], within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert child.poll() is None, "the publishing role exited"
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the publishing role did not answer")


async def test_killed_at_random_the_publisher_publishes_every_post_once(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "publishing.log"
    settings = Settings(
        data_dir=data, publish_allowed_networks=[ipaddress.ip_network("127.0.0.0/8")]
    )
    state = MastodonState()
    state.config.rate_limit = 100_000  # exactly once is the point here, not the budget
    login = state.add_account("newsroom")
    parts = open_publishing(settings, SystemClock(), None)
    service = parts.service
    texts = [f"post {n} of the crash run" for n in range(POSTS)]
    async with local_pds() as pds, mastodon_server(state) as server:
        author = await pds.create_account()
        app_password = await pds.create_app_password(author)
        mastodon = await service.add_channel(
            "acme", "mastodon", "newsroom@127.0.0.1", server.url,
            {"access_token": login.access_token},
        )  # fmt: skip
        bluesky = await service.add_channel(
            "acme", "bluesky", author.handle, pds.url,
            {"identifier": author.handle, "password": app_password},
        )  # fmt: skip
        for text in texts:
            await service.schedule("acme", "ed", text, [mastodon.id, bluesky.id])
        port = free_port()
        rng = random.Random(int(os.environ.get("HUBBUB_CRASH_SEED", "7")))
        kills = 0
        started = time.monotonic()
        try:
            while kills < KILLS and not _all_final(service.jobs("acme", 10 * POSTS)):
                child = start(data, port, log)
                await answering(port, child)
                await asyncio.sleep(rng.uniform(0.0, 1.5))
                child.send_signal(signal.SIGKILL)
                await asyncio.to_thread(child.wait)
                kills += 1
                print(f"kill {kills} at {time.monotonic() - started:.1f} s:", _states(
                    service.jobs("acme", 10 * POSTS)))  # fmt: skip
            child = start(data, port, log)
            deadline = time.monotonic() + FINISH_S
            while not _all_final(jobs := service.jobs("acme", 10 * POSTS)):
                assert time.monotonic() < deadline, _states(jobs)
                assert child.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.5)
        finally:
            child.send_signal(signal.SIGKILL)
            await asyncio.to_thread(child.wait)
            await parts.close()

        print(f"crash run: {POSTS} posts to 2 channels, {kills} kills, all final after"
              f" {time.monotonic() - started:.1f} s")  # fmt: skip
        jobs = service.jobs("acme", 10 * POSTS)
        assert _states(jobs) == {"published": 2 * POSTS}, [j.error for j in jobs if j.error]
        on_mastodon = sorted(s.text for s in state.statuses_by(login.account))
        assert on_mastodon == sorted(texts)  # each once: none twice, none missing
        assert sorted(await pds.records(author.did)) == sorted(texts)
        assert kills >= min(KILLS, 1)


def _all_final(jobs: list[Job]) -> bool:
    return all(job.state in ("published", "failed", "missed", "cancelled") for job in jobs)


def _states(jobs: list[Job]) -> dict[str, int]:
    found: dict[str, int] = {}
    for job in jobs:
        found[job.state] = found.get(job.state, 0) + 1
    return found
