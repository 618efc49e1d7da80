"""`hubbub rebuild mentions|analytics|listening` drops a read model and folds the whole
log into it again: the platform answers the same before and after, and a model that
lost part of its state answers again what the log says."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from hubbub.analytics.duckdb import POINTER
from hubbub.analytics.worker import FOLDED
from hubbub.kernel.events import MATCHES, PAGES
from hubbub.listening.sql import SqlListeningStore, matches_table
from tests.conftest import until
from tests.integration.test_backup import (
    caught_up,
    firehose,
    heads,
    ingested,
    ingesting,
    jetstream_serving,
    reports,
    start,
)
from tests.support.cli import hubbub


async def rebuild(data: Path, model: str) -> str:
    """`hubbub rebuild MODEL` run as a person runs it; what it said."""
    code, said = await asyncio.to_thread(hubbub, data, "rebuild", model)
    assert code == 0, said
    return said


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose platform ingested a few thousand lines, every read model
    caught up with them, and closed."""
    data = tmp_path_factory.mktemp("populated") / "data"

    async def make() -> None:
        async with jetstream_serving(firehose(3000, seed=11)) as fake:
            fake.pace = 200
            platform, _ = await start(data, search=True)
            try:
                async with ingesting(platform, fake):
                    await ingested(platform, fake.lines)
                    await caught_up(platform)
            finally:
                await platform.close()

    asyncio.run(make())
    return data


@pytest.fixture
def data(populated: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(populated, tmp_path / "data"))


async def test_analytics_rebuilt_under_the_running_role_answers_the_same(data: Path) -> None:
    platform, search = await start(data)
    try:
        await caught_up(platform)
        before = await reports(platform, search)
        counted = sum(
            t.count for t in (await platform.event_log.stats()).topics if t.topic in FOLDED
        )
        live = (data / POINTER).read_text() if (data / POINTER).exists() else "analytics.duckdb"

        said = await rebuild(data, "analytics")

        assert f"rebuilt analytics from {counted:,} log records" in said
        assert (data / POINTER).read_text() != live
        await caught_up(platform)
        assert await reports(platform, search) == before

        async def swapped() -> bool:  # the role that held the old file moved and removed it
            await reports(platform, search)
            return not (data / live).exists()

        await until(swapped)
        assert await reports(platform, search) == before  # answered from the new file
    finally:
        await platform.close()


async def test_listening_rebuilt_keeps_again_what_the_log_matched(data: Path) -> None:
    platform, search = await start(data)
    try:
        await caught_up(platform)
        before = await reports(platform, search)
        assert len(before["matches"]) > 10
        store = (await platform.listening()).store
        assert isinstance(store, SqlListeningStore)
        with store.engine.begin() as db:  # part of the read model lost
            db.execute(matches_table.delete().where(matches_table.c.post < before["matches"][5]))
        assert (await reports(platform, search))["matches"] != before["matches"]
        head = (await heads(platform))[MATCHES]

        said = await rebuild(data, "listening")

        assert "rebuilt listening from" in said
        assert store.positions()[MATCHES] >= head
        await caught_up(platform)
        assert await reports(platform, search) == before
    finally:
        await platform.close()


async def test_mentions_rebuilt_into_a_snapshot_the_role_then_serves(data: Path) -> None:
    platform, search = await start(data)
    try:
        await caught_up(platform)
        before = await reports(platform, search)
        pages = (await heads(platform))[PAGES]
    finally:
        await platform.close()
    shutil.rmtree(data / "mentions")

    said = await rebuild(data, "mentions")

    assert f"rebuilt mentions from {pages:,} log records" in said
    snapshot = json.loads((data / "mentions" / "manifest.json").read_text())
    assert snapshot["meta"]["position"] == pages
    platform, _ = await start(data)
    try:
        await caught_up(platform)
        assert await reports(platform, search) == before
    finally:
        await platform.close()


def test_an_unknown_read_model_is_refused(tmp_path: Path) -> None:
    code, said = hubbub(tmp_path, "rebuild", "everything")
    assert code == 2
    for model in ("mentions", "analytics", "listening"):
        assert model in said
