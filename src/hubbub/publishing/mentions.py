"""The did of a handle named in a post, asked of the mentions service over HTTP (the
role's `/v1/mentions`, signed as the gateway signs, for the post's tenant): the pages
the firehose has shown it, most followed first; the one whose handle is exactly the one
written is the mention's. A handle the service does not know gets no facet."""

from __future__ import annotations

from typing import Final

import httpx

from hubbub.kernel.signing import RequestSigner

PATH: Final = "/v1/mentions"
TIMEOUT_S: Final = 2.0


class MentionsDids:
    def __init__(self, url: str, signer: RequestSigner, timeout_s: float = TIMEOUT_S) -> None:
        self._url = url.rstrip("/")
        self._signer = signer
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def did_of(self, tenant: str, handle: str) -> str | None:
        signed = self._signer.headers("GET", PATH, tenant, "publishing")
        headers = {name.decode(): value.decode() for name, value in signed}
        try:
            answer = await self._client.get(
                f"{self._url}{PATH}", params={"q": handle, "limit": 10}, headers=headers
            )
        except httpx.HTTPError:
            return None  # no facet rather than no post: the text still says the handle
        if not answer.is_success:
            return None
        wanted = handle.lower()
        return next(
            (
                str(page["id"])
                for page in answer.json()
                if (page.get("handle") or "").lower() == wanted
            ),
            None,
        )

    async def close(self) -> None:
        await self._client.aclose()
