"""Publishing to a real Bluesky PDS (hubbub.sandbox.bluesky) over plain XRPC: accounts,
app-password sessions and their refresh, posts under record keys we choose, images and
rich-text facets, and the errors the PDS answers, so that the publishing connector is
built against what the server does rather than what we assume."""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hubbub.publishing.tid import tid
from hubbub.sandbox import bluesky as support
from hubbub.sandbox.bluesky import jwt_hs256
from tests.support.pds import (
    Account,
    LocalPds,
    PdsStartError,
    XrpcError,
    bearer,
    local_pds,
    xrpc_result,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

POST = "app.bsky.feed.post"
RATE_CALLS = 300
RATE_SECONDS = 10.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pds() -> AsyncIterator[LocalPds]:
    """One PDS for the module, since starting one takes seconds: the tests share it and
    one author, and each writes under record keys of its own."""
    async with local_pds() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def author(pds: LocalPds) -> Account:
    return await pds.create_account()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def publisher(pds: LocalPds, author: Account) -> dict[str, Any]:
    """The session Hubbub publishes with: signed in with an app password, as a user
    connecting their Bluesky account would give it."""
    app_password = await pds.create_app_password(author)
    return await procedure(
        pds,
        "com.atproto.server.createSession",
        {"identifier": author.handle, "password": app_password},
    )


async def procedure(
    pds: LocalPds, nsid: str, body: dict[str, Any] | None = None, token: str | None = None
) -> dict[str, Any]:
    """An XRPC procedure (HTTP POST, JSON in and out)."""
    headers = bearer(token) if token else {}
    return xrpc_result(await pds.client.post(f"/xrpc/{nsid}", json=body, headers=headers))


async def query(
    pds: LocalPds, nsid: str, params: dict[str, str], token: str | None = None
) -> dict[str, Any]:
    """An XRPC query (HTTP GET with parameters, JSON out)."""
    headers = bearer(token) if token else {}
    return xrpc_result(await pds.client.get(f"/xrpc/{nsid}", params=params, headers=headers))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def post_record(text: str, **extra: Any) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": now_iso(), "langs": ["en"], **extra}


async def create_post(
    pds: LocalPds, session: dict[str, Any], rkey: str, record: dict[str, Any]
) -> dict[str, Any]:
    body = {"repo": session["did"], "collection": POST, "rkey": rkey, "record": record}
    return await procedure(pds, "com.atproto.repo.createRecord", body, session["accessJwt"])


async def read_post(pds: LocalPds, did: str, rkey: str) -> dict[str, Any]:
    params = {"repo": did, "collection": POST, "rkey": rkey}
    return await query(pds, "com.atproto.repo.getRecord", params)


def byte_span(text: str, part: str) -> dict[str, int]:
    """The facet index of `part`'s first occurrence in `text`: UTF-8 byte offsets, as
    atproto counts them (not characters, not UTF-16 units)."""
    start = text.encode().index(part.encode())
    return {"byteStart": start, "byteEnd": start + len(part.encode())}


async def refusal(call: Awaitable[Any]) -> XrpcError:
    """The XRPC error that `call` is answered with (the test fails if it succeeds)."""
    with pytest.raises(XrpcError) as refused:
        await call
    return refused.value


def png(width: int, height: int) -> bytes:
    """A small valid PNG of one colour, made here so the test ships no image file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes((29, 161, 242)) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def test_starts_on_loopback_and_stops_with_its_block() -> None:
    async with local_pds() as pds:
        described = await query(pds, "com.atproto.server.describeServer", {})
        assert pds.data_directory.is_dir()
    assert pds.url.startswith("http://127.0.0.1:")
    assert pds.plc_url.startswith("http://127.0.0.1:")
    assert described["availableUserDomains"] == [".test"]
    assert described["inviteCodeRequired"] is False
    assert pds.exit_code == 0
    assert not pds.data_directory.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pds.pid, 0)
    print(f"\nlocal PDS: ready {pds.startup_s:.2f} s after its process was started")


async def test_a_harness_that_exits_early_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mjs"
    broken.write_text("console.error('no PDS today'); process.exit(3)\n")
    monkeypatch.setattr(support, "SCRIPT", broken)
    with pytest.raises(PdsStartError, match=r"exited with code 3(.|\n)*no PDS today"):
        async with local_pds():
            pass


async def test_a_harness_that_stays_silent_is_stopped_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    silent = tmp_path / "silent.mjs"
    silent.write_text("console.error('thinking'); setInterval(() => {}, 1000)\n")
    monkeypatch.setattr(support, "SCRIPT", silent)
    started = time.perf_counter()
    with pytest.raises(PdsStartError, match=r"not ready within 0.5 s(.|\n)*thinking"):
        async with local_pds(start_within_s=0.5):
            pass
    assert time.perf_counter() - started < 5


async def test_an_account_gets_a_plc_did_its_handle_resolves_to(
    pds: LocalPds, author: Account
) -> None:
    assert author.did.startswith("did:plc:")
    assert author.handle == pds.handle(author.handle.removesuffix(pds.handle_domain))
    resolved = await query(pds, "com.atproto.identity.resolveHandle", {"handle": author.handle})
    assert resolved["did"] == author.did
    document = (await pds.client.get(f"{pds.plc_url}/{author.did}")).json()
    assert document["alsoKnownAs"] == [f"at://{author.handle}"]
    endpoints = [service["serviceEndpoint"] for service in document["service"]]
    assert endpoints == [pds.url.replace("127.0.0.1", "localhost")]


async def test_an_app_password_signs_in_and_its_session_refreshes(
    pds: LocalPds, author: Account, publisher: dict[str, Any]
) -> None:
    assert publisher["did"] == author.did
    assert publisher["handle"] == author.handle
    refreshed = await procedure(
        pds, "com.atproto.server.refreshSession", token=publisher["refreshJwt"]
    )
    assert refreshed["did"] == author.did
    assert refreshed["refreshJwt"] != publisher["refreshJwt"]  # rotated: a new token id
    session = await query(pds, "com.atproto.server.getSession", {}, refreshed["accessJwt"])
    assert session["did"] == author.did


async def test_an_app_password_session_cannot_make_app_passwords(
    pds: LocalPds, publisher: dict[str, Any]
) -> None:
    error = await refusal(
        procedure(
            pds, "com.atproto.server.createAppPassword", {"name": "x"}, publisher["accessJwt"]
        )
    )
    print(f"\nlocal PDS: app-password session making an app password: {error}")
    assert (error.status, error.error) == (400, "InvalidToken")


async def test_bad_tokens_are_refused_with_the_error_clients_branch_on(
    pds: LocalPds, author: Account
) -> None:
    described = await query(pds, "com.atproto.server.describeServer", {})
    past = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())
    expired = jwt_hs256(
        {"scope": "com.atproto.access", "sub": author.did, "aud": described["did"],
         "iat": past - 60, "exp": past},
        pds.jwt_secret,
        "at+jwt",
    )  # fmt: skip
    session = await procedure(
        pds,
        "com.atproto.server.createSession",
        {"identifier": author.handle, "password": author.password},
    )
    await procedure(pds, "com.atproto.server.deleteSession", token=session["refreshJwt"])
    get_session = "com.atproto.server.getSession"
    refresh = "com.atproto.server.refreshSession"
    answers = {
        "garbage": await refusal(query(pds, get_session, {}, "not-a-jwt")),
        "refresh token as access token": await refusal(
            query(pds, get_session, {}, author.refresh_jwt)
        ),
        "expired access token": await refusal(query(pds, get_session, {}, expired)),
        "revoked refresh token": await refusal(
            procedure(pds, refresh, token=session["refreshJwt"])
        ),
    }
    for case, error in answers.items():
        print(f"\nlocal PDS: {case}: {error}")
    assert {case: (error.status, error.error) for case, error in answers.items()} == {
        "garbage": (400, "InvalidToken"),
        "refresh token as access token": (400, "InvalidToken"),
        "expired access token": (400, "ExpiredToken"),
        "revoked refresh token": (400, "ExpiredToken"),
    }


async def test_a_post_under_a_chosen_record_key_reads_back(
    pds: LocalPds, publisher: dict[str, Any]
) -> None:
    rkey = tid()
    record = post_record("Hello from Hubbub's publishing tests")
    created = await create_post(pds, publisher, rkey, record)
    assert created["uri"] == f"at://{publisher['did']}/{POST}/{rkey}"
    assert created["validationStatus"] == "valid"
    stored = await read_post(pds, publisher["did"], rkey)
    assert stored["cid"] == created["cid"]
    assert stored["value"] == record


async def test_the_same_record_key_twice_fails_and_the_first_post_stays(
    pds: LocalPds, publisher: dict[str, Any]
) -> None:
    """The PDS answers a taken record key with a bare 500 (its repository tree refuses
    the key), which a client cannot tell from a crash: a publisher that retries a
    createRecord must look the record up (getRecord) rather than read the error."""
    rkey = tid()
    first = await create_post(pds, publisher, rkey, post_record("first"))
    error = await refusal(create_post(pds, publisher, rkey, post_record("second")))
    print(f"\nlocal PDS: createRecord on a taken rkey: {error}")
    assert (error.status, error.error) == (500, "InternalServerError")
    stored = await read_post(pds, publisher["did"], rkey)
    assert (stored["cid"], stored["value"]["text"]) == (first["cid"], "first")


async def test_a_record_key_not_taken_reads_as_record_not_found(
    pds: LocalPds, publisher: dict[str, Any]
) -> None:
    """What a publisher sees when it looks for a post that was never made."""
    error = await refusal(read_post(pds, publisher["did"], tid()))
    print(f"\nlocal PDS: getRecord on a free rkey: {error}")
    assert (error.status, error.error) == (400, "RecordNotFound")


async def test_a_post_with_an_uploaded_image(pds: LocalPds, publisher: dict[str, Any]) -> None:
    image = png(64, 48)
    uploaded = xrpc_result(
        await pds.client.post(
            "/xrpc/com.atproto.repo.uploadBlob",
            content=image,
            headers={**bearer(publisher["accessJwt"]), "Content-Type": "image/png"},
        )
    )
    blob = uploaded["blob"]
    assert (blob["$type"], blob["mimeType"], blob["size"]) == ("blob", "image/png", len(image))
    embed = {
        "$type": "app.bsky.embed.images",
        "images": [
            {"image": blob, "alt": "A blue rectangle", "aspectRatio": {"width": 64, "height": 48}}
        ],
    }
    rkey = tid()
    await create_post(pds, publisher, rkey, post_record("With a picture", embed=embed))
    stored = await read_post(pds, publisher["did"], rkey)
    assert stored["value"]["embed"] == embed
    fetched = await pds.client.get(
        "/xrpc/com.atproto.sync.getBlob",
        params={"did": publisher["did"], "cid": blob["ref"]["$link"]},
    )
    assert fetched.content == image


async def test_a_post_with_facets_reads_back_intact(
    pds: LocalPds, publisher: dict[str, Any]
) -> None:
    friend = await pds.create_account()
    mention = f"@{friend.handle}"
    link = "https://example.com/caf%C3%A9-menu"
    text = f"Déjà vu ✨ with {mention} at https://example.com/café… #mañana 🎉"
    facets = [
        {"index": byte_span(text, mention),
         "features": [{"$type": "app.bsky.richtext.facet#mention", "did": friend.did}]},
        {"index": byte_span(text, "https://example.com/café…"),
         "features": [{"$type": "app.bsky.richtext.facet#link", "uri": link}]},
        {"index": byte_span(text, "#mañana"),
         "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "mañana"}]},
    ]  # fmt: skip
    assert facets[0]["index"]["byteStart"] != text.index(mention)  # bytes, not characters
    record = post_record(text, facets=facets)
    rkey = tid()
    await create_post(pds, publisher, rkey, record)
    stored = (await read_post(pds, publisher["did"], rkey))["value"]
    assert stored == record
    encoded = stored["text"].encode()
    spans = [encoded[f["index"]["byteStart"] : f["index"]["byteEnd"]] for f in stored["facets"]]
    assert [span.decode() for span in spans] == [mention, "https://example.com/café…", "#mañana"]


async def test_create_record_rate_from_one_client(pds: LocalPds, publisher: dict[str, Any]) -> None:
    """Sequential createRecord calls, one client, bounded in count and time: the figure
    the publishing connector's throughput is judged against."""
    started = time.perf_counter()
    calls = 0
    while calls < RATE_CALLS and time.perf_counter() - started < RATE_SECONDS:
        await create_post(pds, publisher, tid(), post_record(f"rate {calls}"))
        calls += 1
    elapsed = time.perf_counter() - started
    listed = await query(
        pds,
        "com.atproto.repo.listRecords",
        {"repo": publisher["did"], "collection": POST, "limit": "100"},
    )
    assert calls >= 10
    assert len(listed["records"]) == 100
    print(f"\nlocal PDS: {calls} createRecord calls in {elapsed:.2f} s: {calls / elapsed:.0f}/s")
