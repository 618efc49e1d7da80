"""Watches and alert webhooks over HTTP, on the same log the CLI and the monitor read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args, get_type_hints

import httpx
import msgspec
import pytest

from hubbub.analytics.alerts import Alert
from hubbub.analytics.views import WatchesView, loaded
from hubbub.analytics.webhooks import signature
from hubbub.bootstrap import Platform, build_platform
from hubbub.kernel.events import CONTROL, AlertRaised, WatchChanged, WebhookDelivered
from hubbub.settings import Settings
from tests.conftest import api_client, serving, until
from tests.support.cli import cli
from tests.support.receiver import Receiver

TENANT = "newsroom"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def platform(data_dir: Path) -> AsyncIterator[Platform]:
    settings = Settings(
        data_dir=data_dir, webhook_deliveries_kept=2000, webhook_allowed_networks=["127.0.0.0/8"]
    )
    built = await build_platform(settings)
    yield built
    await built.close()


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(platform, tenant=TENANT) as client:  # signed as the gateway's
        yield client


async def add_watch(client: httpx.AsyncClient, **body: str) -> dict[str, str]:
    answer = await client.post("/v1/watches", json=body)
    assert answer.status_code == 201, answer.text
    watch: dict[str, str] = answer.json()
    return watch


async def test_a_watch_is_added_listed_read_and_removed(client: httpx.AsyncClient) -> None:
    quake = await add_watch(client, kind="hashtag", target="#Quake")
    assert quake == {
        "id": quake["id"], "tenant": TENANT, "kind": "hashtag", "target": "quake",
        "sensitivity": "medium",
    }  # fmt: skip
    page = await add_watch(client, kind="page", target="did:plc:Mayor", sensitivity="high")
    assert page["target"] == "did:plc:Mayor"  # a page id is kept as given

    assert (await client.get("/v1/watches")).json() == [quake, page]
    assert (await client.get(f"/v1/watches/{quake['id']}")).json() == quake

    assert (await client.delete(f"/v1/watches/{quake['id']}")).status_code == 204
    assert (await client.get("/v1/watches")).json() == [page]
    assert (await client.get(f"/v1/watches/{quake['id']}")).status_code == 404
    assert (await client.delete(f"/v1/watches/{quake['id']}")).status_code == 404


@pytest.mark.parametrize("kind", get_args(get_type_hints(WatchChanged)["kind"]))
async def test_every_kind_a_watch_can_have_is_accepted(
    client: httpx.AsyncClient, kind: str
) -> None:
    assert (await add_watch(client, kind=kind, target="python"))["kind"] == kind


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"kind": "vibe", "target": "python"}, "'hashtag'"),
        ({"target": "python"}, "Field required"),
        ({"kind": "hashtag", "target": ""}, "the target is empty"),
        ({"kind": "hashtag", "target": " # "}, "the target is empty"),
        ({"kind": "page", "target": "did:plc:x", "sensitivity": "extreme"}, "'medium'"),
    ],
)
async def test_a_bad_watch_gets_a_422_that_says_what_is_wrong(
    client: httpx.AsyncClient, body: dict[str, str], says: str
) -> None:
    answer = await client.post("/v1/watches", json=body)
    assert answer.status_code == 422
    assert says in answer.text
    assert (await client.get("/v1/watches")).json() == []


async def test_another_tenants_watch_and_webhook_are_not_found(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    watch = await cli(data_dir, "watch", "add", "--hashtag", "quake", "--tenant", "rival")
    added = await cli(data_dir, "webhook", "add", "--url", "https://rival.example/h",
                      "--tenant", "rival")  # fmt: skip
    webhook = added.split()[1]
    assert (await client.get("/v1/watches")).json() == []
    assert (await client.get(f"/v1/watches/{watch}")).status_code == 404
    assert (await client.delete(f"/v1/watches/{watch}")).status_code == 404
    assert (await client.get("/v1/webhooks")).json() == []
    assert (await client.delete(f"/v1/webhooks/{webhook}")).status_code == 404
    assert (await client.get("/v1/watches/nothing")).json() == {"detail": "no watch 'nothing'"}


async def test_the_cli_and_the_api_see_the_same_watches(
    client: httpx.AsyncClient, platform: Platform, data_dir: Path
) -> None:
    from_api = await add_watch(client, kind="hashtag", target="#Election")
    (folded,) = (await loaded(WatchesView(platform.event_log))).all()
    assert (folded.watch, folded.tenant, folded.target) == (from_api["id"], TENANT, "election")
    listed = json.loads(await cli(data_dir, "watch", "list", "--json"))
    assert [(w["watch"], w["target"]) for w in listed] == [(from_api["id"], "election")]

    from_cli = await cli(data_dir, "watch", "add", "--page", "did:plc:mayor", "--tenant", TENANT)
    assert (await client.get(f"/v1/watches/{from_cli}")).json()["target"] == "did:plc:mayor"
    await cli(data_dir, "watch", "remove", from_api["id"])
    assert [w["id"] for w in (await client.get("/v1/watches")).json()] == [from_cli]


async def test_a_webhook_secret_is_answered_once_and_never_listed(
    client: httpx.AsyncClient,
) -> None:
    made = await client.post("/v1/webhooks", json={"url": "https://hooks.example/a"})
    assert made.status_code == 201
    hook = made.json()
    assert len(hook["secret"]) == 43  # 32 random bytes, URL-safe base64, as the CLI makes
    chosen = await client.post(
        "/v1/webhooks", json={"url": "https://hooks.example/b", "secret": "s3cret-of-ours"}
    )
    assert chosen.json()["secret"] == "s3cret-of-ours"

    listed = await client.get("/v1/webhooks")
    assert listed.json() == [
        {"id": hook["id"], "tenant": TENANT, "url": "https://hooks.example/a"},
        {"id": chosen.json()["id"], "tenant": TENANT, "url": "https://hooks.example/b"},
    ]
    assert "s3cret" not in listed.text
    assert hook["secret"] not in listed.text

    assert (await client.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
    assert [h["id"] for h in (await client.get("/v1/webhooks")).json()] == [chosen.json()["id"]]
    assert (await client.delete(f"/v1/webhooks/{hook['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"url": "ftp://hooks.example/a"}, "must start with https:// or http://"),
        ({"url": "hooks.example/a"}, "must start with https:// or http://"),
        ({}, "Field required"),
        ({"url": "https://hooks.example/a", "secret": ""}, "at least 1 character"),
    ],
)
async def test_a_bad_webhook_gets_a_422_that_says_what_is_wrong(
    client: httpx.AsyncClient, body: dict[str, str], says: str
) -> None:
    answer = await client.post("/v1/webhooks", json=body)
    assert answer.status_code == 422
    assert says in answer.text
    assert (await client.get("/v1/webhooks")).json() == []


def delivery(n: int, tenant: str) -> WebhookDelivered:
    return WebhookDelivered(
        id=f"delivery-{n:06d}", key=tenant, ts=1_800_000_000_000_000 + n, source="webhooks",
        tenant=tenant, webhook="h1", alert=f"alert-{n}", status=200, attempts=1,
    )  # fmt: skip


async def test_the_delivery_log_is_the_tenants_newest_first_a_page_at_a_time(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    # More than the log is read back at once, and every third one another tenant's.
    tenants = [TENANT if n % 3 else "rival" for n in range(2500)]
    await platform.event_log.append([delivery(n, t) for n, t in enumerate(tenants)])
    ours = [f"alert-{n}" for n in reversed(range(2500)) if tenants[n] == TENANT]

    async def alerts(**params: int) -> list[str]:
        answer = await client.get("/v1/webhooks/deliveries", params=params)
        assert answer.status_code == 200, answer.text
        return [d["alert"] for d in answer.json()]

    assert await alerts() == ours[:50]
    assert await alerts(limit=3) == ["alert-2498", "alert-2497", "alert-2495"]
    assert await alerts(limit=1000, offset=600) == ours[600:1600]
    assert await alerts(limit=10, offset=len(ours) - 4) == ours[-4:]
    assert await alerts(offset=len(ours)) == []
    too_many = await client.get("/v1/webhooks/deliveries", params={"limit": 1001})
    assert too_many.status_code == 422


def raised(n: int, tenant: str) -> AlertRaised:
    alert = Alert(tenant, f"w{n}", "hashtag", "quake", 29_600_000 + n, 40, 2.0, 9.0)
    message = msgspec.json.encode(alert).decode()
    return AlertRaised(
        id=f"alert-{n}", key=tenant, ts=1, source="analytics", name="spike:hashtag:quake",
        message=message,
    )  # fmt: skip


async def delivered(client: httpx.AsyncClient, count: int = 1) -> list[dict[str, Any]]:
    """The tenant's delivery log once it holds `count` deliveries."""

    async def logged() -> bool:
        return len((await client.get("/v1/webhooks/deliveries")).json()) >= count

    await until(logged)
    found: list[dict[str, Any]] = (await client.get("/v1/webhooks/deliveries")).json()
    return found


