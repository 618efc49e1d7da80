"""The gateway in front of real services over HTTP: keys, tenants, limits, correlation,
isolation when a service is down, and the strangler fig against a legacy app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hubbub.bootstrap import build_gateway
from hubbub.gateway.app import observed
from hubbub.gateway.routing import SERVICE_ROUTES
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import POSTS, USAGE, FeatureUsed, PostPublished
from hubbub.kernel.telemetry import configure_logging
from tests.conftest import FIXTURES, require_service, unique_name, until
from tests.support.images import png
from tests.support.reports import EVENTS
from tests.support.stack import OPERATOR, Stack, auth, start_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, exits = await start_stack(tmp_path / "data")
    async with exits:
        yield built


async def test_a_request_needs_a_valid_key(stack: Stack) -> None:
    missing = await stack.client.get("/v1/mentions?q=ma")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "API key is required" in missing.json()["detail"]
    forged = await stack.client.get(
        "/v1/mentions?q=ma", headers=auth("hb_000000000000_" + "x" * 43)
    )
    assert forged.status_code == 401
    assert "not valid" in forged.json()["detail"]


async def test_a_revoked_key_stops_at_once(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    viewer = await stack.key(owner, "viewer")
    assert (await stack.client.get("/v1/mentions?q=ma", headers=auth(viewer))).status_code == 200
    keys = (await stack.client.get("/v1/keys", headers=auth(owner["token"]))).json()
    viewer_id = next(k["id"] for k in keys if k["role"] == "viewer")
    revoked = await stack.client.delete(f"/v1/keys/{viewer_id}", headers=auth(owner["token"]))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert (await stack.client.get("/v1/mentions?q=ma", headers=auth(viewer))).status_code == 401


async def test_roles_limit_what_a_key_may_do(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    viewer, editor = await stack.key(owner, "viewer"), await stack.key(owner, "editor")
    watch = {"kind": "hashtag", "target": "quake"}
    refused = await stack.client.post("/v1/watches", json=watch, headers=auth(viewer))
    assert refused.status_code == 403
    assert "editor role" in refused.json()["detail"]
    assert (
        await stack.client.post("/v1/watches", json=watch, headers=auth(editor))
    ).status_code == 201
    for refused_key in (editor, owner["token"]):  # the firehose is everyone's: no role may
        pushed = await stack.client.post(
            "/v1/ingest/jetstream", content=b"", headers=auth(refused_key)
        )
        assert pushed.status_code == 403
        assert "ingest permission" in pushed.json()["detail"]
    lines = (FIXTURES / "jetstream-sample.jsonl").read_bytes()
    pusher = await stack.pusher(owner)
    for token in (pusher, OPERATOR):
        pushed = await stack.client.post("/v1/ingest/jetstream", content=lines, headers=auth(token))
        assert pushed.status_code == 200, pushed.text
    posts = [r.event for r in await stack.platform.event_log.read(POSTS, 1, 1000)]
    assert posts
    pushers = {p.pushed_by.split("/")[0] for p in posts}  # type: ignore[attr-defined]
    assert pushers == {owner["id"]}  # the operator's second push was all duplicates
    not_granted = await stack.client.put(
        f"/v1/tenants/{owner['id']}/keys/x/permissions", json={"permissions": ["ingest"]},
        headers=auth(owner["token"]),
    )  # fmt: skip
    assert not_granted.status_code == 403  # a tenant cannot grant itself the firehose
    grant = await stack.client.post("/v1/keys", json={"role": "owner"}, headers=auth(editor))
    assert grant.status_code == 403
    operator_on_service = await stack.client.get("/v1/watches", headers=auth(OPERATOR))
    assert operator_on_service.status_code == 403


async def test_tenants_are_made_and_listed_by_the_operator_only(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    listed = await stack.client.get("/v1/tenants", headers=auth(OPERATOR))
    assert [t["name"] for t in listed.json()] == ["newsroom"]
    assert (await stack.client.get("/v1/tenants", headers=auth(owner["token"]))).status_code == 403
    again = await stack.client.post(
        "/v1/tenants", json={"name": "newsroom"}, headers=auth(OPERATOR)
    )
    assert again.status_code == 409
    own = await stack.client.get("/v1/tenant", headers=auth(owner["token"]))
    assert own.json()["id"] == owner["id"]


async def test_a_tenant_never_reaches_another_tenants_resources(stack: Stack) -> None:
    """Every route with an id of a tenant-owned thing in its path, read from the API
    description (so a route added later is covered), called with another tenant's key
    and the first tenant's ids: 403 or 404 each time; lists show only one's own."""
    a, b = await stack.tenant("alpha"), await stack.tenant("beta")
    ids = await _resources_of(stack, a)
    spec = (await stack.client.get("/openapi.json")).json()
    calls = []
    for path, item in spec["paths"].items():
        params = [p for p in ids if "{" + p + "}" in path]
        if not params:
            continue
        for method in item:
            url = path
            for param in params:
                url = url.replace("{" + param + "}", ids[param])
            calls.append((method, url))
    called = 0
    for method, url in sorted(calls, key=lambda call: call[0] == "put"):  # upserts last
        bodies = {
            "put": {"enabled": True, "percent": 50.0, "slots": "mon 09:00", "text": "b's"},
            "patch": {"sensitivity": "high"},
            "post": {"at": "2030-01-07T09:00", "decision": "approve", "text": "b's",
                     "name": "Eve"},
        }  # fmt: skip
        body = bodies.get(method)  # well-formed: only whose it is may refuse the call
        answer = await stack.client.request(
            method.upper(), url, headers=auth(b["token"]), json=body
        )
        if method == "put" and answer.is_success:  # an upsert makes the caller's own
            assert answer.json().get("scope", b["id"]) == b["id"], answer.text
        else:
            assert answer.status_code in (403, 404), (method, url, answer.text)
        called += 1
    assert called >= 12, f"only {called} tenant-owned routes found"
    for listing in ("/v1/watches", "/v1/webhooks", "/v1/keys", "/v1/flags", "/v1/users",
                    "/v1/channels", "/v1/jobs"):  # fmt: skip
        answer = await stack.client.get(listing, headers=auth(b["token"]))
        assert answer.status_code == 200
        assert a["id"] not in answer.text, listing
    draft = await stack.client.get(f"/v1/drafts/{ids['draft']}", headers=auth(a["token"]))
    assert draft.json()["text"] == "alpha's draft"  # b's draft of that id is b's own
    # and the first tenant's things are all still there for it
    mine = await stack.client.get(f"/v1/watches/{ids['watch_id']}", headers=auth(a["token"]))
    assert mine.status_code == 200
    flag = await stack.client.get("/v1/flags/beta-reports", headers=auth(a["token"]))
    assert flag.json()["percent"] == 10


async def _resources_of(stack: Stack, owner: dict[str, str]) -> dict[str, str]:
    """One of each tenant-owned thing; answers the path parameter names and ids."""
    headers = auth(owner["token"])
    watch = await stack.client.post(
        "/v1/watches", json={"kind": "hashtag", "target": "quake"}, headers=headers
    )
    hook = await stack.client.post(
        "/v1/webhooks", json={"url": "https://hooks.example/alpha"}, headers=headers
    )
    flag = await stack.client.put("/v1/flags/beta-reports", json={"percent": 10}, headers=headers)
    await stack.client.post("/v1/users", json={"email": "a@alpha.test"}, headers=headers)
    keys = (await stack.client.get("/v1/keys", headers=headers)).json()
    channel = await stack.client.post(
        "/v1/channels",
        json={"network": "bluesky", "account": "alpha.bsky.social",
              "service": "https://bsky.social", "app_password": "xxxx-xxxx-xxxx-xxxx"},
        headers=headers,
    )  # fmt: skip
    assert channel.status_code == 201, channel.text
    post = await stack.client.post(
        "/v1/posts",
        json={"text": "due long after this test", "channels": [channel.json()["id"]],
              "at": "2100-01-01T00:00:00Z"},
        headers=headers,
    )  # fmt: skip
    series = await stack.client.post(
        "/v1/posts",
        json={"text": "every Monday", "channels": [channel.json()["id"]],
              "at": "2100-01-04T09:00", "repeat": "FREQ=WEEKLY;BYDAY=MO"},
        headers=headers,
    )  # fmt: skip
    media = await stack.client.post(
        "/v1/media", content=png(), headers={**headers, "content-type": "image/png"}
    )
    draft = await stack.client.put(
        "/v1/drafts/00000000000000aa", json={"text": "alpha's draft"}, headers=headers
    )
    for answer in (watch, hook, flag, post, series, media, draft):
        assert answer.status_code in (200, 201), answer.text
    return {
        "post": post.json()["post"],
        "series": series.json()["series"],
        "media": media.json()["id"],
        "draft": "00000000000000aa",
        "watch_id": watch.json()["id"],
        "webhook_id": hook.json()["id"],
        "name": "beta-reports",
        "key_id": keys[0]["id"],
        "channel": channel.json()["id"],
        "job": post.json()["jobs"][0]["id"],
    }


async def test_a_burst_over_the_limit_is_refused_with_retry_after(tmp_path: Path) -> None:
    built, exits = await start_stack(
        tmp_path / "data", rate_limit_key_burst=3, rate_limit_key_per_s=1.0
    )
    async with exits:
        owner = await built.tenant("newsroom")
        answers = [
            await built.client.get("/v1/mentions?q=ma", headers=auth(owner["token"]))
            for _ in range(4)
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[3].headers["retry-after"] == "1"
    assert "too many requests" in answers[3].json()["detail"]


async def test_the_request_id_reaches_the_answer_the_events_and_the_logs(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    owner = await stack.tenant("newsroom")
    body = (FIXTURES / "jetstream-sample.jsonl").read_bytes()
    pushed = await stack.client.post(
        "/v1/ingest/jetstream", content=body,
        headers={**auth(await stack.pusher(owner)), "X-Request-ID": "push-4711"},
    )  # fmt: skip
    assert pushed.status_code == 200, pushed.text
    assert pushed.headers["x-request-id"] == "push-4711"
    posts = await stack.platform.event_log.read(POSTS, 1, 1000)
    assert posts
    assert {r.event.trace for r in posts} == {"push-4711"}
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    pushed_line = next(line for line in lines if line["event"] == "push ingested")
    assert pushed_line["request_id"] == "push-4711"

    traced = await stack.client.get(
        "/v1/mentions?q=ma",
        headers={**auth(owner["token"]), "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"},
    )
    assert traced.headers["x-request-id"] == "a" * 32  # the caller's trace id
    generated = await stack.client.get("/v1/mentions?q=ma", headers=auth(owner["token"]))
    assert len(generated.headers["x-request-id"]) == 32


async def test_usage_goes_to_its_own_topic_and_metrics_count_each_route(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    for _ in range(3):
        await stack.client.get("/v1/mentions?q=ma", headers=auth(owner["token"]))
    await stack.gateway.usage.flush()
    used = [r.event for r in await stack.platform.event_log.read(USAGE, 1, 100)]
    mentions = [u for u in used if isinstance(u, FeatureUsed) and u.feature == "/v1/mentions"]
    assert len(mentions) == 3
    assert {u.tenant for u in mentions} == {owner["id"]}
    assert (await stack.client.get("/metrics")).status_code == 401
    assert (await stack.client.get("/metrics", headers=auth(owner["token"]))).status_code == 403
    metrics = (await stack.client.get("/metrics", headers=auth(OPERATOR))).text
    assert (
        'hubbub_http_requests_total{method="GET",route="/v1/mentions",service="gateway",'
        'status="200"}' in metrics
    )
    assert (
        'hubbub_http_request_seconds_bucket{le="0.005",route="/v1/mentions",service="gateway"'
        in metrics
    )


async def test_when_mentions_is_down_only_its_routes_answer_503(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    headers = auth(owner["token"])
    assert (await stack.client.get("/v1/mentions?q=ma", headers=headers)).status_code == 200
    await stack.servers["mentions"].__aexit__(None, None, None)  # the mentions role stops
    await stack.gateway.health.check()

    down = await stack.client.get("/v1/mentions?q=ma", headers=headers)
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    assert "mentions service is down" in down.json()["detail"]
    health = (await stack.client.get("/healthz")).json()
    assert health == {
        "status": "degraded",
        "roles": {"gateway": "ok", "ingest": "ok", "mentions": "down", "analytics": "ok",
                  "publishing": "ok", "notifications": "ok", "listening": "ok", "legacy": "ok",
                  "web": "ok"},
    }  # fmt: skip
    reports = await stack.client.get(
        "/v1/reports/top/hashtags",
        params={"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
        headers=headers,
    )
    assert reports.status_code == 200, reports.text
    pushed = await stack.client.post(
        "/v1/ingest/jetstream", content=(FIXTURES / "jetstream-sample.jsonl").read_bytes(),
        headers=auth(await stack.pusher(owner)),
    )  # fmt: skip
    assert pushed.status_code == 200
    assert pushed.json()["accepted"] > 0


async def test_an_upstream_that_stops_answering_opens_its_circuit(tmp_path: Path) -> None:
    built, exits = await start_stack(tmp_path / "data", breaker_failures=2, breaker_reset_s=30)
    async with exits:
        owner = await built.tenant("newsroom")
        await built.client.put(
            "/v1/platform/routes", json={"prefix": "/v1/legacy", "target": "legacy"},
            headers=auth(OPERATOR),
        )  # fmt: skip
        slow = [
            await built.client.get("/v1/legacy/slow", headers=auth(owner["token"]))
            for _ in range(3)
        ]
        other = await built.client.get("/v1/mentions?q=ma", headers=auth(owner["token"]))
    assert [a.status_code for a in slow] == [504, 504, 503]
    assert "circuit is open" in slow[2].json()["detail"]
    assert int(slow[2].headers["retry-after"]) >= 25
    assert other.status_code == 200  # one breaker per upstream


async def test_legacy_answers_stream_through_with_the_callers_tenant(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    await stack.client.put(
        "/v1/platform/routes", json={"prefix": "/v1/legacy", "target": "legacy"},
        headers=auth(OPERATOR),
    )  # fmt: skip
    streamed = await stack.client.get("/v1/legacy/stream", headers=auth(owner["token"]))
    assert streamed.text == "".join(f"chunk {n}\n" for n in range(5))
    whoami = await stack.client.get(
        "/v1/legacy/whoami", headers={**auth(owner["token"]), "X-Hubbub-Tenant": "someone-else"}
    )
    assert whoami.json() == {"tenant": owner["id"]}  # a client cannot claim a tenant


async def test_a_stream_whose_client_goes_away_ends_upstream_at_once(stack: Stack) -> None:
    """A live stream (SSE) through the gateway, its page closed: the service's end of it
    ends too, rather than when the service would have ended it."""
    owner = await stack.tenant("newsroom")
    await stack.client.put(
        "/v1/platform/routes", json={"prefix": "/v1/legacy", "target": "legacy"},
        headers=auth(OPERATOR),
    )  # fmt: skip
    assert stack.legacy is not None
    async with (
        httpx.AsyncClient(base_url=stack.url, timeout=10) as client,
        client.stream("GET", "/v1/legacy/forever", headers=auth(owner["token"])) as live,
    ):
        lines = live.aiter_lines()
        assert [await anext(lines), await anext(lines)] == ["tick", "tick"]

    async def ended() -> bool:
        return getattr(stack.legacy.state, "ended", 0) == 1

    await until(ended)


async def test_flipping_a_route_live_fails_no_request(tmp_path: Path) -> None:
    built, exits = await start_stack(
        tmp_path / "data", rate_limit_key_burst=100_000, rate_limit_tenant_burst=100_000
    )
    async with exits:
        await _flip_under_load(built)


async def _flip_under_load(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    headers = auth(owner["token"])

    async def flip(target: str) -> None:
        answer = await stack.client.put(
            "/v1/platform/routes", json={"prefix": "/v1/mentions", "target": target},
            headers=auth(OPERATOR),
        )  # fmt: skip
        assert answer.status_code == 200, answer.text

    await flip("legacy")
    sides: list[str] = []
    stop = asyncio.Event()

    async def keep_asking() -> None:
        while not stop.is_set():
            answer = await stack.client.get("/v1/mentions?q=ma", headers=headers)
            assert answer.status_code == 200, answer.text
            sides.append("legacy" if answer.json() == {"from": "legacy", "q": "ma"} else "new")

    callers = [asyncio.create_task(keep_asking()) for _ in range(4)]
    await asyncio.sleep(0.3)
    await flip("new")
    await asyncio.sleep(0.3)
    await flip("legacy")
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*callers)
    assert "new" in sides
    assert sides[0] == "legacy"
    assert sides[-1] == "legacy"
    assert len(sides) > 20


async def test_a_percentage_route_is_sticky_per_tenant(stack: Stack) -> None:
    await stack.client.put(
        "/v1/platform/routes", json={"prefix": "/v1/mentions", "target": "percent", "percent": 50},
        headers=auth(OPERATOR),
    )  # fmt: skip
    seen: dict[str, set[str]] = {}
    for n in range(16):
        owner = await stack.tenant(f"tenant-{n}")
        for _ in range(3):
            answer = await stack.client.get("/v1/mentions?q=ma", headers=auth(owner["token"]))
            side = "legacy" if "from" in answer.text else "new"
            seen.setdefault(owner["id"], set()).add(side)
    assert all(len(sides) == 1 for sides in seen.values())  # sticky
    assert {next(iter(s)) for s in seen.values()} == {"new", "legacy"}  # split


async def test_shadow_mode_compares_both_sides_off_the_path(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    await stack.client.put(
        "/v1/platform/routes", json={"prefix": "/v1/mentions", "target": "new", "shadow": True},
        headers=auth(OPERATOR),
    )  # fmt: skip
    answer = await stack.client.get("/v1/mentions?q=ma", headers=auth(owner["token"]))
    assert answer.status_code == 200
    assert answer.json() == []
    for _ in range(100):
        metrics = await stack.client.get("/metrics", headers=auth(OPERATOR))
        if (shadowed := _metric(metrics, "different")) >= 1:
            break
        await asyncio.sleep(0.02)
    assert shadowed == 1  # legacy answered otherwise, and it was noticed


def _metric(answer: httpx.Response, outcome: str) -> float:
    for line in answer.text.splitlines():
        if line.startswith("hubbub_gateway_shadow_total") and (
            f'outcome="{outcome}"' in line and 'route="/v1/mentions"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_route_rolls_out_behind_a_flag_and_is_killed_live(stack: Stack) -> None:
    early, late = await stack.tenant("early"), await stack.tenant("late")
    params = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}

    async def reports(tenant: dict[str, str]) -> int:
        answer = await stack.client.get(
            "/v1/reports/top/hashtags", params=params, headers=auth(tenant["token"])
        )
        return answer.status_code

    assert [await reports(early), await reports(late)] == [200, 200]  # no flag: on
    flag = {"enabled": True, "percent": 0, "allow": [early["id"]]}
    answer = await stack.client.put(
        "/v1/platform/flags/route.reports", json=flag, headers=auth(OPERATOR)
    )
    assert answer.status_code == 200, answer.text
    await stack.gateway.flags.catch_up()
    assert [await reports(early), await reports(late)] == [200, 403]
    refused = await stack.client.get(
        "/v1/reports/top/hashtags", params=params, headers=auth(late["token"])
    )
    assert "route.reports" in refused.json()["detail"]

    killed = {**flag, "enabled": False}
    await stack.client.put("/v1/platform/flags/route.reports", json=killed, headers=auth(OPERATOR))
    for _ in range(100):  # the gateway follows the log: no restart, no call to it
        if await reports(early) == 403:
            break
        await asyncio.sleep(0.02)
    assert [await reports(early), await reports(late)] == [403, 403]
    mentions = await stack.client.get("/v1/mentions?q=ma", headers=auth(early["token"]))
    assert mentions.status_code == 200  # other routes are not behind it


@pytest.mark.services
async def test_gateway_replicas_share_rate_limits_through_redis(tmp_path: Path) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    shared = {
        "rate_limiter": "redis", "stream_prefix": unique_name("gw"), "rate_limit_key_burst": 4,
        "rate_limit_key_per_s": 0.5,
    }  # fmt: skip
    built, exits = await start_stack(tmp_path / "data", **shared)
    async with exits:
        owner = await built.tenant("newsroom")
        other = await build_gateway(built.gateway_settings, SystemClock())  # a second replica
        exits.push_async_callback(other.close)
        second = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=observed(other)), base_url="http://gateway-2"
        )
        exits.push_async_callback(second.aclose)
        answers = []
        for client in (built.client, second, built.client, second, built.client):
            answer = await client.get("/v1/mentions?q=ma", headers=auth(owner["token"]))
            answers.append(answer.status_code)
    assert answers == [200, 200, 200, 200, 429]


async def test_control_characters_are_refused_where_people_name_things(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    headers = auth(owner["token"])
    refused = [
        await stack.client.post(
            "/v1/watches", json={"kind": "term", "target": "solar\u0000flare"}, headers=headers
        ),
        await stack.client.post("/v1/users", json={"email": "a\u0000@b.test"}, headers=headers),
        await stack.client.post("/v1/keys", json={"name": "ci\u001b[31m"}, headers=headers),
        await stack.client.post("/v1/tenants", json={"name": "evil\u0000"}, headers=auth(OPERATOR)),
    ]
    assert [answer.status_code for answer in refused] == [422, 422, 422, 422]
    assert all("control characters" in answer.text for answer in refused)
    kept = await stack.client.post(
        "/v1/watches", json={"kind": "term", "target": "solar flare"}, headers=headers
    )
    assert kept.status_code == 201


def _role_of(path: str) -> str:
    if path.startswith("/v1/ingest"):
        return "ingest"
    if path.startswith(PUBLISHING_PREFIXES):
        return "publishing"
    return "mentions" if path.startswith("/v1/mentions") else "analytics"


PUBLISHING_PREFIXES = tuple(p for p, role in SERVICE_ROUTES.items() if role == "publishing")


async def test_a_role_refuses_a_forged_tenant_the_gateway_is_let_through(stack: Stack) -> None:
    """Every route a role serves, read from the API description: called on the role's own
    port with a tenant header (and a made-up signature) it is 401; the same request
    through the gateway, with a key, is let through (whatever the route then answers)."""
    owner = await stack.tenant("newsroom")
    pusher = await stack.pusher(owner)
    spec = (await stack.client.get("/openapi.json")).json()
    urls = {
        "ingest": stack.gateway_settings.ingest_url,
        "mentions": stack.gateway_settings.mentions_url,
        "analytics": stack.gateway_settings.analytics_url,
        "publishing": stack.gateway_settings.publishing_url,
    }
    forgeries = [
        {"x-hubbub-tenant": owner["id"]},
        {"x-hubbub-tenant": owner["id"], "x-hubbub-key": "k", "x-hubbub-time": "1",
         "x-hubbub-signature": "0" * 64},
    ]  # fmt: skip
    routes = [
        (method, path)
        for path, item in spec["paths"].items()
        if path.startswith(("/v1/ingest", "/v1/mentions", "/v1/reports", "/v1/watches",
                            "/v1/webhooks", "/v1/best-times", *PUBLISHING_PREFIXES))
        for method in item
    ]  # fmt: skip
    assert len(routes) >= 10, routes
    for publishing in ("/v1/drafts/{draft}", "/v1/series/{series}", "/v1/posts/{post}/history",
                       "/v1/channels/{channel}/queue", "/v1/media"):  # fmt: skip
        assert any(path == publishing for _, path in routes), publishing
    async with httpx.AsyncClient() as direct:
        for method, path in routes:
            url = path.replace("{source}", "jetstream").replace("{", "").replace("}", "")
            role = _role_of(path)
            for forged in forgeries:
                answer = await direct.request(
                    method.upper(), urls[role] + url, headers=forged, json={}
                )
                assert answer.status_code == 401, (method, url, answer.text)
            key = pusher if role == "ingest" else owner["token"]
            through = await stack.client.request(
                method.upper(), url, headers=auth(key), content=b"{}"
            )
            if (method, path) == ("post", "/v1/calendar/feed"):  # let through, then refused:
                assert through.json()["detail"].startswith("a calendar feed is a person's")
                continue  # a key may not make one (a person signs in)
            assert through.status_code not in (401, 403), (method, url, through.text)
            assert through.status_code < 500, (method, url, through.text)
    healthy = await direct_get(urls["mentions"] + "/healthz")
    assert healthy == 200  # health, readiness and metrics stay open on a role


async def direct_get(url: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).status_code


async def test_the_platforms_kill_switch_beats_a_tenants_flag_of_that_name(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    headers = auth(owner["token"])
    own = await stack.client.put("/v1/flags/beta", json={"percent": 100}, headers=headers)
    assert own.status_code == 200, own.text
    killed = await stack.client.put(
        "/v1/platform/flags/beta", json={"enabled": False}, headers=auth(OPERATOR)
    )
    assert killed.status_code == 200, killed.text
    await stack.gateway.flags.catch_up()
    answer = await stack.client.get("/v1/flags/beta/evaluation", headers=headers)
    assert answer.json() == {"flag": "beta", "value": False, "reason": "DISABLED",
                             "scope": "platform"}  # fmt: skip
    for reserved in ("route.reports", "beta"):
        refused = await stack.client.put(
            f"/v1/flags/{reserved}", json={"percent": 100}, headers=headers
        )
        assert refused.status_code == 403, reserved
    denied = await stack.client.put(
        "/v1/platform/flags/gamma", json={"percent": 100, "deny": [owner["id"]]},
        headers=auth(OPERATOR),
    )  # fmt: skip
    assert denied.status_code == 200
    await stack.gateway.flags.catch_up()
    answer = await stack.client.get("/v1/flags/gamma/evaluation", headers=headers)
    assert (answer.json()["value"], answer.json()["scope"]) == (False, "platform")


async def test_only_the_same_role_or_above_revokes_a_key(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    admin = await stack.key(owner, "admin")
    editor = await stack.made_key(owner, "editor")
    keys = (await stack.client.get("/v1/keys", headers=auth(admin))).json()
    owners_key = next(k["id"] for k in keys if k["role"] == "owner")
    refused = await stack.client.delete(f"/v1/keys/{owners_key}", headers=auth(admin))
    assert refused.status_code == 403
    assert "cannot revoke" in refused.json()["detail"]
    assert (await stack.client.get("/v1/tenant", headers=auth(owner["token"]))).status_code == 200
    revoked = await stack.client.delete(f"/v1/keys/{editor['id']}", headers=auth(admin))
    assert revoked.status_code == 200
    assert (await stack.client.get("/v1/tenant", headers=auth(editor["token"]))).status_code == 401


async def test_a_key_refused_by_its_own_limit_spends_none_of_its_tenants(tmp_path: Path) -> None:
    built, exits = await start_stack(
        tmp_path / "data", rate_limit_key_per_s=0.001, rate_limit_key_burst=2,
        rate_limit_tenant_per_s=0.001, rate_limit_tenant_burst=6,
    )  # fmt: skip
    async with exits:
        owner = await built.tenant("newsroom")
        busy, other = await built.key(owner, "viewer"), await built.key(owner, "viewer")
        busy_answers = [
            (await built.client.get("/v1/tenant", headers=auth(busy))).status_code
            for _ in range(10)
        ]
        assert busy_answers == [200, 200] + [429] * 8
        other_answers = [
            (await built.client.get("/v1/tenant", headers=auth(other))).status_code
            for _ in range(2)
        ]
    assert other_answers == [200, 200]  # of the tenant's 6: 2 made the keys, 2 the busy one


async def test_every_endpoint_limits_the_body_it_reads(tmp_path: Path) -> None:
    built, exits = await start_stack(tmp_path / "data", max_body_bytes=4096)
    async with exits:
        owner = await built.tenant("newsroom")
        big = {"kind": "hashtag", "target": "x", "pad": "y" * 10_000}
        for path in ("/v1/watches", "/v1/keys", "/v1/flags/big"):
            answer = await built.client.post(path, json=big, headers=auth(owner["token"]))
            assert answer.status_code == 413, (path, answer.text)
            assert "over 4096 bytes" in answer.json()["detail"]


async def test_the_platform_status_shows_the_ingest_rate_and_each_roles_lag(stack: Stack) -> None:
    owner = await stack.tenant("Newsroom")
    viewer = await stack.key(owner, "viewer")
    assert (await stack.client.get("/v1/platform/status")).status_code == 401
    await stack.platform.analytics()  # the roles' followers, as `hubbub serve` starts them
    await stack.platform.mentions()
    await stack.gateway.progress.read()
    await stack.platform.event_log.append(EVENTS)
    await asyncio.sleep(0.05)
    await stack.gateway.progress.read()
    posts = sum(1 for event in EVENTS if isinstance(event, PostPublished))

    async def status() -> dict[str, Any]:
        await stack.gateway.health.check()
        answer = await stack.client.get("/v1/platform/status", headers=auth(viewer))
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    async def caught_up() -> bool:
        behind = (await status())["roles"]["analytics"].get("behind")
        return behind == {"deletes": 0, "engagement": 0, "posts": 0}

    await until(caught_up)
    found = await status()
    assert found["topics"]["posts"]["head"] == posts
    assert found["topics"]["posts"]["per_s"] > 0  # appended between the two readings
    assert found["ingest_per_s"] >= found["topics"]["posts"]["per_s"]
    assert found["roles"]["mentions"] == {"status": "ok", "behind": {"pages": 0}}
    assert found["roles"]["gateway"] == {"status": "ok"}
    assert "behind" not in found["roles"]["ingest"]  # it follows no topic
