"""`hubbub channels` and `hubbub posts` as a person uses them, against the Mastodon API
test server; the publisher publishes what they scheduled."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hubbub.bootstrap import open_publishing
from hubbub.kernel.clock import SystemClock
from hubbub.publishing.worker import Publisher
from hubbub.sandbox.mastodon import MastodonState, mastodon_server
from hubbub.settings import Settings
from tests.support.cli import cli, hubbub


async def test_a_channel_is_added_a_post_scheduled_published_and_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBBUB_PUBLISH_ALLOWED_NETWORKS", "127.0.0.0/8")
    state = MastodonState()
    login = state.add_account("newsroom")
    data = tmp_path / "data"
    async with mastodon_server(state) as server:
        channel = await cli(
            data, "channels", "add", "mastodon", "--account", "newsroom@127.0.0.1",
            "--service", server.url, "--time-zone", "Europe/Paris",
            stdin=login.access_token + "\n",
        )  # fmt: skip
        (listed,) = json.loads(await cli(data, "channels", "list", "--json"))
        assert (listed["id"], listed["limits"]["characters"]) == (channel, 500)
        assert login.access_token not in json.dumps(listed)  # never shown back

        job = await cli(data, "posts", "schedule", "From the command line", "--channel", channel)
        settings = Settings(data_dir=data)
        parts = open_publishing(settings, SystemClock(), None)
        try:
            publisher = Publisher(parts.service.store, parts.networks, SystemClock())
            assert await publisher.once() == 1
        finally:
            await parts.close()
        shown = json.loads(await cli(data, "posts", "show", job))
        assert shown["state"] == "published"
        assert [s.text for s in state.statuses_by(login.account)] == ["From the command line"]

        code, said = await asyncio.to_thread(hubbub, data, "posts", "cancel", job)
        assert code == 2  # the CLI's refusal
        assert "only scheduled jobs can" in said  # what is published stays published
        code, said = await asyncio.to_thread(
            hubbub, data, "posts", "schedule", "x" * 501, "--channel", channel
        )
        assert code == 2  # the CLI's refusal
        assert "501 characters, 1 over its limit of 500" in said
