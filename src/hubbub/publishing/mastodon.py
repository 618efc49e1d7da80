"""Publishing to a Mastodon account (`Network`), over its REST API with aiohttp (through
`CheckedSession`: only to the addresses a channel may reach).

Each job sends its `Idempotency-Key`: Mastodon keeps a key for an hour and answers a
repeated request with the status it made the first time, creating nothing. After an
unknown outcome within that hour the job is simply sent again with its key. Later, the
account's statuses made since the job fell due are read first, and one whose source
text (`/api/v1/statuses/:id/source`, as it was written) is the post's is taken as the
job's (`find`); only when none is does the job send again.

Images are uploaded before the status that shows them (`POST /api/v2/media`, with the
alt text as `description`); an upload answered 202 is still processing, and is polled
(`GET /api/v1/media/:id`: 206 while processing, 200 once done) before the status names it
in `media_ids`. Uploading again after a failure is harmless: a medium no status names is
dropped by the instance, and the status itself keeps its key.

A post that answers a status (`reply_to`, its URL) is `in_reply_to_id` that status's id
on the channel's instance, which `GET /api/v2/search` (`resolve`) finds, fetching it from
its own instance when it is another's.

A thread is one status per part, each `in_reply_to_id` the one before, each with a key
of its own derived from the job's (`part_key`). After a failure the thread is read back
from the account's statuses since the job fell due, part by part (a part is the status
whose source text is the part's, in reply to the part before), and sending resumes at the
first missing part: a thread may take longer than the hour its first key is kept.

Answers are sorted as the API documents them: 2xx published; 429 and 5xx worth retrying
(after `Retry-After`, or the rate limit's reset); other 4xx permanent, with the server's
`error`; no answer after the request was sent (a timeout, a reset) unknown.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import httpx

from hubbub.kernel.clock import Clock
from hubbub.kernel.destinations import AddressRefused, Answer, CheckedSession
from hubbub.kernel.destinations import Network as IpNetwork
from hubbub.kernel.sealing import SecretBox
from hubbub.publishing.ports import (
    Attachment,
    Channel,
    Job,
    Limits,
    MediaData,
    NotFound,
    OutcomeUnknown,
    Part,
    Permanent,
    Post,
    Published,
    Transient,
)

TIMEOUT_S: Final = 10.0
APP_NAME: Final = "Hubbub"
SCOPES: Final = "read write:statuses write:media"
"""What a channel's token may do: read the account's statuses back (after an unknown
outcome), post statuses, upload their images."""
HINT: Final = "a channel's instance must be on a public address (HUBBUB_PUBLISH_ALLOWED_NETWORKS)"
RECENT: Final = 40
"""Statuses read back when looking for a post sent before (the API's largest page)."""
KEY_KEPT_US: Final = 55 * 60 * 1_000_000
"""How long after a send its Idempotency-Key is surely still kept (Mastodon keeps it an
hour; five minutes spare for clocks apart)."""
SLACK_S: Final = 60.0
"""How far before a job's due time its post may have been made (clocks a little apart)."""
PROCESSING_S: Final = 60.0
"""Longest wait for an uploaded image to be processed before the job is tried later."""
FIRST_POLL_S: Final = 0.1
"""Wait before the first poll of an image being processed; doubled at each, up to 2 s."""
CREDENTIALS_KEPT: Final = 10_000
"""Opened credentials kept at most (then forgotten, and opened again as needed)."""
EXTENSIONS: Final = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp",
                     "image/gif": "gif"}  # fmt: skip


def part_key(key: str, index: int) -> str:
    """The `Idempotency-Key` of part `index` of the thread whose job has `key`: the job's
    own for the first part, then the key and the part's number."""
    return key if index == 0 else f"{key}-{index}"


