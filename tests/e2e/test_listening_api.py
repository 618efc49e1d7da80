"""`/v1/streams` through the gateway, on the listening role: saving searches (and the
errors of one that does not parse, or one too many), the firehose matched against them
from the next post, stored matches searched and paged, a query tried on the last hour,
deleted posts leaving, the live stream over SSE resumed with `Last-Event-ID` by a real
SSE client, and nothing of one tenant's reaching another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from hubbub.bootstrap import open_request_signer
from hubbub.kernel.events import PostDeleted, PostPublished
from tests.conftest import until
from tests.support.stack import Stack, auth, start_stack

T0 = 1_800_000_000_000_000


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    fast = {"listening_stream_s": 4.0, "listening_heartbeat_s": 0.3,
            "listening_live_poll_s": 0.05, "listening_max_searches": 3,
            "listening_interval_s": 0.02}  # fmt: skip
    built, resources = await start_stack(tmp_path, fast)
    async with resources:
        yield built


def post(n: int, text: str, **more: Any) -> PostPublished:
    now = int(time.time() * 1e6)  # within the last hour, as `streams test` reads
    return PostPublished(
        id=f"test-post-{n}", key=f"did:plc:author{n}", ts=now, source="test",
        post=f"at://did:plc:author{n}/app.bsky.feed.post/{n:013d}", author=f"did:plc:author{n}",
        text=text, langs=more.pop("langs", ["en"]), created_at=now, **more,
    )  # fmt: skip


async def add_stream(stack: Stack, token: str, query: str, name: str = "") -> dict[str, Any]:
    made = await stack.client.post(
        "/v1/streams", json={"name": name, "query": query}, headers=auth(token)
    )
    assert made.status_code == 201, made.text
    stream: dict[str, Any] = made.json()
    return stream


async def stored(stack: Stack, token: str, stream: str, **params: Any) -> dict[str, Any]:
    answer = await stack.client.get(
        f"/v1/streams/{stream}/matches", params=params, headers=auth(token)
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def test_streams_match_the_firehose_and_keep_each_tenants_own(stack: Stack) -> None:
    acme, globex = await stack.tenant("acme"), await stack.tenant("globex")
    brand = await add_stream(stack, acme["token"], '(hubbub OR "hub bub") NOT spam', "Brand")
    assert (brand["name"], brand["terms"], brand["costly"]) == ("Brand", 3, False)
    rival = await add_stream(stack, globex["token"], "hubbub lang:fr")
    await stack.platform.event_log.append([
        post(1, "Trying Hubbub today"), post(2, "hub bub is a phrase"),
        post(3, "hubbub spam spam"), post(4, "Hubbub en français", langs=["fr"]),
        post(5, "nothing to see"), post(6, "<img src=x onerror=alert(1)> hubbub"),
    ])  # fmt: skip

    async def folded() -> bool:
        return len((await stored(stack, acme["token"], brand["id"]))["matches"]) == 4

    await until(folded)
    mine = await stored(stack, acme["token"], brand["id"])
    assert [m["text"] for m in mine["matches"]] == [
        "<img src=x onerror=alert(1)> hubbub", "Hubbub en français", "hub bub is a phrase",
        "Trying Hubbub today",
    ]  # fmt: skip
    first = mine["matches"][-1]
    assert first["post"] == "at://did:plc:author1/app.bsky.feed.post/0000000000001"
    assert first["url"] == "https://bsky.app/profile/did:plc:author1/post/0000000000001"
    assert (first["author"], first["langs"]) == ("did:plc:author1", ["en"])

    async def theirs() -> bool:
        return len((await stored(stack, globex["token"], rival["id"]))["matches"]) == 1

    await until(theirs)
    # Another tenant's stream is not found, whichever route asks.
    for path in ("", "/matches", "/live"):
        answer = await stack.client.get(
            f"/v1/streams/{brand['id']}{path}", headers=auth(globex["token"])
        )
        assert answer.status_code == 404, path
    listed = await stack.client.get("/v1/streams", headers=auth(globex["token"]))
    assert [s["id"] for s in listed.json()["streams"]] == [rival["id"]]
    gone = await stack.client.delete(f"/v1/streams/{brand['id']}", headers=auth(globex["token"]))
    assert gone.status_code == 404

    # Searching, filtering and paging the stored matches.
    found = await stored(stack, acme["token"], brand["id"], q="FRANÇAIS")
    assert [m["text"] for m in found["matches"]] == ["Hubbub en français"]
    french = await stored(stack, acme["token"], brand["id"], lang="fr")
    assert [m["text"] for m in french["matches"]] == ["Hubbub en français"]
    page = await stored(stack, acme["token"], brand["id"], limit=3)
    rest = await stored(stack, acme["token"], brand["id"], limit=3, before=page["next"])
    assert [m["text"] for m in rest["matches"]] == ["Trying Hubbub today"]
    assert rest["next"] is None

    # A deleted post leaves the stored matches.
    await stack.platform.event_log.append([
        PostDeleted(id="test-delete-2", key="did:plc:author2", ts=T0, source="test",
                    post=post(2, "").post, author="did:plc:author2"),
    ])  # fmt: skip

    async def withdrawn() -> bool:
        return len((await stored(stack, acme["token"], brand["id"]))["matches"]) == 3

    await until(withdrawn)


async def test_a_query_that_does_not_parse_or_one_too_many_is_refused_with_why(
    stack: Stack,
) -> None:
    acme = await stack.tenant("acme")
    wrong = await stack.client.post(
        "/v1/streams", json={"query": "nike AND (adidas OR"}, headers=auth(acme["token"])
    )
    assert wrong.status_code == 400
    detail = wrong.json()["detail"]
    assert detail["position"] == len("nike AND (adidas OR")
    assert "expected" in detail["message"]
    assert detail["expected"]
    for n in range(3):
        await add_stream(stack, acme["token"], f"word{n}")
    over = await stack.client.post(
        "/v1/streams", json={"query": "one more"}, headers=auth(acme["token"])
    )
    assert over.status_code == 422
    assert "at most 3 searches" in over.json()["detail"]


async def test_a_query_is_tried_on_the_last_hour(stack: Stack) -> None:
    acme = await stack.tenant("acme")
    await stack.platform.event_log.append([
        post(1, "Café au lait"), post(2, "cafe society"), post(3, "cafeteria food"),
    ])  # fmt: skip
    tried = await stack.client.post(
        "/v1/streams/test", json={"query": "café"}, headers=auth(acme["token"])
    )
    assert tried.status_code == 200, tried.text
    assert [m["text"] for m in tried.json()["matches"]] == ["cafe society", "Café au lait"]
    assert tried.json()["scanned"] == 3


async def sse_events(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], count: int
) -> list[ServerSentEvent]:
    """The first `count` events (heartbeats aside) of a live stream, with a real client."""
    found: list[ServerSentEvent] = []
    async with aconnect_sse(client, "GET", path, headers=headers) as source:
        assert source.response.status_code == 200
        async for event in source.aiter_sse():
            if not event.data:  # `retry:` alone, which browsers do not dispatch either
                continue
            found.append(event)
            if len(found) == count:
                break
    return found


async def test_matches_arrive_live_and_a_reconnection_resumes_without_loss_or_repeat(
    stack: Stack,
) -> None:
    acme, globex = await stack.tenant("acme"), await stack.tenant("globex")
    brand = await add_stream(stack, acme["token"], "hubbub")
    await add_stream(stack, globex["token"], "hubbub")
    path = f"/v1/streams/{brand['id']}/live"
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        listening = asyncio.create_task(sse_events(client, path, auth(acme["token"]), 2))
        await asyncio.sleep(0.5)  # connected, at the head
        await stack.platform.event_log.append([post(1, "hubbub one"), post(2, "other")])
        await stack.platform.event_log.append([post(3, "hubbub three")])
        first = await asyncio.wait_for(listening, 10)
        assert [e.event for e in first] == ["match", "match"]
        assert [e.json()["text"] for e in first] == ["hubbub one", "hubbub three"]
        last_seen = first[-1].id

        # Away: two more matches (and another tenant's), then a deletion.
        await stack.platform.event_log.append([post(4, "hubbub four"), post(5, "hubbub five")])

        async def kept() -> bool:  # matched (a post deleted before that is never matched)
            return len((await stored(stack, acme["token"], brand["id"]))["matches"]) == 4

        await until(kept)
        held = await stored(stack, acme["token"], brand["id"])  # where a live view resumes:
        assert int(held["live_from"]) >= max(int(m["position"]) for m in held["matches"])
        await stack.platform.event_log.append([
            PostDeleted(id="test-delete-4", key="did:plc:author4", ts=T0, source="test",
                        post=post(4, "").post, author="did:plc:author4"),
        ])  # fmt: skip
        resumed = await sse_events(
            client, path, {**auth(acme["token"]), "Last-Event-ID": last_seen}, 3
        )
    assert [e.event for e in resumed] == ["match", "match", "withdrawn"]
    assert [e.json().get("text") for e in resumed[:2]] == ["hubbub four", "hubbub five"]
    assert resumed[2].json() == {"post": post(4, "").post}
    assert int(resumed[0].id) > int(last_seen)
    assert sorted({e.id for e in [*first, *resumed]}) == sorted(e.id for e in [*first, *resumed])


async def test_a_quiet_stream_still_tells_its_position_so_a_reconnection_starts_there(
    stack: Stack,
) -> None:
    acme, globex = await stack.tenant("acme"), await stack.tenant("globex")
    quiet = await add_stream(stack, acme["token"], "nothing-matches-this")
    await add_stream(stack, globex["token"], "hubbub")
    path = f"/v1/streams/{quiet['id']}/live"
    async with (
        httpx.AsyncClient(base_url=stack.url, timeout=10) as client,
        client.stream("GET", path, headers=auth(acme["token"])) as live,
    ):
        lines = live.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        opened = int((await anext(lines)).removeprefix("id: "))
        await stack.platform.event_log.append([post(n, f"hubbub {n}") for n in range(1, 4)])
        told = opened
        async for line in lines:
            if line.startswith("data:"):
                pytest.fail(f"another tenant's match reached the stream: {line}")
            if line.startswith("id: "):
                told = int(line.removeprefix("id: "))
                if told >= opened + 3:
                    break
    assert told == opened + 3  # past the three matches of another tenant's stream


async def test_dates_that_are_no_dates_are_refused_with_why(stack: Stack) -> None:
    acme = await stack.tenant("acme")
    brand = await add_stream(stack, acme["token"], "hubbub")
    for since in ("99999999999999999999", "²", "yesterday", "9999-99-99"):
        answer = await stack.client.get(
            f"/v1/streams/{brand['id']}/matches", params={"since": since},
            headers=auth(acme["token"]),
        )  # fmt: skip
        assert answer.status_code == 422, since
    fine = await stored(stack, acme["token"], brand["id"], since="2026-01-01", until="2030-01-01")
    assert fine["matches"] == []


async def test_the_listening_roles_own_port_keeps_each_tenant_to_its_own(stack: Stack) -> None:
    """Asked directly, without the gateway, in requests signed for another tenant: the
    role answers as if the stream and the inbox item did not exist."""
    acme = await stack.tenant("acme")
    brand = await add_stream(stack, acme["token"], "hubbub")
    signer = open_request_signer(stack.platform.settings)
    role = stack.gateway_settings.listening_url

    def signed(method: str, path: str, tenant: str) -> dict[str, str]:
        pairs = signer.headers(method, path, tenant, "key-1", "owner")
        return {name.decode(): value.decode() for name, value in pairs}

    async with httpx.AsyncClient(base_url=role, timeout=10) as client:
        mine = await client.get(f"/v1/streams/{brand['id']}", headers=signed(
            "GET", f"/v1/streams/{brand['id']}", acme["id"]))  # fmt: skip
        assert mine.status_code == 200
        for method, path in [
            ("GET", f"/v1/streams/{brand['id']}"),
            ("GET", f"/v1/streams/{brand['id']}/matches"),
            ("GET", f"/v1/streams/{brand['id']}/live"),
            ("DELETE", f"/v1/streams/{brand['id']}"),
            ("PATCH", "/v1/inbox/1"),
        ]:
            theirs = await client.request(
                method, path, headers=signed(method, path, "globex"),
                json={"done": True} if method == "PATCH" else None,
            )  # fmt: skip
            assert theirs.status_code == 404, (method, path)
        listed = await client.get("/v1/streams", headers=signed("GET", "/v1/streams", "globex"))
        assert listed.json() == {"streams": []}
        unsigned = await client.get("/v1/streams", headers={"x-hubbub-tenant": acme["id"]})
        assert unsigned.status_code in (401, 403)
