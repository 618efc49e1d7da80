"""The Mastodon API test server as clients meet it: through Mastodon.py, the official Python
client, and through plain HTTP where a behaviour (status codes, headers, dropped connections)
lies below what Mastodon.py shows."""

from __future__ import annotations

import re
from asyncio import to_thread
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonIllegalArgumentError,
    MastodonNotFoundError,
    MastodonRatelimitError,
)

from hubbub.kernel.clock import FixedClock, moment_of
from hubbub.sandbox.mastodon import (
    DEFAULT_SCOPES,
    MEDIA_NOT_READY,
    OOB,
    AnswerLate,
    DropAfterCreating,
    FailBeforeCreating,
    InstanceConfig,
    Login,
    MastodonServer,
    MastodonState,
    mastodon_server,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(120)
CALLBACK = "http://127.0.0.1/hubbub/mastodon/callback"
STATUSES = "/api/v1/statuses"


@pytest.fixture
async def server() -> AsyncIterator[MastodonServer]:
    async with mastodon_server() as running:
        yield running


def client(server: MastodonServer, login: Login | None = None) -> Mastodon:
    """Mastodon.py for `login` (anonymous without), raising at a 429 instead of sleeping."""
    token = login.access_token if login else None
    return Mastodon(access_token=token, api_base_url=server.url, ratelimit_method="throw")


def http(server: MastodonServer, login: Login | None = None, **options: Any) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {login.access_token}"} if login else {}
    return httpx.AsyncClient(base_url=server.url, headers=headers, **options)


async def post_hello(web: httpx.AsyncClient) -> httpx.Response:
    """A status, posted the way a publisher retries it: always with the same key."""
    return await web.post(STATUSES, data={"status": "Hello"}, headers={"Idempotency-Key": "hi"})


def rejection(error: pytest.ExceptionInfo[MastodonAPIError]) -> tuple[int, str]:
    """The status code and the server's `error` message, as Mastodon.py reports them."""
    return (error.value.args[1], error.value.args[3])


async def test_an_app_gets_a_user_token_through_the_authorization_code_flow(
    server: MastodonServer,
) -> None:
    server.state.signed_in = server.state.create_account("alice")
    client_id, client_secret = await to_thread(
        Mastodon.create_app, "Hubbub", redirect_uris=[CALLBACK], api_base_url=server.url
    )
    api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=server.url)
    url = await to_thread(
        api.auth_request_url, redirect_uris=CALLBACK, state="xyz", allow_http=True
    )

    async with httpx.AsyncClient() as browser:
        approval = await browser.get(url)
    assert approval.status_code == 302
    redirect = httpx.URL(approval.headers["location"])
    assert str(redirect.copy_with(query=None)) == CALLBACK
    assert redirect.params["state"] == "xyz"
    code = redirect.params["code"]

    token = await to_thread(api.log_in, code=code, redirect_uri=CALLBACK, allow_http=True)
    me = await to_thread(api.account_verify_credentials)
    assert (me.username, me.acct, me.source.privacy) == ("alice", "alice", "public")
    granted = server.state.tokens[token]
    assert (granted.application.name, granted.scopes) == ("Hubbub", DEFAULT_SCOPES)
    with pytest.raises(MastodonIllegalArgumentError, match="invalid_grant"):
        await to_thread(api.log_in, code=code, redirect_uri=CALLBACK, allow_http=True)