class MastodonNetwork:
    def __init__(
        self,
        box: SecretBox,
        clock: Clock,
        allowed: Sequence[IpNetwork] = (),
        timeout_s: float = TIMEOUT_S,
        *,
        media_data: MediaData,
    ) -> None:
        self._box = box
        self._clock = clock
        self._media_data = media_data
        self._session = CheckedSession(timeout_s, allowed, HINT)
        self._authorizations: dict[str, str] = {}
        """Each sealed credential's `Authorization` header, opened once (opening and
        parsing it for every status was 3% of a publisher's CPU)."""

    async def _call(self, method: str, url: str, **kwargs: Any) -> Answer:
        """`method` `url` with aiohttp's `kwargs` (`json`, `data`, `params`, `headers`)."""
        return await _send(self._session, method, url, kwargs)

    def _headers(self, channel: Channel) -> dict[str, str]:
        sealed = channel.sealed_credentials
        authorization = self._authorizations.get(sealed)
        if authorization is None:
            token = json.loads(self._box.open(sealed))["access_token"]
            if len(self._authorizations) >= CREDENTIALS_KEPT:
                self._authorizations.clear()
            authorization = self._authorizations[sealed] = f"Bearer {token}"
        return {"authorization": authorization}

    async def publish(self, channel: Channel, post: Post, job: Job) -> Published:
        """Each part in order, each in reply to the one before; of a thread sent before,
        the parts there are read back and the rest sent. (A single post sent before is
        looked for by `find` first, which the publisher asks.)"""
        parts = post.parts_for(channel.id)
        answered = await self._replied(channel, post.reply_to) if post.reply_to else None
        thread_sent = len(parts) > 1 and self._read_back(job, parts)
        made = await self._thread_there(channel, job, parts, answered) if thread_sent else []
        for index in range(len(made), len(parts)):
            parent = made[-1].remote_id if made else answered
            made.append(await self._status(channel, post, job, index, parts[index], parent))
        return made[0]

    async def find(self, channel: Channel, post: Post, job: Job) -> Published | None:
        parts = post.parts_for(channel.id)
        if not self._read_back(job, parts):
            return None  # sent again with its key, Mastodon answers the status it made
        answered = await self._replied(channel, post.reply_to) if post.reply_to else None
        made = await self._thread_there(channel, job, parts, answered)
        return made[0] if len(made) == len(parts) else None

    async def _replied(self, channel: Channel, url: str) -> str:
        """The id, on the channel's instance, of the status at `url` (another instance's
        too: the instance fetches it), from `GET /api/v2/search` with `resolve`."""
        params = {"q": url, "type": "statuses", "resolve": "true", "limit": 1}
        answer = await self._call(
            "GET", f"{channel.service}/api/v2/search", params=params,
            headers=self._headers(channel),
        )  # fmt: skip
        found = answer.json().get("statuses") or []
        if not found:
            raise Permanent(f"{channel.service} cannot find the status replied to, {url}")
        return str(found[0]["id"])

    async def page(self, channel: Channel) -> str:
        """The account's URL (its profile page), as ingest names a Mastodon page."""
        me = await self._call(
            "GET", f"{channel.service}/api/v1/accounts/verify_credentials",
            headers=self._headers(channel),
        )  # fmt: skip
        return _fields(me, "url")["url"]

    def _read_back(self, job: Job, parts: list[Part]) -> bool:
        """Whether what was sent must be read back rather than sent again with its keys:
        once the key may have expired, and always for a thread (its first part's key may
        have expired while a later part's was sent)."""
        if not job.check_first:
            return False
        if len(parts) > 1 or job.sent_us is None:
            return True
        return self._clock.now_us() - job.sent_us >= KEY_KEPT_US

    async def _status(
        self, channel: Channel, post: Post, job: Job, index: int, part: Part, parent: str | None
    ) -> Published:
        """Post one part, its images uploaded first, with its own Idempotency-Key."""
        data: dict[str, Any] = {"status": part.text, "visibility": post.visibility}
        if post.spoiler:
            data["spoiler_text"] = post.spoiler
        if post.language:
            data["language"] = post.language
        if parent is not None:
            data["in_reply_to_id"] = parent
        if part.media:
            data["media_ids"] = [await self._upload(channel, image) for image in part.media]
        key = part_key(job.idempotency_key, index)
        headers = {**self._headers(channel), "idempotency-key": key}
        url = f"{channel.service}/api/v1/statuses"
        answer = await self._call("POST", url, json=data, headers=headers)
        found = answer.json()
        return Published(str(found["id"]), str(found.get("url") or found.get("uri") or ""))

    async def _upload(self, channel: Channel, image: Attachment) -> str:
        """Upload one image with its alt text; answers its id once it is processed."""
        try:
            data = await asyncio.to_thread(self._media_data, channel.tenant, image.id)
        except NotFound as error:
            raise Permanent(f"image {image.id} is no longer kept: {error}") from error
        name = f"{image.id}.{EXTENSIONS.get(image.content_type, 'bin')}"
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name, content_type=image.content_type)
        if image.alt:
            form.add_field("description", image.alt)
        answer = await self._call(
            "POST", f"{channel.service}/api/v2/media", headers=self._headers(channel), data=form
        )
        media_id = str(answer.json()["id"])
        if answer.status_code == 202:
            await self._processed(channel, media_id)
        return media_id

    async def _processed(self, channel: Channel, media_id: str) -> None:
        """Poll an upload until the instance has processed it (200; 206 while not)."""
        url = f"{channel.service}/api/v1/media/{media_id}"
        wait_s, deadline = FIRST_POLL_S, time.monotonic() + PROCESSING_S
        while time.monotonic() < deadline:
            await asyncio.sleep(wait_s)
            if (await self._call("GET", url, headers=self._headers(channel))).status_code == 200:
                return
            wait_s = min(wait_s * 2, 2.0)
        raise Transient(f"{channel.service} was still processing image {media_id}")

    async def _thread_there(
        self, channel: Channel, job: Job, parts: list[Part], answered: str | None
    ) -> list[Published]:
        """The statuses of the parts sent before, in order, up to the first missing one:
        each the status, made since the job fell due, whose source text is the part's and
        which replies to the part before (the first part to `answered`, the status the
        post replies to, or to none)."""
        made: list[Published] = []
        statuses = await self._statuses_since(channel, job)
        for part in parts:
            parent = made[-1].remote_id if made else answered
            found = await self._written(channel, statuses, part.text, parent)
            if found is None:
                break
            made.append(found)
        return made

    async def _statuses_since(self, channel: Channel, job: Job) -> list[dict[str, Any]]:
        """The account's statuses made since the job fell due (a minute's slack), newest
        first, page by page."""
        headers = self._headers(channel)
        api = f"{channel.service}/api/v1"
        me = await self._call("GET", f"{api}/accounts/verify_credentials", headers=headers)
        since = datetime.fromtimestamp(job.due_us / 1e6 - SLACK_S, UTC)
        url = f"{api}/accounts/{me.json()['id']}/statuses"
        params: dict[str, Any] = {"limit": RECENT}
        found: list[dict[str, Any]] = []
        while True:
            page = (await self._call("GET", url, params=params, headers=headers)).json()
            for status in page:
                made = datetime.fromisoformat(str(status["created_at"]).replace("Z", "+00:00"))
                if made < since:
                    return found
                found.append(status)
            if len(page) < RECENT:
                return found
            params = {"limit": RECENT, "max_id": page[-1]["id"]}

    async def _written(
        self, channel: Channel, statuses: list[dict[str, Any]], text: str, parent: str | None
    ) -> Published | None:
        """The status of `statuses` in reply to `parent` whose source text is `text`."""
        headers = self._headers(channel)
        for status in statuses:
            if status.get("in_reply_to_id") != parent:
                continue
            source = await self._call(
                "GET", f"{channel.service}/api/v1/statuses/{status['id']}/source", headers=headers
            )
            if source.json().get("text") == text:
                return Published(str(status["id"]), str(status.get("url") or status["uri"]))
        return None

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

    async def register_app(self, service: str, redirect_uri: str) -> tuple[str, str]:
        """Register Hubbub with the instance as an OAuth client (`POST /api/v1/apps`);
        answers its client id and secret."""
        answer = await self._call(
            "POST", f"{service}/api/v1/apps",
            data={"client_name": APP_NAME, "redirect_uris": redirect_uri, "scopes": SCOPES},
        )  # fmt: skip
        made = _fields(answer, "client_id", "client_secret")
        return made["client_id"], made["client_secret"]

    @staticmethod
    def authorize_url(
        service: str, client_id: str, redirect_uri: str, state: str, challenge: str
    ) -> str:
        """Where the account's owner approves Hubbub (the authorization code flow, with
        PKCE)."""
        query = urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
            "scope": SCOPES, "state": state, "code_challenge": challenge,
            "code_challenge_method": "S256",
        })  # fmt: skip
        return f"{service}/oauth/authorize?{query}"

    async def exchange_code(
        self, service: str, client: tuple[str, str], redirect_uri: str, code: str, verifier: str
    ) -> tuple[str, str]:
        """The access token the owner's approval (`code`) grants (`POST /oauth/token`),
        and the account it is for, `user@instance`."""
        answer = await self._call(
            "POST", f"{service}/oauth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": client[0],
                  "client_secret": client[1], "redirect_uri": redirect_uri,
                  "code_verifier": verifier, "scope": SCOPES},
        )  # fmt: skip
        token = _fields(answer, "access_token")["access_token"]
        me = await self._call(
            "GET", f"{service}/api/v1/accounts/verify_credentials",
            headers={"authorization": f"Bearer {token}"},
        )  # fmt: skip
        host = httpx.URL(service).host
        return token, f"{_fields(me, 'username')['username']}@{host}"

    async def close(self) -> None:
        await self._session.close()


