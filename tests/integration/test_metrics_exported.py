"""Series the alerts and the dashboard read (deploy/prometheus, deploy/grafana), as a
process exports them: publish jobs by network and state, from a publisher publishing to
a Mastodon API server; the data dir's file system, measured at each scrape."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

from cryptography.fernet import Fernet
from prometheus_client import REGISTRY

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.sealing import SecretBox
from hubbub.kernel.telemetry import DataDirUsage
from hubbub.publishing.journal import Journal
from hubbub.publishing.mastodon import MastodonNetwork
from hubbub.publishing.service import Publishing
from hubbub.publishing.sql import SqlJobStore
from hubbub.publishing.worker import Publisher, PublishPolicy
from hubbub.sandbox.mastodon import FailBeforeCreating, MastodonState, mastodon_server

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


def published(state: str) -> float:
    """Publish jobs to Mastodon that went to `state`, as /metrics says so far."""
    labels = {"network": "mastodon", "state": state}
    return REGISTRY.get_sample_value("hubbub_publish_jobs_total", labels) or 0.0


async def test_the_publisher_counts_each_job_by_network_and_the_state_it_went_to(
    tmp_path: Path,
) -> None:
    before = {state: published(state) for state in ("published", "failed", "scheduled")}
    store = SqlJobStore.sqlite(tmp_path / "relational.db")
    log = SqliteEventLog(tmp_path / "eventlog.db")
    clock = FixedClock(now_us=1_800_000_000_000_000)
    state = MastodonState(clock=clock)
    login = state.add_account("newsroom")
    box = SecretBox(Fernet.generate_key())
    network = MastodonNetwork(box, clock, LOOPBACK, timeout_s=2.0, media_data=store.media_data)

    async def limits_of(_: str, service: str):  # type: ignore[no-untyped-def]
        return await network.limits(service)

    journal = Journal(log, clock)
    publishing = Publishing(store, box, clock, limits_of, LOOPBACK, journal)
    publisher = Publisher(
        store, {"mastodon": network}, clock, PublishPolicy(), name="p1", journal=journal
    )
    try:
        async with mastodon_server(state) as server:
            channel = await publishing.add_channel(
                "acme", "mastodon", "newsroom@127.0.0.1", server.url,
                {"access_token": login.access_token}, "UTC",
            )  # fmt: skip
            await publishing.schedule("acme", "ed", "Hello from Hubbub", [channel.id])
            assert await publisher.once() == 1
            state.plan_faults(FailBeforeCreating(422))  # refused: not worth trying again
            await publishing.schedule("acme", "ed", "Refused by the instance", [channel.id])
            assert await publisher.once() == 1
            state.plan_faults(FailBeforeCreating(503))  # down: tried again later
            await publishing.schedule("acme", "ed", "Tried again later", [channel.id])
            assert await publisher.once() == 1
    finally:
        await network.close()
        await log.close()
        store.close()

    assert published("published") - before["published"] == 1
    assert published("failed") - before["failed"] == 1
    assert published("scheduled") - before["scheduled"] == 1


def test_the_data_dir_file_system_is_measured_at_each_scrape(tmp_path: Path) -> None:
    usage = DataDirUsage()
    assert list(usage.collect()) == [], "nothing before the process names its data dir"
    data = tmp_path / "data"
    data.mkdir()
    usage.watch(data)
    families = {family.name: family.samples for family in usage.collect()}
    (free,), (size,) = (
        families["hubbub_data_dir_free_bytes"],
        families["hubbub_data_dir_size_bytes"],
    )
    measured = shutil.disk_usage(data)
    assert free.labels == size.labels == {"path": str(data.resolve())}
    assert size.value == measured.total
    assert 0 < free.value <= size.value
    data.rmdir()
    assert list(usage.collect()) == [], "a data dir gone exports nothing rather than a stale figure"