async def test_the_out_of_band_redirect_shows_the_code_once_someone_is_signed_in(
    server: MastodonServer,
) -> None:
    async with http(server) as web:
        registered = await web.post(
            "/api/v1/apps",
            json={"client_name": "CLI", "redirect_uris": OOB, "scopes": "read write"},
        )
        app = registered.json()
        query = {"client_id": app["client_id"], "redirect_uri": OOB, "response_type": "code"}
        to_sign_in = await web.get("/oauth/authorize", params=query | {"scope": "read write"})
        server.state.signed_in = server.state.create_account("bob")
        page = await web.get("/oauth/authorize", params=query | {"scope": "read write"})
        code = re.search(r'class="oauth-code" readonly value="([^"]+)"', page.text)
        assert code is not None
        exchange = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
        token = await web.post(
            "/oauth/token",
            data=exchange
            | {"grant_type": "authorization_code", "code": code[1], "redirect_uri": OOB},
        )
        too_wide = await web.get("/oauth/authorize", params=query | {"scope": "read admin:read"})

    assert (app["name"], app["redirect_uris"], app["scopes"]) == ("CLI", [OOB], ["read", "write"])
    assert to_sign_in.status_code == 302
    assert to_sign_in.headers["location"] == f"{server.url}/auth/sign_in"
    assert token.status_code == 200
    assert token.json()["token_type"] == "Bearer"
    assert token.json()["scope"] == "read write"
    assert server.state.tokens[token.json()["access_token"]].account is server.state.signed_in
    assert too_wide.status_code == 400
    assert too_wide.json()["error"] == "invalid_scope"


async def test_an_application_token_is_no_user_and_a_revoked_token_is_refused(
    server: MastodonServer,
) -> None:
    app = server.state.register_app("Scheduler", [OOB], ["read", "write"])
    credentials = {"client_id": app.client_id, "client_secret": app.client_secret}
    async with http(server) as web:
        issued = await web.post(
            "/oauth/token", data=credentials | {"grant_type": "client_credentials"}
        )
        app_token = {"Authorization": f"Bearer {issued.json()['access_token']}"}
        as_app = await web.get("/api/v1/apps/verify_credentials", headers=app_token)
        as_user = await web.get("/api/v1/accounts/verify_credentials", headers=app_token)
        wrong_secret = await web.post(
            "/oauth/token",
            data={"client_id": app.client_id, "client_secret": "guess"}
            | {"grant_type": "client_credentials"},
        )
        revoked = await web.post(
            "/oauth/revoke", data=credentials | {"token": issued.json()["access_token"]}
        )
        after = await web.get("/api/v1/apps/verify_credentials", headers=app_token)

    assert issued.json()["scope"] == "read"
    assert (as_app.status_code, as_app.json()["name"]) == (200, "Scheduler")
    assert as_user.status_code == 422
    assert as_user.json() == {"error": "This method requires an authenticated user"}
    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
    assert (revoked.status_code, revoked.json()) == (200, {})
    assert (after.status_code, after.json()) == (401, {"error": "The access token is invalid"})


async def test_one_idempotency_key_from_one_account_posts_one_status(
    server: MastodonServer,
) -> None:
    alice = server.state.add_account("alice")
    bob = server.state.add_account("bob")
    api = client(server, alice)

    first = await to_thread(api.status_post, "Launch day!", idempotency_key="launch")
    again = await to_thread(api.status_post, "Launch day!", idempotency_key="launch")
    other = await to_thread(api.status_post, "Launch day!", idempotency_key="launch-2")
    bobs = await to_thread(client(server, bob).status_post, "Hi", idempotency_key="launch")

    assert again.id == first.id
    assert len({first.id, other.id, bobs.id}) == 3
    assert [status.id for status in server.state.statuses_by(alice.account)] == [
        other.id,
        first.id,
    ]
    assert first.content == "<p>Launch day!</p>"
    assert first.application.name == "Hubbub tests"


async def test_an_idempotency_key_is_forgotten_an_hour_after_its_status() -> None:
    clock = FixedClock()
    state = MastodonState(clock=clock)
    alice = state.add_account("alice")
    async with mastodon_server(state) as server:
        api = client(server, alice)
        first = await to_thread(api.status_post, "Weekly digest", idempotency_key="digest")
        await to_thread(api.status_post, "Another", idempotency_key="another")
        clock.advance(3599)
        within = await to_thread(api.status_post, "Weekly digest", idempotency_key="digest")
        clock.advance(1)
        after = await to_thread(api.status_post, "Weekly digest", idempotency_key="digest")

    assert within.id == first.id
    assert after.id != first.id
    assert len(state.statuses_by(alice.account)) == 3
    assert list(state.idempotency_keys.entries) == [(alice.account.id, "digest")]


