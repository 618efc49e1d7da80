"""The connection to NATS and what every part of the log shares: names, errors, gets."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg, StreamInfo
from nats.js.kv import KeyValue

from hubbub.eventlog.jetstream.wire import _check_name, _Message
from hubbub.eventlog.ports import LogUnavailable
from hubbub.eventlog.retention import RetentionPolicy, compaction_key
from hubbub.kernel.events import Event
from hubbub.kernel.telemetry import redact

if TYPE_CHECKING:
    from hubbub.eventlog.jetstream.groups import _Group
    from hubbub.eventlog.jetstream.writing import _Acks, _Tail


T = TypeVar("T")

# Stream messages fetched concurrently when walking a tail or reading ahead.
_GETS_IN_FLIGHT = 32

_log = structlog.get_logger("hubbub.eventlog.jetstream")


class _Connection:
    """The log's connection and state, and the plumbing its parts share: subject
    names, turning NATS failures into LogUnavailable, stream info and message gets."""

    def __init__(
        self,
        nc: NATS,
        url: str,
        *,
        stream_prefix: str,
        events_per_message: int,
        dedupe_window: int,
        replicas: int,
        timeout: float,
        retention: RetentionPolicy | None = None,
    ) -> None:
        """Use `JetStreamEventLog.connect`, which also checks that the server runs
        JetStream and the streams' configuration."""
        if events_per_message < 1 or dedupe_window < 0 or replicas < 1 or timeout <= 0:
            raise ValueError(
                "events_per_message and replicas must be >= 1, dedupe_window >= 0, timeout > 0"
            )
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream(timeout=timeout)
        self._url = redact(url)  # only ever shown: in messages, without its password
        self._prefix = _check_name("stream prefix", stream_prefix)
        self._per_message = events_per_message
        self._window = dedupe_window
        self._replicas = replicas
        self._timeout = timeout
        self._retention = retention or RetentionPolicy()
        self._tails_kv: KeyValue | None = None
        self._streams: set[str] = set()
        self._tails: dict[str, _Tail] = {}
        self._write_locks: dict[str, asyncio.Lock] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._group_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._cursors: dict[tuple[str, str], int] = {}
        self._kv: KeyValue | None = None
        self._ack_inbox: _Acks | None = None
        self._recent: dict[str, _Message] = {}
        self._next: dict[str, tuple[int, int]] = {}
        self._closed = False

    def _stream(self, topic: str) -> str:
        return f"{self._prefix}_{_check_name('topic', topic)}"

    def _subject(self, topic: str) -> str:
        return f"{self._prefix}.{topic}"

    def _filter(self, topic: str) -> str:
        """The subjects the topic's events are on: one, or one per key when compacted."""
        if self._retention.of(topic).compacted:
            return f"{self._prefix}.{topic}.>"
        return self._subject(topic)

    def _subject_of(self, topic: str, event: Event, compacted: bool) -> str:
        """The subject an event is published on; per compaction key in a compacted topic."""
        if not compacted:
            return self._subject(topic)
        digest = hashlib.blake2b(compaction_key(event).encode(), digest_size=16).hexdigest()
        return f"{self._prefix}.{topic}.{digest}"

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn a NATS failure or timeout into LogUnavailable naming the URL."""
        try:
            yield
        except (nats.errors.Error, OSError) as error:
            detail = str(error) or type(error).__name__
            raise LogUnavailable(
                f"event log on NATS JetStream at {self._url}: {action} failed ({detail}); "
                "check that nats-server is running with JetStream enabled (-js) and reachable"
            ) from error

    async def _request(self, action: str, work: Awaitable[T]) -> T:
        with self._guard(action):
            return await work

    async def _stream_info(self, topic: str) -> StreamInfo | None:
        """The topic's stream info, None when the topic has no stream yet."""
        stream = self._stream(topic)
        with self._guard(f"reading stream {stream}"):
            try:
                info = await self._js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                return None
        self._streams.add(stream)
        return info

    async def _get(
        self, topic: str, seq: int, *, exact: bool = False, direct: bool = True
    ) -> _Message | None:
        """The message at `seq` (exact) or the first at or after it; None when there is none.

        A direct get may be answered by any replica, one that has not yet stored the
        newest messages; `direct=False` asks the stream's leader, which has them all."""
        stream = self._stream(topic)
        subject = None if exact else self._filter(topic)
        with self._guard(f"reading stream {stream}"):
            try:
                raw: RawStreamMsg = await self._js.get_msg(
                    stream, seq, subject=subject, next=not exact, direct=direct
                )
            except nats.js.errors.NotFoundError:
                return None
        assert raw.seq is not None
        return _Message.parse(raw.seq, raw.headers, raw.data)


async def _connect(url: str, within: float) -> NATS:
    """A connection that reconnects forever once up; LogUnavailable if not up in time."""
    nc = NATS()
    errors: list[Exception] = []

    async def on_error(error: Exception) -> None:
        errors.append(error)
        del errors[:-1]
        _log.warning("nats error", url=url, error=str(error) or type(error).__name__)

    try:
        async with asyncio.timeout(within):
            await nc.connect(
                [server.strip() for server in url.split(",")],
                name="hubbub-eventlog",
                connect_timeout=max(1, round(within)),
                max_reconnect_attempts=-1,
                error_cb=on_error,
            )
    except (nats.errors.Error, OSError) as error:
        await nc.close()
        cause = errors[-1] if errors else error
        raise LogUnavailable(
            f"cannot connect to NATS at {redact(url)} within {within}s"
            f" ({cause or type(cause).__name__}); "
            "check the URL and that nats-server is running with JetStream enabled (-js)"
        ) from error
    return nc


async def _topics(nc: NATS, prefix: str, url: str, within: float) -> list[str]:
    """The topics that have a stream under `prefix`, sorted."""
    names: list[str] = []
    while True:
        request = json.dumps({"offset": len(names), "subject": f"{prefix}.*"}).encode()
        try:
            reply = await nc.request("$JS.API.STREAM.NAMES", request, timeout=within)
        except (nats.errors.Error, OSError) as error:
            raise LogUnavailable(
                f"event log on NATS JetStream at {redact(url)}: listing streams failed ({error}); "
                "check that nats-server is running with JetStream enabled (-js)"
            ) from error
        page = json.loads(reply.data)
        if "error" in page:
            raise LogUnavailable(f"NATS JetStream at {redact(url)} refused to list streams: {page}")
        names.extend(page.get("streams") or [])
        if not page.get("streams") or len(names) >= page.get("total", 0):
            break
    own = f"{prefix}_"
    return sorted(name[len(own) :] for name in names if name.startswith(own))
