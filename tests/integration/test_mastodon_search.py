"""The Mastodon sandbox's search (`GET /api/v2/search`), as Mastodon.py asks it: a status
URL resolved to the status on this server, for a reply to name by its id."""

from __future__ import annotations

from asyncio import to_thread
from collections.abc import AsyncIterator

import httpx
import pytest
from mastodon import Mastodon, MastodonAPIError

from hubbub.sandbox.mastodon import Login, MastodonServer, mastodon_server


@pytest.fixture
async def server() -> AsyncIterator[MastodonServer]:
    async with mastodon_server() as running:
        yield running


def client(server: MastodonServer, login: Login | None = None) -> Mastodon:
    token = login.access_token if login else None
    return Mastodon(access_token=token, api_base_url=server.url, ratelimit_method="throw")


async def test_a_status_url_resolves_to_the_status(server: MastodonServer) -> None:
    alice, bob = server.state.add_account("alice"), server.state.add_account("bob")
    posted = await to_thread(client(server, alice).status_post, "Launch day!")
    search = client(server, bob).search_v2

    found = await to_thread(search, posted.url, resolve=True, result_type="statuses")
    by_uri = await to_thread(search, posted.uri, resolve=True, result_type="statuses")
    unknown = await to_thread(
        search, "https://elsewhere.example/@carol/1", resolve=True, result_type="statuses"
    )
    people = await to_thread(search, "ali", result_type="accounts")

    assert [status.id for status in found.statuses] == [posted.id]
    assert found.accounts == []
    assert found.hashtags == []
    assert [status.id for status in by_uri.statuses] == [posted.id]
    assert unknown.statuses == []
    assert [account.username for account in people.accounts] == ["alice"]


async def test_resolving_needs_a_signed_in_user(server: MastodonServer) -> None:
    alice = server.state.add_account("alice")
    posted = await to_thread(client(server, alice).status_post, "Launch day!")
    anonymous = client(server).search_v2
    with pytest.raises(MastodonAPIError) as refused:
        await to_thread(anonymous, posted.url, resolve=True, result_type="statuses")
    assert refused.value.args[1] == 401
    async with httpx.AsyncClient(base_url=server.url) as web:
        blank = await web.get("/api/v2/search", params={"q": " "})
    assert blank.status_code == 400
