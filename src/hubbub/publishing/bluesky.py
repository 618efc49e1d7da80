"""Publishing to a Bluesky account (`Network`): XRPC calls to the account's PDS, with httpx.

The account signs in with its handle and an app password (`com.atproto.server.
createSession`); the session's access token is kept in memory and refreshed when the PDS
says it expired (`refreshSession`), and made again when the refresh token is refused.

A post is `com.atproto.repo.createRecord` of an `app.bsky.feed.post` with the job's TID
as its record key: the key is the job's, chosen before anything was sent, so after an
unknown outcome the record is read first (`getRecord`) and made only if it is absent;
and a PDS refuses a second record under a key it holds (with a 500: Bluesky's PDS
0.5 lets the repository's "already a value at key" through as an internal error), after
which the record is read. The text's mentions, links and
hashtags go as facets (`hubbub.publishing.text`), a mention with the did `did_of` names.

The direct HTTP client rather than the `atproto` library: its current release pins
httpx below 0.29 and cryptography below 51, which would move two packages every other
part of the platform uses; this module needs six XRPC methods.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from hubbub.kernel.destinations import AddressRefused, send_checked
from hubbub.kernel.destinations import Network as IpNetwork
from hubbub.kernel.sealing import SecretBox
from hubbub.publishing.ports import (
    Channel,
    Job,
    OutcomeUnknown,
    Permanent,
    Post,
    Published,
    Transient,
)
from hubbub.publishing.text import facets

POST: Final = "app.bsky.feed.post"
TIMEOUT_S: Final = 10.0
HINT: Final = "a channel's PDS must be on a public address (HUBBUB_PUBLISH_ALLOWED_NETWORKS)"
DidOf = Callable[[str, str], Awaitable[str | None]]
"""The did of a handle, for a tenant, from the mentions service (None: unknown)."""


@dataclass
class _Session:
    did: str
    handle: str
    access: str
    refresh: str


class BlueskyNetwork:
    def __init__(
        self,
        box: SecretBox,
        did_of: DidOf,
        allowed: Sequence[IpNetwork] = (),
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self._box = box
        self._did_of = did_of
        self._allowed = tuple(allowed)
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._sessions: dict[str, _Session] = {}
        self._signing_in: dict[str, asyncio.Lock] = {}

    async def publish(self, channel: Channel, post: Post, job: Job) -> Published:
        session = await self._session(channel)
        text = post.text_for(channel.id)
        handles = {}
        for facet in facets(text, lambda handle: handle):  # the handles named, to resolve
            if facet.kind == "mention":
                handles[facet.value] = await self._did_of(channel.tenant, facet.value)
        record: dict[str, Any] = {
            "$type": POST,
            "text": text,
            "createdAt": _iso(job.due_us),
        }
        found = [f.record() for f in facets(text, lambda handle: handles.get(handle))]
        if found:
            record["facets"] = found
        if post.language:
            record["langs"] = [post.language]
        body = {"repo": session.did, "collection": POST, "rkey": job.idempotency_key,
                "record": record}  # fmt: skip
        try:
            made = await self._call(channel, "POST", "com.atproto.repo.createRecord", json=body)
        except (Permanent, Transient):
            # A PDS answers a record key it holds already with a 500 (and a 4xx from some
            # versions): taken by this job's own record, sent before, the post is there.
            if (there := await self.find(channel, post, job)) is not None:
                return there
            raise
        return Published(str(made["uri"]), _web_url(session.handle, job.idempotency_key))

    async def find(self, channel: Channel, post: Post, job: Job) -> Published | None:
        session = await self._session(channel)
        params = {"repo": session.did, "collection": POST, "rkey": job.idempotency_key}
        try:
            found = await self._call(channel, "GET", "com.atproto.repo.getRecord", params=params)
        except Permanent as error:
            if "RecordNotFound" in str(error) or "Could not locate record" in str(error):
                return None
            raise
        return Published(str(found["uri"]), _web_url(session.handle, job.idempotency_key))

    async def _session(self, channel: Channel) -> _Session:
        """The channel's session, signed in once however many jobs ask at once: a PDS
        limits sign-ins (30 in 5 minutes an account on Bluesky's)."""
        found = self._sessions.get(channel.id)
        if found is not None:
            return found
        async with self._signing_in.setdefault(channel.id, asyncio.Lock()):
            found = self._sessions.get(channel.id)
            if found is None:
                found = self._sessions[channel.id] = await self._sign_in(channel)
        return found

    async def _sign_in(self, channel: Channel) -> _Session:
        credentials = json.loads(self._box.open(channel.sealed_credentials))
        body = {"identifier": credentials["identifier"], "password": credentials["password"]}
        made = await self._xrpc(channel, "POST", "com.atproto.server.createSession", json=body)
        return _Session(made["did"], made["handle"], made["accessJwt"], made["refreshJwt"])

    async def _refresh(self, channel: Channel, session: _Session) -> _Session:
        try:
            made = await self._xrpc(
                channel, "POST", "com.atproto.server.refreshSession", token=session.refresh
            )
        except Permanent:  # the refresh token is spent or revoked: sign in again
            return await self._sign_in(channel)
        return _Session(made["did"], made["handle"], made["accessJwt"], made["refreshJwt"])

    async def _call(self, channel: Channel, method: str, name: str, **kwargs: Any) -> Any:
        """An XRPC call with the channel's session, refreshed once if it expired."""
        session = await self._session(channel)
        try:
            return await self._xrpc(channel, method, name, token=session.access, **kwargs)
        except Permanent as error:
            if "ExpiredToken" not in str(error):
                raise
        session = self._sessions[channel.id] = await self._refresh(channel, session)
        return await self._xrpc(channel, method, name, token=session.access, **kwargs)

    async def _xrpc(
        self, channel: Channel, method: str, name: str, token: str | None = None, **kwargs: Any
    ) -> Any:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        url = f"{channel.service}/xrpc/{name}"
        request = self._client.build_request(method, url, headers=headers, **kwargs)
        try:
            answer = await send_checked(self._client, request, self._allowed, HINT)
        except AddressRefused as error:
            raise Permanent(str(error)) from error
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise Transient(f"the PDS at {channel.service} did not answer: {error}") from error
        except httpx.TransportError as error:
            raise OutcomeUnknown(f"{name}: {type(error).__name__} {error}") from error
        if answer.is_success:
            return answer.json() if answer.content else {}
        message = _error(name, answer)
        if answer.status_code == 429 or answer.status_code >= 500:
            raise Transient(message, _retry_after_s(answer))
        raise Permanent(message)

    async def close(self) -> None:
        await self._client.aclose()


def _error(name: str, answer: httpx.Response) -> str:
    try:
        found = answer.json()
        said = f"{found.get('error', '')}: {found.get('message', '')}"
    except (ValueError, AttributeError):
        said = answer.text[:300]
    return f"{name} answered {answer.status_code} {said}"


def _retry_after_s(answer: httpx.Response) -> float | None:
    """When to try again: `Retry-After`, or the rate limit's reset (epoch seconds)."""
    for header, now in (("retry-after", 0.0), ("ratelimit-reset", datetime.now(UTC).timestamp())):
        if header == "ratelimit-reset" and answer.status_code != 429:
            continue  # the window's end matters only once the limit is reached
        if (value := answer.headers.get(header)) is not None:
            try:
                return max(0.0, float(value) - now)
            except ValueError:
                continue
    return None


def _iso(moment_us: int) -> str:
    return datetime.fromtimestamp(moment_us / 1e6, UTC).isoformat().replace("+00:00", "Z")


def _web_url(handle: str, rkey: str) -> str:
    return f"https://bsky.app/profile/{handle}/post/{rkey}"
