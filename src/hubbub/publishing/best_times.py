"""A channel's best times to post, read from the analytics service's public API
(`GET /v1/best-times`): its own published posts' engagement when it has enough of them,
the firehose's in its network and language otherwise. Asked as the channel's tenant, in a
request signed like the gateway's, so analytics answers only that tenant's scores."""

from __future__ import annotations

from typing import Final

import httpx

from hubbub.kernel.signing import RequestSigner
from hubbub.publishing.ports import Channel, JobStore, Permanent, Transient

PATH: Final = "/v1/best-times"
KEY: Final = "publishing"
"""The key the requests are signed as: the publishing service, not a person."""
RECENT_POSTS: Final = 50
"""The most of a channel's posts whose language is counted."""


def channel_language(store: JobStore, channel: Channel, default: str) -> str:
    """The language most of the channel's recent posts were written in (the composer's,
    kept on each post), for the firehose's scores when the channel has too few posts
    of its own; `default` when none of them names one. Of two as common, the one of
    the latest post. One query, read from the channel's own jobs however busy its
    tenant's other channels are."""
    return store.channel_language(channel.tenant, channel.id, RECENT_POSTS) or default


class AnalyticsBestTimes:
    """`BestTimes` over the analytics service at `url`."""

    def __init__(self, url: str, signer: RequestSigner, timeout_s: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._signer = signer
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def best(self, channel: Channel, language: str, count: int) -> list[tuple[int, str]]:
        signed = self._signer.headers("GET", PATH, channel.tenant, KEY)
        params = {"zone": channel.time_zone, "language": language, "network": channel.network,
                  "channel": channel.id}  # fmt: skip
        try:
            answer = await self._client.get(
                self._url + PATH, params=params,
                headers={k.decode(): v.decode() for k, v in signed},
            )  # fmt: skip
        except httpx.HTTPError as error:
            raise Transient(f"the analytics service did not answer: {error}") from error
        if answer.status_code >= 500:
            raise Transient(f"the analytics service answered {answer.status_code}")
        if answer.status_code >= 400:
            raise Permanent(f"the analytics service refused: {answer.text[:200]}")
        slots = answer.json()["slots"]
        ranked = sorted(slots, key=lambda slot: -float(slot["score"]))[:count]
        return [(int(slot["day"]), str(slot["time"])) for slot in ranked if slot["score"] > 0]

    async def close(self) -> None:
        await self._client.aclose()
