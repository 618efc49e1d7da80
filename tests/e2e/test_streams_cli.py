"""Listening streams on the command line: a query tried against the last hour of the log
(`hubbub streams test QUERY --json`), a stream saved, listed, backfilled over the posts
the log keeps (the live matcher takes those after it was saved), its matches read, and
a query that does not parse refused with where and why."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from hubbub.bootstrap import open_event_log, open_listening
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import PostPublished
from hubbub.listening import worker
from hubbub.settings import Settings
from tests.support.cli import cli, hubbub


async def append_posts(data: Path, *texts: str) -> None:
    event_log = await open_event_log(Settings(data_dir=data))
    now = int(time.time() * 1e6)
    try:
        await event_log.append([
            PostPublished(
                id=f"cli-post-{n}", key="did:plc:ann", ts=now + n, source="test",
                post=f"at://did:plc:ann/app.bsky.feed.post/{n}", author="did:plc:ann",
                text=text, langs=["en"], created_at=now + n,
            )
            for n, text in enumerate(texts)
        ])  # fmt: skip
    finally:
        await event_log.close()


async def fold(data: Path) -> None:
    """What the listening role does in the background: keep what was matched."""
    settings = Settings(data_dir=data)
    event_log = await open_event_log(settings)
    listening = open_listening(settings, event_log, SystemClock())
    try:
        await worker.fold(listening.store, event_log)
    finally:
        listening.store.close()
        await listening.pages.close()
        await event_log.close()


async def test_streams_are_tried_saved_backfilled_and_read_from_the_command_line(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    tenant = await cli(data, "tenants", "create", "Acme")
    acme = ("--tenant", tenant)
    await append_posts(data, "Hubbub is live", "nothing here", "the HUBBUB launch", "hub bub")

    tried = json.loads(await cli(data, "streams", "test", "hubbub NOT launch", *acme, "--json"))
    assert tried["matches"] == [
        {"uri": "at://did:plc:ann/app.bsky.feed.post/0", "text": "Hubbub is live",
         "author": "did:plc:ann"},
    ]  # fmt: skip
    assert tried["scanned"] == 4

    saved = json.loads(await cli(data, "streams", "add", "hubbub", "--name", "Brand", *acme,
                                 "--json"))  # fmt: skip
    assert (saved["name"], saved["query"], saved["costly"]) == ("Brand", "hubbub", False)
    listed = json.loads(await cli(data, "streams", "list", *acme, "--json"))
    assert [s["id"] for s in listed["streams"]] == [saved["id"]]
    code, said = await asyncio.to_thread(hubbub, data, "streams", "backfill", saved["id"], *acme)
    assert code == 0
    assert "2 matches added" in said
    await fold(data)
    read = json.loads(await cli(data, "streams", "matches", saved["id"], *acme, "--json"))
    assert [m["text"] for m in read["matches"]] == ["the HUBBUB launch", "Hubbub is live"]
    code, again = await asyncio.to_thread(hubbub, data, "streams", "backfill", saved["id"], *acme)
    assert "0 matches added" in again

    code, wrong = await asyncio.to_thread(hubbub, data, "streams", "add", "(hubbub", *acme)
    assert code == 2
    assert "the query does not parse" in wrong
    assert "character" in wrong
    code, missing = await asyncio.to_thread(
        hubbub, data, "streams", "matches", saved["id"], "--tenant", "someone-else"
    )
    assert code == 2
    assert "no stream" in missing