async def test_media_is_attached_once_it_has_finished_processing(server: MastodonServer) -> None:
    alice = server.state.add_account("alice")
    api = client(server, alice)

    pending = await to_thread(api.media_post, PNG, mime_type="image/png", description="Chart")
    with pytest.raises(MastodonAPIError) as too_soon:
        await to_thread(api.status_post, "Our quarter", media_ids=[pending])
    ready = await to_thread(api.media_post, PNG, mime_type="image/png", synchronous=True)
    await to_thread(api.media_update, ready, description="Revenue by quarter")
    status = await to_thread(api.status_post, "Our quarter", media_ids=[ready])
    async with http(server) as web:
        original = await web.get(status.media_attachments[0].url)

    assert pending.url is None
    assert rejection(too_soon) == (422, MEDIA_NOT_READY)
    assert ready.url is not None
    assert [(m.id, m.type) for m in status.media_attachments] == [(ready.id, "image")]
    assert status.media_attachments[0].description == "Revenue by quarter"
    assert original.content == PNG
    assert [s.id for s in server.state.statuses_by(alice.account)] == [status.id]


async def test_media_answers_206_until_its_processing_time_has_passed() -> None:
    clock = FixedClock()
    config = InstanceConfig(media_processing_polls=0, media_processing_s=30)
    state = MastodonState(config=config, clock=clock)
    alice = state.add_account("alice")
    async with mastodon_server(state) as server, http(server, alice) as web:
        upload = await web.post(
            "/api/v2/media",
            files={"file": ("chart.png", PNG, "image/png")},
            data={"description": "A chart"},
        )
        media_id = upload.json()["id"]
        polled = await web.get(f"/api/v1/media/{media_id}")
        clock.advance(30)
        done = await web.get(f"/api/v1/media/{media_id}")

    assert upload.status_code == 202
    assert upload.json()["url"] is None
    assert upload.json()["preview_url"] is not None
    assert (polled.status_code, polled.json()["url"]) == (206, None)
    assert done.status_code == 200
    assert done.json()["url"].endswith("/chart.png")
    assert done.json()["description"] == "A chart"


async def test_uploads_over_the_instances_limits_are_refused() -> None:
    config = InstanceConfig(image_size_limit=1024, video_size_limit=8192)
    state = MastodonState(config=config)
    alice = state.add_account("alice")
    async with mastodon_server(state) as server, http(server, alice) as web:

        async def upload(size: int, content_type: str) -> httpx.Response:
            file = ("upload", bytes(size), content_type)
            return await web.post("/api/v2/media", files={"file": file})

        large_image = await upload(2000, "image/png")
        video = await upload(2000, "video/mp4")
        oversized = await upload(9000, "video/mp4")
        text = await upload(10, "text/plain")

    assert large_image.status_code == 422
    assert large_image.json() == {
        "error": "Validation failed: File file size must be less than 1 KB"
    }
    assert (video.status_code, video.json()["type"]) == (202, "video")
    assert oversized.status_code == 413
    assert text.status_code == 422
    assert text.json() == {
        "error": "Validation failed: File content type is invalid, File is invalid"
    }
    assert [media.type for media in state.media.values()] == ["video"]


async def test_instance_v2_reports_the_limits_set_for_the_server() -> None:
    config = InstanceConfig(
        max_characters=1000,
        max_media_attachments=2,
        characters_reserved_per_url=30,
        image_size_limit=8 * 1024 * 1024,
        supported_mime_types=("image/png", "image/jpeg"),
    )
    async with mastodon_server(MastodonState(config=config)) as server:
        instance = await to_thread(client(server).instance_v2)

    statuses = instance.configuration.statuses
    media = instance.configuration.media_attachments
    assert statuses.max_characters == 1000
    assert statuses.max_media_attachments == 2
    assert statuses.characters_reserved_per_url == 30
    assert media.image_size_limit == 8 * 1024 * 1024
    assert media.supported_mime_types == ["image/png", "image/jpeg"]
    assert instance.domain == server.url.removeprefix("http://")
    assert instance.api_versions.mastodon == 4


