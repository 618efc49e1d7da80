"""Mastodon streaming connector: the Server-Sent Events stream fed into an `Ingestor`.

- `GET {url}/api/v1/streaming/{stream}` with `Accept: text/event-stream` and, when a
  token is given, `Authorization: Bearer TOKEN`. Connecting times out; reading the stream
  does not (the server sends `:thump` heartbeats, which are ignored).
- Each event becomes one line, `{"event": NAME, "payload": DATA}` with DATA the event's
  data as a string, which `hubbub.ingest.mapping.mastodon` accepts.
- Lines go to the ingestor in batches; reading waits while the ingestor is full.
- Mastodon streaming has no cursor: events sent while disconnected are missed, and an
  event received twice is dropped by the log's id dedupe.
- Disconnects and errors are retried forever with exponential backoff and jitter, one log
  line and one `hubbub_source_reconnects` count per reconnect. A refused token (401/403)
  or a URL that is not a streaming endpoint (404, or not `text/event-stream`) is logged
  as an error saying what to fix and retried at the longest backoff. Setting `stop` (or
  cancelling) ends the run once the partial batch is submitted and appended.
"""

from __future__ import annotations

import asyncio
from typing import Final

import httpx
import msgspec
import structlog

from hubbub.ingest.connectors.batching import Backoff, LineBatcher, OnBatch, run_until_stopped
from hubbub.ingest.service import BatchSink
from hubbub.kernel import telemetry

SOURCE: Final = "mastodon"
_CONNECT_TIMEOUT_S: Final = 10.0
_ERROR_BODY_BYTES: Final = 500

log = structlog.get_logger("hubbub.ingest.mastodon")


class SseParser:
    """Server-Sent Events, one line at a time (the WHATWG event-stream rules).

    `feed` takes a line without its line ending and returns `(event, data)` when a blank
    line completes an event that has data: the name defaults to "message", multi-line data
    is joined with "\\n", one space after the colon is dropped, and comment lines (`:`)
    and unknown fields are ignored. An event not ended by a blank line is never returned.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._first = True

    def feed(self, line: str) -> tuple[str, str] | None:
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> tuple[str, str] | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        return (event, "\n".join(data)) if data else None


def stream_line(event: str, data: str) -> bytes:
    """The line the Mastodon mapping accepts for one stream event."""
    return msgspec.json.encode({"event": event, "payload": data})


def streaming_url(url: str, stream: str) -> str:
    """`{url}/api/v1/streaming/{stream}`; a `public:local` style name becomes a path."""
    return f"{url.rstrip('/')}/api/v1/streaming/{stream.strip('/').replace(':', '/')}"


class _Refused(Exception):
    """The server answered, but not with an event stream; `message` says what to fix.

    `lasting` refusals (a bad token, a wrong URL) are not fixed by retrying soon.
    """

    def __init__(self, message: str, *, lasting: bool) -> None:
        super().__init__(message)
        self.message = message
        self.lasting = lasting


async def run_mastodon(
    ingestor: BatchSink,
    *,
    url: str,
    token: str | None,
    stream: str = "public",
    batch_size: int = 500,
    batch_max_wait_s: float = 0.5,
    max_backoff_s: float = 30.0,
    stop: asyncio.Event | None = None,
    on_batch: OnBatch | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Stream a Mastodon instance's `stream` into `ingestor` until `stop` is set.

    `url` is the instance's base URL (`https://mastodon.social`). `on_batch` gets each
    batch's summary once it is in the log. `transport` replaces httpx's network transport.
    """
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx.Timeout(_CONNECT_TIMEOUT_S, read=None)
    batcher = LineBatcher(
        ingestor, batch_size=batch_size, max_wait_s=batch_max_wait_s, on_batch=on_batch
    )
    async with (
        httpx.AsyncClient(
            transport=transport, headers=headers, timeout=timeout, follow_redirects=True
        ) as client,
        batcher,
    ):
        endpoint = streaming_url(url, stream)
        await run_until_stopped(stop, _follow(client, endpoint, batcher, max_backoff_s))


async def _follow(
    client: httpx.AsyncClient, endpoint: str, batcher: LineBatcher, max_backoff_s: float
) -> None:
    """Connect, read, and reconnect after every disconnect, forever."""
    backoff = Backoff(max_backoff_s)
    reconnects = telemetry.SOURCE_RECONNECTS.labels(SOURCE)
    while True:
        try:
            await _session(client, endpoint, batcher, backoff)
        except _Refused as refused:
            delay = backoff.max_s if refused.lasting else backoff.next_delay()
            log.error(
                "mastodon stream refused, retrying",
                source=SOURCE,
                url=endpoint,
                problem=refused.message,
                retry_in_s=round(delay, 3),
            )
        except httpx.RequestError as error:
            delay = backoff.next_delay()
            log.warning(
                "mastodon stream disconnected, reconnecting",
                source=SOURCE,
                url=endpoint,
                reason=f"{type(error).__name__}: {error}",
                retry_in_s=round(delay, 3),
            )
        else:
            delay = backoff.next_delay()
            log.warning(
                "mastodon stream disconnected, reconnecting",
                source=SOURCE,
                url=endpoint,
                reason="the server ended the stream",
                retry_in_s=round(delay, 3),
            )
        reconnects.inc()
        await asyncio.sleep(delay)


async def _session(
    client: httpx.AsyncClient, endpoint: str, batcher: LineBatcher, backoff: Backoff
) -> None:
    """Read one response into the batcher until the server ends it."""
    async with client.stream("GET", endpoint) as response:
        await _check(response)
        log.debug("mastodon stream connected", source=SOURCE, url=endpoint)
        parser = SseParser()
        async for line in response.aiter_lines():
            backoff.reset()
            event = parser.feed(line)
            if event is not None:
                await batcher.add(stream_line(*event))


async def _check(response: httpx.Response) -> None:
    """Raise `_Refused` unless the response is an event stream."""
    status = response.status_code
    if status in (401, 403):
        detail = await _body_start(response)
        raise _Refused(
            f"HTTP {status} {detail}: the server refused the access token; check the token "
            "(is it valid, not revoked, with the read:statuses scope?)",
            lasting=True,
        )
    if status == 404:
        raise _Refused(
            f"HTTP 404: {response.url} is not a Mastodon streaming endpoint; check the "
            "instance URL (its /api/v1/instance lists urls.streaming_api)",
            lasting=True,
        )
    if status != 200:
        raise _Refused(f"HTTP {status} {await _body_start(response)}", lasting=False)
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        raise _Refused(
            f"{response.url} answered {content_type or 'without a content type'}, not "
            "text/event-stream: it is not a Mastodon streaming endpoint",
            lasting=True,
        )


async def _body_start(response: httpx.Response) -> str:
    """The beginning of an error response's body, for the log."""
    body = b""
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= _ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass
    return body[:_ERROR_BODY_BYTES].decode("utf-8", "replace").strip()
