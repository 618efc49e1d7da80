"""Bluesky Jetstream connector: a websocket subscription fed into an `Ingestor`.

- Connects to Jetstream's `/subscribe` endpoint asking for plain JSON (no zstd, no
  permessage-deflate), with one `wantedCollections` parameter per collection.
- Every frame becomes one line (text frames as their UTF-8 bytes, binary frames as they
  are), so anything malformed reaches the mapping and is dead-lettered, never dropped.
- Lines go to the ingestor in batches; reading waits while the ingestor is full.
- The cursor is the largest `time_us` of the batches known to be in the log, saved in
  order after each batch is appended. Every (re)connect resumes from the saved cursor
  minus `rewind_s`; what the overlap replays is dropped by the log's id dedupe, so a
  disconnect or a restart loses nothing. A batch that fails to append stops the cursor
  and forces a reconnect, which replays it.
- Disconnects and network errors are retried forever with exponential backoff and
  jitter, one log line and one `hubbub_source_reconnects` count per reconnect. Setting
  `stop` (or cancelling) ends the run once the partial batch is submitted and every
  pending batch is appended and its cursor saved.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidURI, WebSocketException

from hubbub.ingest.connectors.batching import Backoff, LineBatcher, OnBatch, run_until_stopped
from hubbub.ingest.ports import IngestState
from hubbub.ingest.service import BatchSink
from hubbub.kernel import telemetry

SOURCE: Final = "jetstream"
_TIME_US: Final = b'"time_us":'
_DIGITS: Final = re.compile(rb"\s*(\d{1,19})")
_OPEN_TIMEOUT_S: Final = 10.0
_CLOSE_TIMEOUT_S: Final = 2.0
_NETWORK_ERRORS: Final = (OSError, EOFError, TimeoutError, WebSocketException)

log = structlog.get_logger("hubbub.ingest.jetstream")


class _BatchFailed(Exception):
    """A submitted batch was not appended: reconnect from the saved cursor to replay it."""


@dataclass(frozen=True, slots=True)
class _Settings:
    url: str
    collections: tuple[str, ...]
    rewind_us: int
    max_backoff_s: float
    cursor_name: str


async def run_jetstream(
    ingestor: BatchSink,
    state: IngestState,
    *,
    url: str,
    collections: Sequence[str] = (),
    batch_size: int = 5000,
    batch_max_wait_s: float = 0.2,
    rewind_s: float = 2.0,
    max_backoff_s: float = 30.0,
    cursor_name: str = "jetstream",
    stop: asyncio.Event | None = None,
    on_batch: OnBatch | None = None,
) -> None:
    """Stream Jetstream into `ingestor` until `stop` is set (or the task is cancelled).

    `url` is the websocket URL of a Jetstream instance (its `/subscribe` path is used when
    the URL has no path). The cursor lives in `state` under `cursor_name`. `on_batch`
    gets each batch's summary once it is in the log. Only an invalid URL raises.
    """
    settings = _Settings(
        url, tuple(collections), int(rewind_s * 1_000_000), max_backoff_s, cursor_name
    )
    cursor = _CursorKeeper(state, cursor_name, await state.load_cursor(cursor_name))
    batcher = LineBatcher(
        ingestor,
        batch_size=batch_size,
        max_wait_s=batch_max_wait_s,
        on_batch=on_batch,
        on_appended=cursor.advance,
    )
    async with batcher:
        await run_until_stopped(stop, _follow(settings, state, batcher))


def subscribe_url(url: str, collections: Sequence[str], cursor: int | None) -> str:
    """`url` with `wantedCollections` (one per collection) and `cursor` in its query."""
    parts = urlsplit(url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("cursor", "wantedCollections")
    ]
    query += [("wantedCollections", collection) for collection in collections]
    if cursor is not None:
        query.append(("cursor", str(cursor)))
    path = parts.path if parts.path not in ("", "/") else "/subscribe"
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


def time_us_of(line: bytes) -> int | None:
    """The top-level `time_us` of a raw Jetstream line, without decoding it; None if absent.

    Jetstream writes `time_us` before any nested object, so a `"time_us":` found after the
    first nested `{` belongs to a record and is ignored.
    """
    at = line.find(_TIME_US)
    if at < 0:
        return None
    nested = line.find(b"{", line.find(b"{") + 1)
    if 0 <= nested < at:
        return None
    match = _DIGITS.match(line, at + len(_TIME_US))
    return int(match.group(1)) if match else None


def newest_time_us(lines: Sequence[bytes]) -> int | None:
    """The largest `time_us` among `lines`, None when no line has one."""
    times = [t for t in map(time_us_of, lines) if t is not None]
    return max(times) if times else None


class _CursorKeeper:
    """Saves the newest `time_us` of appended batches; the saved cursor never moves back."""

    def __init__(self, state: IngestState, name: str, saved: int | None) -> None:
        self.state = state
        self.name = name
        self.saved = saved

    async def advance(self, lines: Sequence[bytes]) -> None:
        newest = newest_time_us(lines)
        if newest is not None and (self.saved is None or newest > self.saved):
            await self.state.save_cursor(self.name, newest)
            self.saved = newest


async def _follow(settings: _Settings, state: IngestState, batcher: LineBatcher) -> None:
    """Connect, read, and reconnect after every disconnect, forever."""
    backoff = Backoff(settings.max_backoff_s)
    reconnects = telemetry.SOURCE_RECONNECTS.labels(SOURCE)
    while True:
        saved = await state.load_cursor(settings.cursor_name)
        resume = None if saved is None else max(saved - settings.rewind_us, 0)
        target = subscribe_url(settings.url, settings.collections, resume)
        reason = await _attempt(target, batcher, backoff)
        delay = backoff.next_delay()
        reconnects.inc()
        log.warning(
            "jetstream disconnected, reconnecting",
            source=SOURCE,
            reason=reason,
            retry_in_s=round(delay, 3),
            resumed_from=resume,
        )
        await asyncio.sleep(delay)


async def _attempt(target: str, batcher: LineBatcher, backoff: Backoff) -> str:
    """Run one connection to its end; returns why it ended."""
    try:
        await _session(target, batcher, backoff)
    except InvalidURI:
        raise
    except _BatchFailed:
        await batcher.settle()
        batcher.reset_failure()
        return "a batch was not appended; replaying it from the saved cursor"
    except _NETWORK_ERRORS as error:
        return f"{type(error).__name__}: {error}"
    return "the connection ended"


async def _session(target: str, batcher: LineBatcher, backoff: Backoff) -> None:
    """Read one connection into the batcher until it ends (always by an exception)."""
    async with connect(
        target,
        compression=None,
        max_size=None,
        open_timeout=_OPEN_TIMEOUT_S,
        close_timeout=_CLOSE_TIMEOUT_S,
    ) as websocket:
        log.debug("jetstream connected", source=SOURCE, url=target)
        while True:
            line = await websocket.recv(decode=False)
            backoff.reset()
            await batcher.add(line)
            if batcher.failed:
                raise _BatchFailed
