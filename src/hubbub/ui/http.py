"""The platform's API over HTTP, through the gateway (`PlatformApi`)."""

from __future__ import annotations

from typing import Any

import httpx

from hubbub.ui.ports import Answer, Unreachable


class GatewayApi:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self._base_url = base_url
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> Answer:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        if content is not None:
            headers["content-type"] = "application/octet-stream"
        try:
            answer = await self._client.request(
                method, path, params=params, json=json, content=content, headers=headers
            )
        except httpx.HTTPError as error:
            raise Unreachable(f"the platform's API at {self._base_url}: {error}") from error
        return Answer(answer.status_code, answer.content, dict(answer.headers))

    async def close(self) -> None:
        await self._client.aclose()
