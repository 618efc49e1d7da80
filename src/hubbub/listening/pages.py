"""The page ids of a handle, asked of the mentions service over HTTP (the role's
`/v1/mentions`, signed as the gateway signs, for the search's tenant): the pages whose
handle is exactly the one written, whatever its case. A directory that does not answer
resolves nothing, and the search still matches the handle as written in posts."""

from __future__ import annotations

from typing import Final

import httpx
import structlog

from hubbub.kernel.signing import RequestSigner

PATH: Final = "/v1/mentions"
TIMEOUT_S: Final = 2.0
log = structlog.get_logger("hubbub.listening")


class MentionsPages:
    """`Pages` over the mentions service at `url`."""

    def __init__(self, url: str, signer: RequestSigner, timeout_s: float = TIMEOUT_S) -> None:
        self._url = url.rstrip("/")
        self._signer = signer
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def resolve(self, tenant: str, handle: str) -> list[str]:
        signed = self._signer.headers("GET", PATH, tenant, "listening")
        headers = {name.decode(): value.decode() for name, value in signed}
        try:
            answer = await self._client.get(
                f"{self._url}{PATH}", params={"q": handle, "limit": 20}, headers=headers
            )
        except httpx.HTTPError as error:
            log.warning("the mentions service did not answer", handle=handle, why=str(error))
            return []
        if not answer.is_success:
            return []
        wanted = handle.lower()
        return [
            str(page["id"])
            for page in answer.json()
            if (page.get("handle") or "").lower() == wanted
        ]

    async def close(self) -> None:
        await self._client.aclose()
