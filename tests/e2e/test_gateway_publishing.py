"""Publishing's routes through the gateway over real HTTP: images up to the media limit
(above every other route's), and drafts that are only their author's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.images import png
from tests.support.stack import Stack, auth, start_stack

MB = 1_000_000


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, exits = await start_stack(tmp_path / "data")
    async with exits:
        yield built


async def test_an_image_of_2_mb_goes_through_and_20_mb_is_refused(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    photo = png(820, 820, noise=True)
    assert 2 * MB <= len(photo) < 2.1 * MB
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        kept = await client.post(
            "/v1/media?alt=A%20photo", content=photo,
            headers={**auth(owner["token"]), "content-type": "image/png"},
        )  # fmt: skip
        assert kept.status_code == 201, kept.text
        assert (kept.json()["size"], kept.json()["alt"]) == (len(photo), "A photo")
        form = await client.post(
            "/v1/media", files={"file": ("photo.png", photo, "image/png")},
            data={"alt": "The same photo"}, headers=auth(owner["token"]),
        )  # fmt: skip
        assert form.status_code == 201, form.text
        huge = await client.post(
            "/v1/media", content=b"\x89PNG\r\n\x1a\n" + bytes(20 * MB),
            headers={**auth(owner["token"]), "content-type": "image/png"},
        )  # fmt: skip
        assert huge.status_code == 413
        assert "over 16777216 bytes" in huge.json()["detail"]
        other = await client.put(
            "/v1/drafts/0123456789abcdef", json={"text": "x" * (2 * MB)},
            headers=auth(owner["token"]),
        )  # fmt: skip
        assert other.status_code == 413  # only /v1/media takes more than the default


async def test_drafts_through_the_gateway_are_their_authors_alone(stack: Stack) -> None:
    owner = await stack.tenant("newsroom")
    editor = await stack.key(owner, "editor")
    rival = await stack.tenant("rival")
    url = "/v1/drafts/0123456789abcdef"
    kept = await stack.client.put(url, json={"text": "Soon"}, headers=auth(owner["token"]))
    assert kept.status_code == 200, kept.text
    listed = await stack.client.get("/v1/drafts", headers=auth(owner["token"]))
    assert [d["text"] for d in listed.json()] == ["Soon"]
    for token in (editor, rival["token"]):
        assert (await stack.client.get(url, headers=auth(token))).status_code == 404
        assert (await stack.client.get("/v1/drafts", headers=auth(token))).json() == []
    missing_series = await stack.client.delete("/v1/series/nope", headers=auth(owner["token"]))
    assert missing_series.status_code == 404
