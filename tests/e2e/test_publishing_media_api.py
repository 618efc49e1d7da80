"""`/v1/media` on the publishing role as the gateway calls it (signed, naming a tenant):
an image is kept with its alt text, what it is read from its bytes, and another tenant's
image is not found, nor can its post name it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hubbub.bootstrap import build_platform, open_request_signer
from hubbub.kernel.signing import RequestSigner
from hubbub.settings import Settings
from hubbub.web.app import create_app
from tests.support.images import png


class Role:
    """The publishing role over HTTP, each call signed for a tenant."""

    def __init__(self, client: httpx.AsyncClient, signer: RequestSigner) -> None:
        self.client, self.signer = client, signer

    async def call(self, tenant: str, method: str, url: str, **options: Any) -> httpx.Response:
        path = httpx.URL(url).path
        signed = {k.decode(): v.decode() for k, v in self.signer.headers(method, path, tenant, "k")}
        headers = {**options.pop("headers", {}), **signed}
        return await self.client.request(method, url, headers=headers, **options)


@pytest.fixture
async def role(tmp_path: Path) -> AsyncIterator[Role]:
    settings = Settings(data_dir=tmp_path / "data")
    platform = await build_platform(settings)
    app = create_app(platform, "publishing")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://publishing") as client:
        yield Role(client, open_request_signer(settings))
    await platform.close()


async def test_an_image_is_kept_with_its_alt_text_and_is_only_its_tenants(role: Role) -> None:
    image = png(seed=3)
    form = await role.call(
        "acme", "POST", "/v1/media", files={"file": ("chart.png", image, "image/jpeg")},
        data={"alt": "Revenue by quarter"},
    )  # fmt: skip
    assert form.status_code == 201, form.text
    made = form.json()
    assert (made["content_type"], made["size"], made["alt"]) == (
        "image/png",
        len(image),
        "Revenue by quarter",
    )  # fmt: skip  (the bytes say PNG, whatever the form claimed)
    raw = await role.call(
        "acme", "POST", "/v1/media?alt=A%20photo", content=png(seed=4),
        headers={"content-type": "image/png"},
    )  # fmt: skip
    assert (raw.status_code, raw.json()["alt"]) == (201, "A photo")

    assert (await role.call("acme", "GET", f"/v1/media/{made['id']}")).status_code == 200
    assert (await role.call("globex", "GET", f"/v1/media/{made['id']}")).status_code == 404
    channel = await role.call(
        "globex", "POST", "/v1/channels",
        json={"network": "bluesky", "account": "globex.bsky.social",
              "service": "https://bsky.social", "app_password": "xxxx-xxxx-xxxx-xxxx"},
    )  # fmt: skip
    assert channel.status_code == 201, channel.text
    post = await role.call(
        "globex", "POST", "/v1/posts",
        json={"text": "Not ours", "channels": [channel.json()["id"]], "media": [made["id"]],
              "at": "2100-01-01T00:00:00Z"},
    )  # fmt: skip
    assert post.status_code == 404
    assert made["id"] in post.json()["detail"]


async def test_what_is_not_an_image_is_refused_whatever_it_claims(role: Role) -> None:
    html = await role.call(
        "acme", "POST", "/v1/media", content=b"<html>not a picture</html>",
        headers={"content-type": "image/png"},
    )  # fmt: skip
    assert html.status_code == 422
    assert "PNG, JPEG, WebP or GIF" in html.json()["detail"]
