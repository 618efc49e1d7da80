"""`hubbub channels` and `hubbub posts` as a person uses them, against the Mastodon API
test server; the publisher publishes what they scheduled."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
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
        assert "only scheduled or held jobs can" in said  # what is published stays published
        code, said = await asyncio.to_thread(
            hubbub, data, "posts", "schedule", "x" * 501, "--channel", channel
        )
        assert code == 2  # the CLI's refusal
        assert "501 characters, 1 over its limit of 500" in said

        # A variant for the channel, a content warning, who sees it and a language.
        job = await cli(
            data, "posts", "schedule", "The general text", "--channel", channel,
            "--variant", f"{channel}=What Mastodon says", "--spoiler", "Finale",
            "--visibility", "unlisted", "--language", "pt-BR",
        )  # fmt: skip
        parts = open_publishing(settings, SystemClock(), None)
        try:
            publisher = Publisher(parts.service.store, parts.networks, SystemClock())
            assert await publisher.once() == 1
        finally:
            await parts.close()
        (latest,) = [
            s for s in state.statuses_by(login.account) if s.text != "From the command line"
        ]
        assert (latest.text, latest.spoiler_text) == ("What Mastodon says", "Finale")
        assert (latest.visibility, latest.language) == ("unlisted", "pt-BR")
        code, said = await asyncio.to_thread(
            hubbub, data, "posts", "schedule", "x", "--channel", channel, "--variant", "oops"
        )
        assert code == 2
        assert "write it CHANNEL=TEXT" in said

        # A job cancelled from the command line is the command line's in the trail.
        later = json.loads(await cli(
            data, "posts", "schedule", "Not yet", "--channel", channel,
            "--at", "2100-01-04T09:00", "--json",
        ))  # fmt: skip
        await cli(data, "posts", "cancel", later[0]["id"])
        trail = json.loads(await cli(data, "posts", "audit", later[0]["post"], "--json"))
        assert [(e["action"], e["actor"]) for e in trail] == [
            ("created", "cli"),
            ("scheduled", "cli"),
            ("cancelled", "cli"),
        ]


async def test_a_queue_and_a_recurring_post_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBBUB_PUBLISH_ALLOWED_NETWORKS", "127.0.0.0/8")
    state = MastodonState()
    login = state.add_account("newsroom")
    data = tmp_path / "data"
    async with mastodon_server(state) as server:
        channel = await cli(
            data, "channels", "add", "mastodon", "--account", "newsroom@127.0.0.1",
            "--service", server.url, "--time-zone", "America/New_York",
            stdin=login.access_token + "\n",
        )  # fmt: skip
    assert (
        "has no queue" in (await asyncio.to_thread(hubbub, data, "channels", "queue", channel))[1]
    )
    code, said = await asyncio.to_thread(
        hubbub, data, "posts", "schedule", "Queued", "--channel", channel, "--queue"
    )
    assert code == 2
    assert "has no queue" in said
    _, shown = await asyncio.to_thread(hubbub, data, "channels", "queue", channel, "sat,sun 10:00")
    assert shown.startswith("sat,sun 10:00 (America/New_York)")
    assert "T10:00:00-0" in shown  # the next slots, at 10:00 in New York
    queued = json.loads(
        await cli(data, "posts", "schedule", "Queued", "--channel", channel, "--queue", "--json")
    )
    (slot,) = [job["due_us"] for job in queued]
    upcoming = json.loads(await cli(data, "channels", "queue", channel, "--json"))["upcoming"]
    assert datetime.fromisoformat(upcoming[0]).timestamp() * 1e6 == slot

    made = json.loads(await cli(
        data, "posts", "schedule", "Weekly", "--channel", channel, "--at", "2100-01-04T09:00",
        "--repeat", "FREQ=WEEKLY;BYDAY=MO", "--json",
    ))  # fmt: skip
    series = made[0]["series"]
    assert series
    shown_job = json.loads(await cli(data, "posts", "show", made[0]["id"]))
    assert [change["state"] for change in shown_job["history"]] == ["scheduled"]
    stopped = json.loads(await cli(data, "posts", "cancel", "--series", series))
    assert {job["state"] for job in stopped} == {"cancelled"}
    shown_job = json.loads(await cli(data, "posts", "show", made[0]["id"]))
    assert [change["state"] for change in shown_job["history"]] == ["scheduled", "cancelled"]
