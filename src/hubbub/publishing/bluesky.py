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

Images are uploaded as blobs (`com.atproto.repo.uploadBlob`) just before the record that
shows them, as `app.bsky.embed.images` with each image's alt text (which the lexicon
requires: empty when there is none); a blob no record names is dropped by the PDS, so
uploading one again after a failure is harmless. A thread is one record per part, each
replying to the one before (`reply`: the first part as `root`, the previous as `parent`,
each a strong reference, uri and cid). A post that answers someone else's (`reply_to`,
an at:// URI) names that post as its first part's parent and that post's conversation
root as every part's root, both read with `getRecord` through the channel's PDS. Each
part has its own record key (`part_key`), derived from the job's, so after a failure each
part is read back and the first missing one is made.

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

from hubbub.kernel.destinations import AddressRefused, checked_client, send_checked
from hubbub.kernel.destinations import Network as IpNetwork
from hubbub.kernel.sealing import SecretBox
from hubbub.publishing.ports import (
    Attachment,
    Channel,
    Job,
    MediaData,
    NotFound,
    OutcomeUnknown,
    Part,
    Permanent,
    Post,
    Published,
    Transient,
)
from hubbub.publishing.text import facets
from hubbub.publishing.tid import ALPHABET, encode

POST: Final = "app.bsky.feed.post"
TIMEOUT_S: Final = 10.0
HINT: Final = "a channel's PDS must be on a public address (HUBBUB_PUBLISH_ALLOWED_NETWORKS)"
DidOf = Callable[[str, str], Awaitable[str | None]]
"""The did of a handle, for a tenant, from the mentions service (None: unknown)."""
IMAGES: Final = "app.bsky.embed.images"
CLOCK_IDS: Final = 1024


def part_key(key: str, index: int) -> str:
    """The record key of part `index` of the thread whose job has the TID `key`: the
    job's own for the first part; then the same moment with the clock identifier moved on
    by `index`. Every key stays a TID, and none is another job's of this process (its TIDs
    all have its one clock identifier, each at a moment of its own)."""
    if index == 0:
        return key
    value = 0
    for character in key:
        value = value * 32 + ALPHABET.index(character)
    moment, clock_id = value >> 10, value & (CLOCK_IDS - 1)
    return encode((moment << 10) | (clock_id + index) % CLOCK_IDS)


@dataclass(frozen=True)
class _Ref:
    """A strong reference to a record, as a reply names its root and parent."""

    uri: str
    cid: str

    def record(self) -> dict[str, str]:
        return {"uri": self.uri, "cid": self.cid}


@dataclass(frozen=True)
class _Reply:
    """Where a record replies: its conversation's first post, and the post it answers."""

    root: _Ref
    parent: _Ref


def _reply(answered: _Reply | None, made: Sequence[_Ref]) -> _Reply | None:
    """What the next part of a post replies to: the part before it (in the conversation
    of the post it answers, or of its own first part), or, first, the post it answers."""
    if not made:
        return answered
    return _Reply(answered.root if answered else made[0], made[-1])