async def test_a_status_over_500_characters_is_refused_with_the_servers_message(
    server: MastodonServer,
) -> None:
    api = client(server, server.state.add_account("alice"))

    with pytest.raises(MastodonAPIError) as refused:
        await to_thread(api.status_post, "a" * 501)
    at_the_limit = await to_thread(api.status_post, "a" * 500)

    assert rejection(refused) == (422, "Validation failed: Text character limit of 500 exceeded")
    assert list(server.state.statuses) == [at_the_limit.id]


async def test_links_count_23_mentions_their_username_and_warnings_their_length() -> None:
    state = MastodonState(config=InstanceConfig(max_characters=40))
    alice = state.add_account("alice")
    link = "https://example.com/" + "a-rather-long-path/" * 10
    fits = f"{'x' * 9} {link} @bob@social.example.org 👍🏽"  # 9+1+23+1+4+1+1 = 40
    async with mastodon_server(state) as server:
        api = client(server, alice)
        posted = await to_thread(api.status_post, fits)
        with pytest.raises(MastodonAPIError) as one_more:
            await to_thread(api.status_post, fits + "!")
        with pytest.raises(MastodonAPIError) as with_warning:
            await to_thread(api.status_post, "x" * 30, spoiler_text="y" * 11)

    message = "Validation failed: Text character limit of 40 exceeded"
    assert rejection(one_more) == rejection(with_warning) == (422, message)
    assert [status.id for status in state.statuses_by(alice.account)] == [posted.id]


async def test_rate_limit_headers_reach_mastodon_py_and_a_429_follows_the_limit() -> None:
    clock = FixedClock()
    state = MastodonState(config=InstanceConfig(rate_limit=3), clock=clock)
    alice = state.add_account("alice")
    async with mastodon_server(state) as server, http(server, alice) as web:
        api = client(server, alice)
        await to_thread(api.account_verify_credentials)
        first = (api.ratelimit_limit, api.ratelimit_remaining)
        await to_thread(api.instance_v2)
        await to_thread(api.account_verify_credentials)
        with pytest.raises(MastodonRatelimitError):
            await to_thread(api.account_verify_credentials)
        refused = await web.get("/api/v1/accounts/verify_credentials")
        clock.advance(100)
        next_window = await web.get("/api/v1/accounts/verify_credentials")

    assert first == (3, 2)
    assert api.ratelimit_remaining == 0
    assert refused.status_code == 429
    assert refused.json() == {"error": "Too many requests"}
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    window_end = moment_of(1_700_000_100_000_000)  # FixedClock's start, rounded up to 5 min
    assert datetime.fromisoformat(refused.headers["X-RateLimit-Reset"]) == window_end
    assert next_window.status_code == 200
    assert next_window.headers["X-RateLimit-Remaining"] == "2"


async def test_account_statuses_come_newest_first_in_linked_pages(server: MastodonServer) -> None:
    alice = server.state.add_account("alice")
    api = client(server, alice)
    posted = [await to_thread(api.status_post, f"Post {n}") for n in range(5)]

    first = await to_thread(api.account_statuses, alice.account.id, limit=2)
    second = await to_thread(api.fetch_next, first)
    third = await to_thread(api.fetch_next, second)
    after_last = await to_thread(api.fetch_next, third)
    since = await to_thread(api.account_statuses, alice.account.id, since_id=posted[2].id)
    async with http(server) as anonymous:
        page = await anonymous.get(f"/api/v1/accounts/{alice.account.id}/statuses?limit=2")
        above = await anonymous.get(
            f"/api/v1/accounts/{alice.account.id}/statuses",
            params={"min_id": posted[0].id, "limit": 2},
        )

    def contents(statuses: Any) -> list[str]:
        return [status["content"] for status in statuses]

    assert contents(first) == ["<p>Post 4</p>", "<p>Post 3</p>"]
    assert contents(second) == ["<p>Post 2</p>", "<p>Post 1</p>"]
    assert contents(third) == ["<p>Post 0</p>"]
    assert after_last is None
    assert contents(since) == ["<p>Post 4</p>", "<p>Post 3</p>"]
    assert contents(above.json()) == ["<p>Post 2</p>", "<p>Post 1</p>"]
    assert page.links["next"]["url"].endswith(f"limit=2&max_id={posted[3].id}")
    assert page.links["prev"]["url"].endswith(f"limit=2&min_id={posted[4].id}")
    assert "X-RateLimit-Limit" not in page.headers