async def _send(session: CheckedSession, method: str, url: str, kwargs: Any) -> Answer:
    """The answer of a 2xx; else the exception that says what to do about it."""
    try:
        answer = await session.request(method, url, **kwargs)
    except AddressRefused as error:
        raise Permanent(str(error)) from error
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:  # nothing was sent
        raise Transient(f"{_host(url)} did not answer: {error}") from error
    except httpx.TransportError as error:  # sent, and then no answer
        raise OutcomeUnknown(f"{_host(url)}: {type(error).__name__} {error}") from error
    if answer.is_success:
        return answer
    message = _error(answer)
    if answer.status_code == 429 or answer.status_code >= 500:
        raise Transient(message, _retry_after_s(answer))
    raise Permanent(message)


def _host(url: str) -> str:
    return httpx.URL(url).host


def _fields(answer: Answer, *names: str) -> dict[str, str]:
    """`names` from an answer's JSON object; `Permanent` when it lacks one."""
    try:
        found = answer.json()
        return {name: str(found[name]) for name in names}
    except (ValueError, KeyError, TypeError):
        raise Permanent(f"the instance answered without {', '.join(names)}") from None


def _error(answer: Answer) -> str:
    try:
        said = answer.json().get("error")
    except (ValueError, AttributeError):
        said = None
    return f"Mastodon answered {answer.status_code}: {said or answer.text[:300]}"


def _retry_after_s(answer: Answer) -> float | None:
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