def _parts_of(uri: str) -> tuple[str, str, str]:
    """The repository, collection and record key an at:// URI names; `Permanent` when
    it names no record."""
    repo, _, rest = uri.removeprefix("at://").partition("/")
    collection, _, rkey = rest.partition("/")
    if not uri.startswith("at://") or not (repo and collection and rkey) or "/" in rkey:
        raise Permanent(f"{uri!r} names no post: a reply on Bluesky names at://DID/{POST}/KEY")
    return repo, collection, rkey


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
        *,
        media_data: MediaData,
    ) -> None:
        self._box = box
        self._did_of = did_of
        self._media_data = media_data
        self._allowed = tuple(allowed)
        self._client = checked_client(timeout_s)
        self._sessions: dict[str, _Session] = {}
        self._signing_in: dict[str, asyncio.Lock] = {}

    async def publish(self, channel: Channel, post: Post, job: Job) -> Published:
        """Each part in order, each replying to the one before; a part that may exist
        already (the job was sent before) is read back rather than made again."""
        session = await self._session(channel)
        answered = await self._replied(channel, post.reply_to) if post.reply_to else None
        made: list[_Ref] = []
        for index, part in enumerate(post.parts_for(channel.id)):
            key = part_key(job.idempotency_key, index)
            there = await self._record(channel, key) if job.check_first else None
            reply = _reply(answered, made)
            made.append(there or await self._create(channel, post, job, index, part, reply))
        return Published(made[0].uri, _web_url(session.handle, job.idempotency_key))

    async def find(self, channel: Channel, post: Post, job: Job) -> Published | None:
        """The job's post when every part of it is there; None while one is missing."""
        session = await self._session(channel)
        first: _Ref | None = None
        for index in range(len(post.parts_for(channel.id))):
            there = await self._record(channel, part_key(job.idempotency_key, index))
            if there is None:
                return None
            first = first or there
        assert first is not None  # a post has one part at least
        return Published(first.uri, _web_url(session.handle, job.idempotency_key))

    async def _create(
        self, channel: Channel, post: Post, job: Job, index: int, part: Part,
        reply: _Reply | None,
    ) -> _Ref:  # fmt: skip
        """Make part `index`'s record under its key, in reply to `reply`'s parent; a key
        the PDS holds already is this part's own, sent before, and its record is read
        instead."""
        session = await self._session(channel)
        key = part_key(job.idempotency_key, index)
        record = await self._post_record(channel, post, job, index, part)
        if reply is not None:
            record["reply"] = {"root": reply.root.record(), "parent": reply.parent.record()}
        body = {"repo": session.did, "collection": POST, "rkey": key, "record": record}
        try:
            made = await self._call(channel, "POST", "com.atproto.repo.createRecord", json=body)
        except (Permanent, Transient):
            # A PDS answers a record key it holds already with a 500 (and a 4xx from some
            # versions): taken by this job's own record, sent before, the post is there.
            if (there := await self._record(channel, key)) is not None:
                return there
            raise
        return _Ref(str(made["uri"]), str(made["cid"]))

    async def _post_record(
        self, channel: Channel, post: Post, job: Job, index: int, part: Part
    ) -> dict[str, Any]:
        """The `app.bsky.feed.post` of one part: its text and facets, its language, and
        its images (uploaded now); each part a millisecond after the one before, so they
        sort in order."""
        handles = {}
        for facet in facets(part.text, lambda handle: handle):  # the handles, to resolve
            if facet.kind == "mention":
                handles[facet.value] = await self._did_of(channel.tenant, facet.value)
        record: dict[str, Any] = {
            "$type": POST,
            "text": part.text,
            "createdAt": _iso(job.due_us + index * 1000),
        }
        found = [f.record() for f in facets(part.text, lambda handle: handles.get(handle))]
        if found:
            record["facets"] = found
        if post.language:
            record["langs"] = [post.language]
        if part.media:
            images = [await self._image(channel, image) for image in part.media]
            record["embed"] = {"$type": IMAGES, "images": images}
        return record

    async def _image(self, channel: Channel, image: Attachment) -> dict[str, Any]:
        """One image of `app.bsky.embed.images`: its blob, uploaded, and its alt text."""
        try:
            data = await asyncio.to_thread(self._media_data, channel.tenant, image.id)
        except NotFound as error:
            raise Permanent(f"image {image.id} is no longer kept: {error}") from error
        uploaded = await self._call(
            channel, "POST", "com.atproto.repo.uploadBlob", content=data,
            headers={"content-type": image.content_type},
        )  # fmt: skip
        return {"alt": image.alt or "", "image": uploaded["blob"]}

    async def _record(self, channel: Channel, key: str) -> _Ref | None:
        """The post record under `key` in the channel's repository, if there is one."""
        session = await self._session(channel)
        params = {"repo": session.did, "collection": POST, "rkey": key}
        try:
            found = await self._call(channel, "GET", "com.atproto.repo.getRecord", params=params)
        except Permanent as error:
            if "RecordNotFound" in str(error) or "Could not locate record" in str(error):
                return None
            raise
        return _Ref(str(found["uri"]), str(found["cid"]))

    async def _replied(self, channel: Channel, uri: str) -> _Reply:
        """Where a reply to the post at `uri` goes: that post as its parent, and the root
        of its conversation (its own reply's root, or itself when it starts one), read
        with `getRecord` through the channel's PDS."""
        repo, collection, rkey = _parts_of(uri)
        params = {"repo": repo, "collection": collection, "rkey": rkey}
        try:
            found = await self._call(channel, "GET", "com.atproto.repo.getRecord", params=params)
        except Permanent as error:
            raise Permanent(f"the post replied to, {uri}, cannot be read: {error}") from error
        parent = _Ref(str(found["uri"]), str(found["cid"]))
        root = (found.get("value") or {}).get("reply", {}).get("root")
        return _Reply(_Ref(str(root["uri"]), str(root["cid"])) if root else parent, parent)

    async def page(self, channel: Channel) -> str:
        """The account's DID, as the PDS names it when the channel signs in."""
        return (await self._session(channel)).did

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
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["authorization"] = f"Bearer {token}"
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