async def test_errors_and_deletions_answer_as_mastodon_does(server: MastodonServer) -> None:
    alice = server.state.add_account("alice")
    bob = server.state.add_account("bob")
    api = client(server, alice)
    status = await to_thread(api.status_post, "First!", visibility="private")
    reply = await to_thread(api.status_post, "Second", in_reply_to_id=status)
    with pytest.raises(MastodonNotFoundError) as unknown:
        await to_thread(api.status, "1")
    async with http(server, bob) as as_bob, http(server) as anonymous:
        by_bob = await as_bob.delete(f"{STATUSES}/{status.id}")
        private = await anonymous.get(f"{STATUSES}/{status.id}")
        bad_token = await anonymous.get(
            "/api/v1/accounts/verify_credentials", headers={"Authorization": "Bearer nope"}
        )
    deleted = await to_thread(api.status_delete, status)
    with pytest.raises(MastodonNotFoundError):
        await to_thread(api.status, status.id)

    assert (reply.in_reply_to_id, reply.in_reply_to_account_id) == (status.id, alice.account.id)
    assert rejection(unknown) == (404, "Record not found")
    assert (by_bob.status_code, by_bob.json()) == (404, {"error": "Record not found"})
    assert by_bob.headers["X-RateLimit-Remaining"] == "299"
    assert (private.status_code, private.json()) == (404, {"error": "Record not found"})
    assert (bad_token.status_code, bad_token.json()) == (
        401,
        {"error": "The access token is invalid"},
    )
    assert deleted.text == "First!"
    assert server.state.deleted_statuses[0].id == status.id
    assert [s.id for s in server.state.statuses_by(alice.account)] == [reply.id]


async def test_a_failure_planned_before_creating_creates_nothing(server: MastodonServer) -> None:
    alice = server.state.add_account("alice")
    server.state.plan_faults(FailBeforeCreating(503))
    async with http(server, alice) as web:
        failed = await post_hello(web)
        nothing_yet = dict(server.state.statuses)
        retried = await post_hello(web)

    assert failed.status_code == 503
    assert failed.json() == {
        "error": "There was a temporary problem serving your request, please try again"
    }
    assert nothing_yet == {}
    assert retried.status_code == 200
    assert list(server.state.statuses) == [retried.json()["id"]]
    assert [r.status for r in server.state.requests_to("POST", STATUSES)] == [503, 200]


async def test_a_dropped_connection_leaves_a_created_status_unanswered(
    server: MastodonServer,
) -> None:
    alice = server.state.add_account("alice")
    server.state.plan_faults(DropAfterCreating())
    async with http(server, alice) as web:
        with pytest.raises(httpx.RemoteProtocolError):
            await post_hello(web)
        created = list(server.state.statuses)
        retried = await post_hello(web)

    assert len(created) == 1
    assert (retried.status_code, retried.json()["id"]) == (200, created[0])
    assert list(server.state.statuses) == created
    assert [r.status for r in server.state.requests_to("POST", STATUSES)] == [None, 200]


async def test_a_late_answer_outlasts_the_clients_timeout_after_creating(
    server: MastodonServer,
) -> None:
    alice = server.state.add_account("alice")
    server.state.plan_faults(AnswerLate(delay_s=1.0))
    async with http(server, alice, timeout=0.2) as impatient, http(server, alice) as web:
        with pytest.raises(httpx.ReadTimeout):
            await post_hello(impatient)
        created = list(server.state.statuses)
        retried = await post_hello(web)

    assert len(created) == 1
    assert (retried.status_code, retried.json()["id"]) == (200, created[0])
    assert list(server.state.statuses) == created
