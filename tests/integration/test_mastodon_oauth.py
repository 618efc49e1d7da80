"""A Mastodon account connected by its owner's approval (OAuth's authorization code flow
with PKCE), against the Mastodon API test server: from the command line as a person
does it, and refused when the approval is forged, another tenant's, or too late."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hubbub.bootstrap import PublishingParts, open_publishing
from hubbub.kernel.clock import FixedClock
from hubbub.publishing.logins import LOGIN_S, MastodonLogins
from hubbub.publishing.mastodon import MastodonNetwork
from hubbub.publishing.ports import Invalid
from hubbub.sandbox.mastodon import MastodonState, mastodon_server
from hubbub.settings import Settings

LOOPBACK = "127.0.0.0/8"


async def _approve(authorize_url: str) -> str:
    """What the account's owner does in their browser: open the address, approve, and
    copy the code the instance shows."""
    async with httpx.AsyncClient() as browser:
        page = await browser.get(authorize_url)
    assert page.status_code == 200, page.text
    found = re.search(r'class="oauth-code" readonly value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


async def test_a_mastodon_account_is_connected_from_the_command_line(tmp_path: Path) -> None:
    state = MastodonState()
    owner = state.create_account("newsroom")
    state.signed_in = owner
    data = tmp_path / "data"
    env = {**os.environ, "HUBBUB_PUBLISH_ALLOWED_NETWORKS": LOOPBACK, "HUBBUB_TENANT": "acme"}
    async with mastodon_server(state) as server:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hubbub", "--data-dir", str(data), "channels", "connect",
            "--service", server.url, "--time-zone", "Europe/Paris", "--json",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        assert child.stderr is not None
        assert child.stdin is not None
        url = ""  # shown on stderr: stdout is for the --json answer
        while not url.startswith("http"):
            line = (await asyncio.wait_for(child.stderr.readline(), 60)).decode()
            assert line, "the command ended before showing where to approve"
            url = line.strip()
        assert url.startswith(f"{server.url}/oauth/authorize?")
        assert "code_challenge_method=S256" in url
        child.stdin.write((await _approve(url) + "\n").encode())
        await child.stdin.drain()
        out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    made = json.loads(out)
    assert (made["account"], made["time_zone"]) == ("newsroom@127.0.0.1", "Europe/Paris")
    # The token granted is the channel's: the instance knows it as the owner's.
    (granted,) = [t for t in state.tokens.values() if t.account is owner]
    assert granted.token not in out.decode()  # never shown back
    assert set(granted.scopes) == {"read", "write:statuses", "write:media"}


@pytest.fixture
async def logins(tmp_path: Path) -> AsyncIterator[tuple[MastodonLogins, FixedClock, str]]:
    import ipaddress

    clock = FixedClock(1_800_000_000_000_000)
    settings = Settings(
        data_dir=tmp_path / "data", publish_allowed_networks=[ipaddress.ip_network(LOOPBACK)]
    )
    parts: PublishingParts = open_publishing(settings, clock, None)
    state = MastodonState()
    state.signed_in = state.create_account("newsroom")
    try:
        async with mastodon_server(state) as server:
            mastodon = parts.networks["mastodon"]
            assert isinstance(mastodon, MastodonNetwork)
            yield MastodonLogins(parts.service, mastodon, clock), clock, server.url
    finally:
        await parts.close()


async def test_an_approval_is_finished_only_by_its_tenant_in_time_and_never_forged(
    logins: tuple[MastodonLogins, FixedClock, str],
) -> None:
    service, clock, url = logins
    login = await service.start("acme", url)
    code = await _approve(login.authorize_url)
    with pytest.raises(Invalid, match="not one Hubbub started"):
        await service.finish("globex", login.state, code)  # another tenant's
    forged = '{"tenant": "acme", "service": "http://169.254.169.254", "id": "x"}'
    with pytest.raises(Invalid, match="not one Hubbub started"):
        await service.finish("acme", forged, code)  # not sealed by Hubbub
    with pytest.raises(Invalid, match="not one Hubbub started"):
        await service.finish("acme", login.state[:-4] + "AAAA", code)  # tampered with
    clock.advance(LOGIN_S + 1)
    with pytest.raises(Invalid, match="longer than 15 minutes"):
        await service.finish("acme", login.state, code)

    late = await service.start("acme", url)
    channel = await service.finish("acme", late.state, await _approve(late.authorize_url))
    assert (channel.tenant, channel.account) == ("acme", "newsroom@127.0.0.1")
    with pytest.raises(Invalid, match="did not grant access"):  # a code works once
        await service.finish("acme", late.state, "not-a-code")


async def test_an_instance_on_an_inside_address_is_refused_before_anything_is_sent(
    logins: tuple[MastodonLogins, FixedClock, str],
) -> None:
    service, _, _ = logins
    with pytest.raises(Invalid, match="link-local"):
        await service.start("acme", "http://169.254.169.254")