async def test_an_alert_reaches_a_webhook_added_over_http_signed_with_its_secret(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    receiver = Receiver(failures=0)
    async with serving(receiver) as url:
        hook = (await client.post("/v1/webhooks", json={"url": f"{url}/hook"})).json()
        await platform.event_log.append([raised(1, TENANT)])
        (logged,) = await delivered(client)

    ((body, signed),) = receiver.received
    logged_hooks = await platform.event_log.read(CONTROL, 1, 100)
    assert all(hook["secret"] not in repr(r.event) for r in logged_hooks)  # sealed at rest
    stamp = signed.split(",")[0].removeprefix("t=")
    assert signed == signature(hook["secret"], int(stamp), body)
    assert (logged["webhook"], logged["alert"], logged["status"]) == (hook["id"], "alert-1", 204)


@pytest.mark.parametrize(
    "path", ["/v1/watches", "/v1/webhooks", "/v1/webhooks/deliveries", "/v1/watches/w1"]
)
async def test_a_request_without_a_tenant_is_refused_not_given_a_default(
    platform: Platform, path: str
) -> None:
    async with api_client(platform, tenant="") as anonymous:
        answer = await anonymous.get(path)
    assert answer.status_code == 401
    assert "through the gateway" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("http://169.254.169.254/latest/meta-data", "is a link-local address"),
        ("http://[::1]:8080/hook", "::1 is a loopback address"),
        ("http://[::ffff:192.168.0.1]/hook", "::ffff:192.168.0.1 (192.168.0.1) is a private"),
        ("http://[fe80::1]/hook", "is a link-local address"),
        ("http://[fd00::1]/hook", "is a private address"),
        ("http://0.0.0.0/hook", "is an unspecified address"),
        ("http://224.0.0.1/hook", "is a multicast address"),
        ("http://240.0.0.1/hook", "is a reserved address"),
        ("http://167772161/hook", "167772161 (10.0.0.1) is a private address"),
        ("http://0x0a000001/hook", "0x0a000001 (10.0.0.1) is a private address"),
        ("http://localhost:8080/hook", "localhost (::1) is a loopback address"),
        ("https://admin.localhost./", "admin.localhost. (::1) is a loopback address"),
    ],
)
async def test_a_webhook_to_an_internal_address_is_refused_saying_why(
    client: httpx.AsyncClient, url: str, says: str
) -> None:
    answer = await client.post("/v1/webhooks", json={"url": url})
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "url"]
    assert says in error["msg"]
    assert "HUBBUB_WEBHOOK_ALLOWED_NETWORKS" in error["msg"]
    assert (await client.get("/v1/webhooks")).json() == []


