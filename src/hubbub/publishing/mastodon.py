"""Publishing to a Mastodon account (`Network`), over its REST API with httpx.

Each job sends its `Idempotency-Key`: Mastodon keeps a key for an hour and answers a
repeated request with the status it made the first time, creating nothing. After an
unknown outcome within that hour the job is simply sent again with its key. Later, the
account's statuses made since the job fell due are read first, and one whose source
text (`/api/v1/statuses/:id/source`, as it was written) is the post's is taken as the
job's (`find`); only when none is does the job send again.

Answers are sorted as the API documents them: 2xx published; 429 and 5xx worth retrying
(after `Retry-After`, or the rate limit's reset); other 4xx permanent, with the server's
`error`; no answer after the request was sent (a timeout, a reset) unknown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from hubbub.kernel.clock import Clock
from hubbub.kernel.destinations import AddressRefused, send_checked
from hubbub.kernel.destinations import Network as IpNetwork
from hubbub.kernel.sealing import SecretBox
from hubbub.publishing.ports import (
    Channel,
    Job,
    Limits,
    OutcomeUnknown,
    Permanent,
    Post,
    Published,
    Transient,
)

TIMEOUT_S: Final = 10.0
HINT: Final = "a channel's instance must be on a public address (HUBBUB_PUBLISH_ALLOWED_NETWORKS)"
RECENT: Final = 40
"""Statuses read back when looking for a post sent before (the API's largest page)."""
KEY_KEPT_US: Final = 55 * 60 * 1_000_000
"""How long after a send its Idempotency-Key is surely still kept (Mastodon keeps it an
hour; five minutes spare for clocks apart)."""
SLACK_S: Final = 60.0
"""How far before a job's due time its post may have been made (clocks a little apart)."""


class MastodonNetwork:
    def __init__(
        self,
        box: SecretBox,
        clock: Clock,
        allowed: Sequence[IpNetwork] = (),
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self._box = box
        self._clock = clock
        self._allowed = tuple(allowed)
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        request = self._client.build_request(method, url, **kwargs)
        return await _send(request, self._client, self._allowed)

    def _headers(self, channel: Channel) -> dict[str, str]:
        token = json.loads(self._box.open(channel.sealed_credentials))["access_token"]
        return {"authorization": f"Bearer {token}"}

    async def publish(self, channel: Channel, post: Post, job: Job) -> Published:
        data: dict[str, Any] = {"status": post.text_for(channel.id), "visibility": post.visibility}
        if post.spoiler:
            data["spoiler_text"] = post.spoiler
        if post.language:
            data["language"] = post.language
        headers = {**self._headers(channel), "idempotency-key": job.idempotency_key}
        url = f"{channel.service}/api/v1/statuses"
        answer = await self._call("POST", url, json=data, headers=headers)
        found = answer.json()
        return Published(str(found["id"]), str(found.get("url") or found.get("uri") or ""))

    async def find(self, channel: Channel, post: Post, job: Job) -> Published | None:
        if job.sent_us is not None and self._clock.now_us() - job.sent_us < KEY_KEPT_US:
            return None  # sent again with its key, Mastodon answers the status it made
        headers = self._headers(channel)
        api = f"{channel.service}/api/v1"
        me = await self._call("GET", f"{api}/accounts/verify_credentials", headers=headers)
        since = datetime.fromtimestamp(job.due_us / 1e6 - SLACK_S, UTC)
        text = post.text_for(channel.id)
        params: dict[str, Any] = {"limit": RECENT}
        statuses = f"{api}/accounts/{me.json()['id']}/statuses"
        while True:  # newest first, page by page, back to when the job fell due
            page = (await self._call("GET", statuses, params=params, headers=headers)).json()
            for status in page:
                made = datetime.fromisoformat(str(status["created_at"]).replace("Z", "+00:00"))
                if made < since:
                    return None
                source = await self._call(
                    "GET", f"{api}/statuses/{status['id']}/source", headers=headers
                )
                if source.json().get("text") == text:
                    return Published(str(status["id"]), str(status.get("url") or status["uri"]))
            if len(page) < RECENT:
                return None
            params = {"limit": RECENT, "max_id": page[-1]["id"]}

    async def limits(self, service: str) -> Limits:
        """What the instance accepts in one status (`/api/v2/instance`)."""
        answer = await self._call("GET", f"{service}/api/v2/instance")
        configuration = answer.json().get("configuration", {})
        statuses = configuration.get("statuses", {})
        media = configuration.get("media_attachments", {})
        return Limits(
            characters=int(statuses.get("max_characters", 500)),
            media=int(statuses.get("max_media_attachments", 4)),
            image_bytes=int(media.get("image_size_limit", 16 * 1024 * 1024)),
            url_length=int(statuses.get("characters_reserved_per_url", 23)),
        )

    async def close(self) -> None:
        await self._client.aclose()


async def _send(
    request: httpx.Request, client: httpx.AsyncClient, allowed: Sequence[IpNetwork]
) -> httpx.Response:
    """The answer of a 2xx; else the exception that says what to do about it."""
    try:
        answer = await send_checked(client, request, allowed, HINT)
    except AddressRefused as error:
        raise Permanent(str(error)) from error
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:  # nothing was sent
        raise Transient(f"{request.url.host} did not answer: {error}") from error
    except httpx.TransportError as error:  # sent, and then no answer
        raise OutcomeUnknown(f"{request.url.host}: {type(error).__name__} {error}") from error
    if answer.is_success:
        return answer
    message = _error(answer)
    if answer.status_code == 429 or answer.status_code >= 500:
        raise Transient(message, _retry_after_s(answer))
    raise Permanent(message)


def _error(answer: httpx.Response) -> str:
    try:
        said = answer.json().get("error")
    except (ValueError, AttributeError):
        said = None
    return f"Mastodon answered {answer.status_code}: {said or answer.text[:300]}"


def _retry_after_s(answer: httpx.Response) -> float | None:
    if (after := answer.headers.get("retry-after")) is not None:
        try:
            return max(0.0, float(after))
        except ValueError:
            pass
    reset = answer.headers.get("x-ratelimit-reset")
    if answer.status_code == 429 and reset is not None:  # the window's end, when limited
        try:
            at = datetime.fromisoformat(reset.replace("Z", "+00:00"))
        except ValueError:
            return None
        return max(0.0, (at - datetime.now(UTC)).total_seconds())
    return None