async def test_the_delivery_log_keeps_a_tenants_newest_and_bounds_the_offset(
    data_dir: Path,
) -> None:
    platform = await build_platform(Settings(data_dir=data_dir, webhook_deliveries_kept=3))
    try:
        await platform.event_log.append([delivery(n, TENANT) for n in range(10)])
        async with api_client(platform, tenant=TENANT) as client:
            listed = await client.get("/v1/webhooks/deliveries", params={"limit": 10})
            too_far = await client.get("/v1/webhooks/deliveries", params={"offset": 10_001})
    finally:
        await platform.close()
    assert [d["alert"] for d in listed.json()] == ["alert-9", "alert-8", "alert-7"]
    assert too_far.status_code == 422


async def test_a_tenant_has_at_most_the_watches_and_webhooks_the_settings_allow(
    data_dir: Path,
) -> None:
    settings = Settings(data_dir=data_dir, watches_per_tenant=2, webhooks_per_tenant=1)
    platform = await build_platform(settings)
    try:
        async with api_client(platform, tenant=TENANT) as client:
            for target in ("a", "b"):
                await add_watch(client, kind="hashtag", target=target)
            third = await client.post("/v1/watches", json={"kind": "hashtag", "target": "c"})
            hook = {"url": "https://hooks.example/a"}
            assert (await client.post("/v1/webhooks", json=hook)).status_code == 201
            second_hook = await client.post("/v1/webhooks", json=hook)
    finally:
        await platform.close()
    assert third.status_code == second_hook.status_code == 422
    assert "has 2 watches, the most it may have (HUBBUB_WATCHES_PER_TENANT)" in third.text
    assert "has 1 webhooks, the most it may have (HUBBUB_WEBHOOKS_PER_TENANT)" in second_hook.text


async def test_a_tenants_alerts_are_listed_newest_first_and_no_one_elses(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    assert (await client.get("/v1/alerts")).json() == []
    await platform.event_log.append([raised(1, TENANT), raised(2, "rival"), raised(3, TENANT)])
    listed = (await client.get("/v1/alerts")).json()
    assert [a["watch"] for a in listed] == ["w3", "w1"]
    assert listed[0] == {
        "watch": "w3", "kind": "hashtag", "target": "quake",
        "minute": "2026-04-12T13:23:00Z", "count": 40, "usual": 2.0, "threshold": 9.0,
    }  # fmt: skip
    assert [a["watch"] for a in (await client.get("/v1/alerts?limit=1")).json()] == ["w3"]
