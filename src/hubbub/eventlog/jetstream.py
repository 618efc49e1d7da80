"""The scale-out event log: NATS JetStream, one stream per topic.

Layout, for a prefix `p` and a topic `t`:

- Stream `p_t` (subject `p.t`, file storage, direct get allowed) holds the topic's
  events packed `events_per_message` to a message (`encode_many`). Each message
  carries the positions of its first and last event in the headers
  `Hubbub-First-Position` and `Hubbub-Last-Position`, so positions are dense per topic
  while stream sequences count messages.
- KV bucket `p_offsets` holds each consumer group's committed position per topic.
- KV bucket `p_tails` holds, per topic, the last sequence and position a writer stored,
  so numbering goes on after retention emptied a stream (see Retention).
- Durable pull consumer `<group>` on `p_t` delivers the group's messages (explicit ack).

Retention (`hubbub.eventlog.retention`, settings `HUBBUB_RETAIN_*`) is the streams' own
limits, kept by the server: `max_age` and `max_bytes` for topics kept by age and size
(firehose topics 30 days by default; `usage` 90, `deadletter`, `deliveries` and
`alerts` 30), none for `pages` (kept whole). `control` is compacted by subject: each
event is a message of its own on `p.control.<digest of its compaction key>`, and the
stream keeps one message per subject (`max_msgs_per_subject` 1), the latest. Every
stream and bucket has `HUBBUB_NATS_REPLICAS` replicas on file storage.

Checked at start. `connect` compares every existing stream of the prefix (and the
buckets) with what the settings ask: limits, replicas and subjects that differ are
updated; a stream on memory storage, or a `control` stream holding events in the
layout from before compaction, stops the start with `LogMisconfigured` saying what to
do. So the log never runs on a stream that keeps less, or less safely, than configured.

Writing. A writer learns the last sequence and position of a topic from the stream's
tail when it first appends there, and rebuilds from the last `dedupe_window` events a
window of recent ids that makes append idempotent. The messages of a batch are
published pipelined; each expects the stream's last sequence to be the one before it
(`Nats-Expected-Last-Sequence`) and, after the first, its predecessor's message id
(`Nats-Expected-Last-Msg-Id`), so a writer that raced another one writes nothing out
of place: it catches up with the stream's tail and tries again. `Nats-Msg-Id` is a
digest of the event ids a message carries, so a retried message is stored once.

Reading. `read` finds the message holding a position by interpolation search over
stream sequences (direct get), then unpacks messages from there.

Consuming. A group's position of record is the KV entry. When a process first fetches
for a group, it starts the durable consumer at the message holding the position after
the committed one (recreating the consumer if it would start elsewhere) and skips the
events at or before it. `commit` stores the position, then acks the messages it covers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections import deque
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Final, TypeVar

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerInfo,
    DeliverPolicy,
    RawStreamMsg,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.kv import KeyValue

from hubbub.eventlog.packing import packed_ids
from hubbub.eventlog.ports import (
    AppendResult,
    GroupStats,
    LogMisconfigured,
    LogStats,
    LogUnavailable,
    Record,
    TopicStats,
)
from hubbub.eventlog.retention import (
    RetentionPolicy,
    TopicRetention,
    check_not_expired,
    compaction_key,
)
from hubbub.kernel.events import AnyEvent, Event, decode_many, encode_many, topic_of
from hubbub.kernel.telemetry import redact

T = TypeVar("T")

FIRST_POSITION: Final = "Hubbub-First-Position"
LAST_POSITION: Final = "Hubbub-Last-Position"
_MSG_ID: Final = "Nats-Msg-Id"
_EXPECTED_LAST_SEQUENCE: Final = "Nats-Expected-Last-Sequence"
_EXPECTED_LAST_MSG_ID: Final = "Nats-Expected-Last-Msg-Id"
_WRONG_LAST_MSG_ID: Final = 10070
_WRONG_LAST_SEQUENCE: Final = 10071
_STREAM_NAME_IN_USE: Final = 10058

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_CONSUMER_NAME = re.compile(r"[A-Za-z0-9_-]{1,48}")
# Room left in a message for its headers under the server's max_payload.
_HEADER_ROOM = 4096
# Stream messages fetched concurrently when walking a tail or reading ahead.
_GETS_IN_FLIGHT = 32
_APPEND_ATTEMPTS = 8
_DUPLICATE_WINDOW_S = 120.0
_ACK_WAIT_S = 120.0
_MAX_ACK_PENDING = 100_000
_MAX_PULL_BATCH = 256

_log = structlog.get_logger("hubbub.eventlog.jetstream")


class _TailMark(msgspec.Struct, frozen=True):
    """A topic's last stored sequence and position, as kept in the tails bucket."""

    seq: int
    position: int
    events_per_message: int


class _Offset(msgspec.Struct, frozen=True):
    """A group's committed position in a topic, as stored in the offsets bucket."""

    group: str
    topic: str
    position: int


class _Message:
    """One stream message: events `first`..`last` of a topic, decoded on demand."""

    __slots__ = ("_events", "data", "first", "last", "seq")

    def __init__(self, seq: int, first: int, last: int, data: bytes) -> None:
        self.seq = seq
        self.first = first
        self.last = last
        self.data = data
        self._events: list[AnyEvent] | None = None

    @classmethod
    def parse(cls, seq: int, headers: dict[str, str] | None, data: bytes | None) -> _Message:
        """The message at `seq`; raises LogUnavailable when Hubbub did not write it."""
        try:
            assert headers is not None
            first, last = int(headers[FIRST_POSITION]), int(headers[LAST_POSITION])
        except (AssertionError, KeyError, ValueError) as error:
            raise LogUnavailable(
                f"stream message {seq} has no {FIRST_POSITION}/{LAST_POSITION} headers: "
                "the stream holds messages not written by Hubbub's event log"
            ) from error
        return cls(seq, first, last, data or b"")

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def events(self) -> list[AnyEvent]:
        """The events, decoded once; their number matches the position headers."""
        if self._events is None:
            events = decode_many(self.data)
            if len(events) != self.count:
                raise LogUnavailable(
                    f"stream message {self.seq} holds {len(events)} events "
                    f"but its headers say {self.count}"
                )
            self._events = events
        return self._events

    def ids(self) -> list[str]:
        """The event ids, in order, without decoding the events' bodies."""
        return packed_ids(self.data)

    def records(self, topic: str, start: int, limit: int) -> list[Record]:
        """Up to `limit` records from position `start` (at least `first`) of this message."""
        start = max(start, self.first)
        end = min(self.last, start + limit - 1)
        events = self.events()
        return [Record(topic, pos, events[pos - self.first]) for pos in range(start, end + 1)]


class _Tail:
    """What a writer knows of a topic's end: last sequence and position, recent ids."""

    def __init__(self, window: int) -> None:
        self.last_seq = 0
        self.last_position = 0
        self.stale = False
        self._window = window
        self._order: deque[str] = deque()
        self._ids: set[str] = set()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def remember(self, ids: Sequence[str]) -> None:
        """Add ids in append order, forgetting the oldest beyond the window."""
        self._order.extend(ids)
        self._ids.update(ids)
        while len(self._order) > self._window:
            self._ids.discard(self._order.popleft())


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubReply(msgspec.Struct):
    """JetStream's answer to a publish: where it stored the message, or why not."""

    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None

    @property
    def stored(self) -> bool:
        """Whether this publish stored the message (not refused, not a duplicate)."""
        return self.error is None and not self.duplicate

    @property
    def lost_race(self) -> bool:
        """Whether another writer appended first (the expected last message differed)."""
        return self.error is not None and self.error.err_code in (
            _WRONG_LAST_SEQUENCE,
            _WRONG_LAST_MSG_ID,
        )


_NO_STREAM = _PubReply(error=_ApiError(503, 0, "no stream answered on the topic's subject"))


class _Acks:
    """Replies to pipelined publishes, each matched to its message by reply subject."""

    def __init__(self, inbox: str) -> None:
        self.inbox = inbox
        self.sent = 0
        self.waiting: dict[str, asyncio.Future[_PubReply]] = {}
        self.subscription: Subscription | None = None

    def expect(self) -> tuple[str, asyncio.Future[_PubReply]]:
        """A fresh reply subject and the future its reply will resolve."""
        self.sent += 1
        reply = f"{self.inbox}.{self.sent}"
        future: asyncio.Future[_PubReply] = asyncio.get_running_loop().create_future()
        self.waiting[reply] = future
        return reply, future

    def forget(self, futures: list[asyncio.Future[_PubReply]]) -> None:
        """Stop waiting for these replies (after a timeout)."""
        for reply, future in list(self.waiting.items()):
            if future in futures:
                del self.waiting[reply]
                future.cancel()

    async def deliver(self, msg: Msg) -> None:
        """Subscription callback: resolve the future waiting for this reply."""
        future = self.waiting.pop(msg.subject, None)
        if future is None or future.done():
            return
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            future.set_result(_NO_STREAM)
            return
        try:
            future.set_result(_pub_reply_decoder.decode(msg.data))
        except msgspec.DecodeError:
            detail = f"unreadable publish reply {msg.data[:200]!r}"
            future.set_result(_PubReply(error=_ApiError(description=detail)))


_pub_reply_decoder = msgspec.json.Decoder(_PubReply)


class _Outgoing(msgspec.Struct):
    """A packed message ready to publish, and what it carries."""

    payload: bytes
    headers: dict[str, str]
    ids: list[str]
    subject: str


class _Group:
    """One process's consumption of a topic by a group: consumer, inbox and cursor."""

    def __init__(
        self, stream: str, consumer: str, inbox: str, cursor: int, rule: TopicRetention
    ) -> None:
        self.stream = stream
        self.rule = rule
        self.consumer = consumer
        self.inbox = inbox
        self.cursor = cursor
        self.queue: asyncio.Queue[Msg] = asyncio.Queue()
        self.buffer: deque[_Message] = deque()
        self.unacked: dict[int, tuple[int, Msg]] = {}
        self.requests = 0
        self.subscription: Subscription | None = None

    async def deliver(self, msg: Msg) -> None:
        """Subscription callback: queue every message and status sent to the inbox."""
        self.queue.put_nowait(msg)

    def queued(self) -> list[Msg]:
        """Messages already delivered to the inbox; stale statuses are dropped."""
        msgs = []
        while not self.queue.empty():
            msg = self.queue.get_nowait()
            if _status(msg) is None:
                msgs.append(msg)
        return msgs

    def accept(self, msgs: list[Msg]) -> None:
        """Track delivered messages for ack; buffer those with events after the cursor."""
        for msg in msgs:
            message = _Message.parse(msg.metadata.sequence.stream, msg.headers, msg.data)
            self.unacked[message.seq] = (message.last, msg)
            newest = self.buffer[-1].seq if self.buffer else 0
            if message.last >= self.cursor and message.seq > newest:
                self.buffer.append(message)

    def take(self, topic: str, limit: int) -> list[Record]:
        """Up to `limit` buffered records from the cursor on, advancing the cursor."""
        records: list[Record] = []
        while self.buffer and len(records) < limit:
            message = self.buffer[0]
            if message.first > self.cursor and not records:
                # The server dropped what lay between (retention): say so, skip nothing.
                check_not_expired(topic, self.cursor, message.first, self.rule)
            if message.last >= self.cursor:
                taken = message.records(topic, self.cursor, limit - len(records))
                records.extend(taken)
                self.cursor = taken[-1].position + 1
            if self.cursor > message.last:
                self.buffer.popleft()
        return records

    def covered(self, position: int) -> list[Msg]:
        """Forget and return the delivered messages whose events all lie at or before it."""
        done = [seq for seq, (last, _) in self.unacked.items() if last <= position]
        return [self.unacked.pop(seq)[1] for seq in done]


def _first_of_each_id(events: Sequence[Event]) -> list[Event]:
    """The events whose id does not occur earlier in the batch, in order."""
    seen: set[str] = set()
    first = []
    for event in events:
        if event.id not in seen:
            seen.add(event.id)
            first.append(event)
    return first


def _status(msg: Msg) -> str | None:
    """The status code of a JetStream status message, None for a stream message."""
    if msg.data or not msg.headers:
        return None
    return msg.headers.get("Status")


def _message_id(ids: Sequence[str]) -> str:
    """The message's `Nats-Msg-Id`: a digest of the event ids it carries, in order."""
    return hashlib.blake2b("\n".join(ids).encode(), digest_size=16).hexdigest()


def _consumer_name(group: str) -> str:
    """The durable consumer's name: the group's own when it is a valid name."""
    if _CONSUMER_NAME.fullmatch(group):
        return group
    return "g" + hashlib.blake2b(group.encode(), digest_size=12).hexdigest()


def _offset_key(group: str, topic: str) -> str:
    """The group's key in the offsets bucket (any group name maps to a valid key)."""
    token = base64.urlsafe_b64encode(group.encode()).decode().rstrip("=")
    return f"{topic}.g{token}"


def _refused(stream: str, error: nats.js.errors.APIError) -> LogMisconfigured:
    """The error for a stream NATS would not create as the settings ask."""
    return LogMisconfigured(
        f"NATS refused to create stream {stream} as configured: {error.description} "
        f"(err_code {error.err_code}); check HUBBUB_NATS_REPLICAS (more than 1 needs a "
        "NATS cluster with that many JetStream servers) and HUBBUB_RETAIN_*"
    )


def _require_replicas(stream: str, info: StreamInfo, replicas: int) -> None:
    """Raise LogMisconfigured when a stream has fewer copies than asked: a server outside
    a cluster accepts an update to more replicas, reports them, and keeps one."""
    copies = 1 if info.cluster is None else 1 + len(info.cluster.replicas or [])
    if (info.config.num_replicas or 1) != replicas or (replicas > 1 and info.cluster is None):
        raise LogMisconfigured(
            f"stream {stream} has {copies} copy(ies) where HUBBUB_NATS_REPLICAS asks "
            f"{replicas}: NATS keeps one copy of a stream unless it runs as a cluster of at "
            f"least {replicas} JetStream servers"
        )


def _require_file_storage(stream: str, config: StreamConfig) -> None:
    """Raise LogMisconfigured for a stream that would lose everything on a restart."""
    if config.storage != StorageType.FILE:
        raise LogMisconfigured(
            f"stream {stream} keeps its messages in memory, so a NATS restart would lose "
            "the log; NATS cannot change a stream's storage: move its messages to a "
            "file-storage stream (nats stream backup/restore) or delete it"
        )


# What Hubbub sets on its streams and checks at start; the rest is NATS's to choose.
_CHECKED: Final = (
    "subjects",
    "num_replicas",
    "max_age",
    "max_bytes",
    "max_msgs",
    "max_msgs_per_subject",
    "duplicate_window",
    "allow_direct",
)


def _differences(actual: StreamConfig, wanted: StreamConfig) -> list[str]:
    """The checked fields where `actual` is not `wanted`, as "field: actual → wanted"."""
    unset = {"max_age": 0.0, "max_bytes": -1, "max_msgs": -1, "max_msgs_per_subject": -1}
    changes = []
    for name in _CHECKED:
        have = getattr(actual, name)
        want = getattr(wanted, name)
        if have is None:
            have = unset.get(name, have)
        if name == "subjects":
            have, want = sorted(have or []), sorted(want or [])
        if have != want:
            changes.append(f"{name}: {have} → {want}")
    return changes


def _check_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{kind} {name!r} must be letters, digits, '_' or '-'")
    return name


class JetStreamEventLog:
    """EventLog on NATS JetStream; see `hubbub.eventlog.ports` and this module's docstring."""

    backend = "jetstream"

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
        """Use `connect`, which also checks that the server runs JetStream and the
        streams' configuration."""
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

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        stream_prefix: str = "hubbub",
        events_per_message: int = 1000,
        dedupe_window: int = 100_000,
        replicas: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 (per request, not for the call)
        retention: RetentionPolicy | None = None,
    ) -> JetStreamEventLog:
        """Connect to NATS at `url` (several servers: comma-separated); raises
        LogUnavailable when it or JetStream is not there, LogMisconfigured when an
        existing stream cannot keep what the settings ask (see the module docstring).

        Streams and buckets are created when first needed, idempotently, so any number
        of processes may connect with the same prefix. Without a `retention` policy
        every topic is kept whole except `control`, which is compacted.
        """
        nc = await _connect(url, timeout)
        log = cls(
            nc,
            url,
            stream_prefix=stream_prefix,
            events_per_message=events_per_message,
            dedupe_window=dedupe_window,
            replicas=replicas,
            timeout=timeout,
            retention=retention,
        )
        try:
            with log._guard("reaching JetStream"):
                await log._js.account_info()
            await log._check_streams()
        except (LogUnavailable, LogMisconfigured):
            await nc.close()
            raise
        return log

    # Names and plumbing.

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

    def _stream_config(self, topic: str) -> StreamConfig:
        """The configuration the topic's stream must have (see the module docstring)."""
        rule = self._retention.of(topic)
        subjects = [self._subject(topic)]
        if rule.compacted:
            subjects.append(self._filter(topic))
        return StreamConfig(
            name=self._stream(topic),
            description=f"Hubbub event log, topic {topic}",
            subjects=subjects,
            storage=StorageType.FILE,
            num_replicas=self._replicas,
            # The server refuses a duplicate window longer than the messages live.
            duplicate_window=min(_DUPLICATE_WINDOW_S, rule.max_age_s or _DUPLICATE_WINDOW_S),
            allow_direct=True,
            max_age=rule.max_age_s,
            max_bytes=rule.max_bytes or -1,
            max_msgs=-1,
            max_msgs_per_subject=1 if rule.compacted else -1,
        )

    async def _ensure_stream(self, topic: str) -> str:
        """The topic's stream, created if missing, checked and updated if it exists."""
        stream = self._stream(topic)
        if stream in self._streams:
            return stream
        with self._guard(f"creating stream {stream}"):
            try:
                info = await self._js.add_stream(self._stream_config(topic))
                _require_replicas(stream, info, self._replicas)
            except nats.js.errors.APIError as error:
                if error.err_code != _STREAM_NAME_IN_USE:
                    raise _refused(stream, error) from error
                await self._check_stream(topic)
        self._streams.add(stream)
        return stream

    async def _check_streams(self) -> None:
        """Check (and update) every existing stream of the prefix and both buckets."""
        for topic in await _topics(self._nc, self._prefix, self._url, self._timeout):
            await self._check_stream(topic)
            self._streams.add(self._stream(topic))
        for bucket in (f"{self._prefix}_offsets", f"{self._prefix}_tails"):
            await self._check_bucket(bucket)
        # Created now, so replicas the servers cannot hold stop the start, not an append.
        await self._tail_marks()

    async def _check_stream(self, topic: str) -> None:
        """Update the topic's stream to the configured limits, replicas and subjects, or
        raise LogMisconfigured when it cannot be (memory storage, old control layout)."""
        stream, wanted = self._stream(topic), self._stream_config(topic)
        with self._guard(f"reading stream {stream}"):
            info = await self._js.stream_info(stream)
        config = info.config
        _require_file_storage(stream, config)
        packed = self._filter(topic) not in (config.subjects or [])
        if wanted.max_msgs_per_subject == 1 and packed and info.state.messages:
            raise LogMisconfigured(
                f"stream {stream} holds {info.state.messages} control events packed on "
                "one subject, from before control was compacted by key; compacting it "
                "would keep only the last message. Copy the live settings out (hubbub "
                f"log read control), delete the stream (nats stream rm {stream}) and "
                "set them again, or use a new HUBBUB_STREAM_PREFIX"
            )
        if _differences(config, wanted):
            await self._update_stream(stream, wanted, _differences(config, wanted))

    async def _update_stream(self, stream: str, wanted: StreamConfig, why: list[str]) -> None:
        """Apply `wanted` to an existing stream; LogMisconfigured when the server refuses."""
        _log.warning("updating stream to the configured retention", stream=stream, changes=why)
        with self._guard(f"updating stream {stream}"):
            try:
                info = await self._js.update_stream(wanted)
            except nats.js.errors.APIError as error:
                raise LogMisconfigured(
                    f"stream {stream} differs from the settings ({', '.join(why)}) and NATS "
                    f"refused to update it: {error.description} (err_code {error.err_code}). "
                    "Fix the stream with the nats CLI or change HUBBUB_NATS_REPLICAS / "
                    "HUBBUB_RETAIN_* to what it can hold"
                ) from error
        _require_replicas(stream, info, self._replicas)

    async def _check_bucket(self, bucket: str) -> None:
        """A bucket's stream on file storage with the configured replicas, if it exists."""
        stream = f"KV_{bucket}"
        with self._guard(f"reading stream {stream}"):
            try:
                info = await self._js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                return
        _require_file_storage(stream, info.config)
        if info.config.num_replicas != self._replicas:
            wanted = StreamConfig.from_response(info.config.as_dict())
            wanted.num_replicas = self._replicas
            await self._update_stream(stream, wanted, [f"num_replicas → {self._replicas}"])

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

    # Appending.

    async def append(self, events: Sequence[Event]) -> AppendResult:
        """Append a batch, skipping ids in the topic's recent window or earlier in the batch.

        `duplicate_ids` lists the id of every skipped event, in batch order. Topics are
        written concurrently; within a topic, messages keep batch order. On
        LogUnavailable some topics or messages may be written: retrying the same call
        writes each event once.
        """
        by_topic: dict[str, list[Event]] = {}
        for event in _first_of_each_id(events):
            by_topic.setdefault(topic_of(event), []).append(event)
        outcomes = await asyncio.gather(
            *(self._append_topic(topic, batch) for topic, batch in by_topic.items()),
            return_exceptions=True,
        )
        written: set[str] = set()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            written.update(outcome)
        duplicate_ids: list[str] = []
        for event in events:
            if event.id in written:
                written.discard(event.id)
            else:
                duplicate_ids.append(event.id)
        return AppendResult(
            appended=len(events) - len(duplicate_ids),
            duplicates=len(duplicate_ids),
            duplicate_ids=duplicate_ids,
        )

    async def _append_topic(self, topic: str, events: list[Event]) -> list[str]:
        """Write the events not yet in the topic; returns the ids this call wrote.

        Events JetStream reports as a duplicate message (same ids, within its own
        duplicate window) are in the log already and count as duplicates.
        """
        lock = self._write_locks.setdefault(topic, asyncio.Lock())
        async with lock:
            written: list[str] = []
            stored_before: set[str] = set()
            for _ in range(_APPEND_ATTEMPTS):
                tail = await self._tail(topic)
                todo = [e for e in events if e.id not in tail and e.id not in stored_before]
                if not todo:
                    return written
                outgoing = self._pack(topic, todo, tail)
                try:
                    replies = await self._publish(topic, outgoing)
                except BaseException:
                    tail.stale = True
                    raise
                for message, reply in zip(outgoing, replies, strict=True):
                    if reply.stored:
                        written.extend(message.ids)
                    elif reply.duplicate:
                        stored_before.update(message.ids)
                if all(reply.stored for reply in replies):
                    self._advance(tail, outgoing)
                    await self._mark_tail(topic, tail)
                    return written
                tail.stale = True
                self._raise_unless_lost_race(topic, replies)
        raise LogUnavailable(
            f"event log on NATS JetStream at {self._url}: appending to topic {topic} kept "
            f"conflicting with other writers after {_APPEND_ATTEMPTS} attempts; retry later"
        )

    def _raise_unless_lost_race(self, topic: str, replies: list[_PubReply]) -> None:
        """Raise LogUnavailable when JetStream refused a write for another reason than a
        writer appending first."""
        for reply in replies:
            if reply.error is not None and not reply.lost_race:
                raise LogUnavailable(
                    f"event log on NATS JetStream at {self._url}: the server refused a write "
                    f"to topic {topic}: {reply.error.description} "
                    f"(code {reply.error.code}, err_code {reply.error.err_code})"
                )

    def _advance(self, tail: _Tail, outgoing: list[_Outgoing]) -> None:
        """Record in the tail that every message of `outgoing` is stored, in order."""
        for message in outgoing:
            tail.remember(message.ids)
        tail.last_seq += len(outgoing)
        tail.last_position += sum(len(message.ids) for message in outgoing)

    def _pack(self, topic: str, events: list[Event], tail: _Tail) -> list[_Outgoing]:
        """Pack events into messages placed after the tail, each chained to the one before.

        A compacted topic gets one event per message, on the subject of its key."""
        outgoing: list[_Outgoing] = []
        position = tail.last_position + 1
        previous: str | None = None
        compacted = self._retention.of(topic).compacted
        per_message = 1 if compacted else self._per_message
        for start in range(0, len(events), per_message):
            for chunk, payload in self._fit(events[start : start + per_message]):
                ids = [event.id for event in chunk]
                msg_id = _message_id(ids)
                headers = {
                    _MSG_ID: msg_id,
                    _EXPECTED_LAST_SEQUENCE: str(tail.last_seq + len(outgoing)),
                    FIRST_POSITION: str(position),
                    LAST_POSITION: str(position + len(chunk) - 1),
                }
                if previous is not None:
                    headers[_EXPECTED_LAST_MSG_ID] = previous
                subject = self._subject_of(topic, chunk[0], compacted)
                outgoing.append(_Outgoing(payload, headers, ids, subject))
                position += len(chunk)
                previous = msg_id
        return outgoing

    def _fit(self, chunk: list[Event]) -> list[tuple[list[Event], bytes]]:
        """Split a chunk in halves until each encoding fits the server's max_payload."""
        payload = encode_many(chunk)
        limit = self._nc.max_payload - _HEADER_ROOM
        if len(payload) <= limit:
            return [(chunk, payload)]
        if len(chunk) == 1:
            raise LogUnavailable(
                f"event {chunk[0].id} encodes to {len(payload)} bytes, over the {limit} bytes "
                f"a message may carry on the NATS server at {self._url} (max_payload)"
            )
        half = len(chunk) // 2
        return self._fit(chunk[:half]) + self._fit(chunk[half:])

    async def _publish(self, topic: str, outgoing: list[_Outgoing]) -> list[_PubReply]:
        """Publish the messages in order without waiting in between; their replies in order."""
        acks = await self._acks()
        futures: list[asyncio.Future[_PubReply]] = []
        with self._guard(f"appending to topic {topic}"):
            try:
                for message in outgoing:
                    reply, future = acks.expect()
                    futures.append(future)
                    await self._nc.publish(
                        message.subject, message.payload, reply=reply, headers=message.headers
                    )
                return await asyncio.wait_for(asyncio.gather(*futures), self._timeout)
            finally:
                acks.forget(futures)

    async def _acks(self) -> _Acks:
        """The inbox publish replies arrive on, subscribed on first use."""
        if self._ack_inbox is None:
            acks = _Acks(self._nc.new_inbox())
            with self._guard("subscribing for publish replies"):
                acks.subscription = await self._nc.subscribe(f"{acks.inbox}.*", cb=acks.deliver)
            self._ack_inbox = acks
        return self._ack_inbox

    async def _mark_tail(self, topic: str, tail: _Tail) -> None:
        """Record the topic's last sequence and position, for when retention empties it.

        A failure is only logged: the messages are stored, and a mark that lags costs
        nothing unless the stream empties before the next append (see `_emptied_tail`).
        """
        mark = _TailMark(tail.last_seq, tail.last_position, self._per_message)
        try:
            kv = await self._tail_marks()
            await self._request(
                f"marking the tail of {topic}", kv.put(topic, msgspec.json.encode(mark))
            )
        except LogUnavailable as error:
            _log.warning("could not mark a topic's tail", topic=topic, error=str(error))

    async def _emptied_tail(self, topic: str, last_seq: int) -> int:
        """The last position of a topic whose stream retention emptied: the mark's, plus
        at most a message's worth for each message stored after it."""
        kv = await self._tail_marks()
        with self._guard(f"reading the tail mark of {topic}"):
            try:
                entry = await kv.get(topic)
            except nats.js.errors.KeyNotFoundError:
                entry = None
        if entry is None or not entry.value:
            mark = _TailMark(0, 0, self._per_message)
        else:
            mark = msgspec.json.decode(entry.value, type=_TailMark)
        per_message = max(mark.events_per_message, self._per_message)
        return mark.position + max(last_seq - mark.seq, 0) * per_message

    async def _tail_marks(self) -> KeyValue:
        """The tails bucket, created on first use."""
        if self._tails_kv is None:
            self._tails_kv = await self._bucket(f"{self._prefix}_tails")
        return self._tails_kv

    async def _tail(self, topic: str) -> _Tail:
        """The writer's view of the topic's end, loaded or caught up with the stream."""
        tail = self._tails.get(topic)
        if tail is not None and not tail.stale:
            return tail
        stream = await self._ensure_stream(topic)
        info = await self._request(f"reading stream {stream}", self._js.stream_info(stream))
        tail = await self._load_tail(topic, info, tail)
        self._tails[topic] = tail
        return tail

    async def _load_tail(self, topic: str, info: StreamInfo, known: _Tail | None) -> _Tail:
        """Catch `known` up with the stream, or rebuild it from the last `dedupe_window` events.

        Messages are read newest first, back to the last one `known` has seen or until
        they hold `dedupe_window` events.
        """
        last_seq, first_seq = info.state.last_seq, info.state.first_seq
        if known is not None and known.last_seq > last_seq:
            known = None
        # Holes (compaction) make a walk of `dedupe_window` sequences cover fewer events;
        # that only narrows the id window, JetStream's own duplicate window still holds.
        floor = max(known.last_seq if known else 0, first_seq - 1, last_seq - self._window)
        newest_first: list[_Message] = []
        count, seq = 0, last_seq
        while seq > floor and (count < self._window or not newest_first):
            wanted = max(self._window - count, 1) // self._per_message + 1
            batch = range(seq, max(seq - min(wanted, _GETS_IN_FLIGHT), floor), -1)
            # The newest from the leader: a lagging replica's answer would misplace the
            # positions. The rest are direct gets (raw bytes, not base64 in JSON, a tenth
            # more CPU per event with two writers racing); one a replica has not stored
            # yet only narrows the id window.
            messages = await asyncio.gather(
                *(
                    self._get(topic, s, exact=True, direct=s != last_seq or self._replicas == 1)
                    for s in batch
                )
            )
            for message in messages:
                if message is not None:
                    newest_first.append(message)
                    count += message.count
            seq = batch[-1] - 1
        tail = known if known is not None and seq <= floor else _Tail(self._window)
        for message in reversed(newest_first):
            tail.remember(message.ids())
        if newest_first:
            tail.last_position = newest_first[0].last
        elif not info.state.messages and last_seq > tail.last_seq:
            tail.last_position = await self._emptied_tail(topic, last_seq)
        tail.last_seq = last_seq
        tail.stale = False
        return tail

    # Reading.

    async def read(self, topic: str, position: int = 1, limit: int = 1000) -> list[Record]:
        """Up to `limit` records of `topic` from `position` on, in order."""
        position = max(position, 1)
        if limit <= 0:
            return []
        message = await self._find(topic, position)
        if message is not None and message.first > position:
            check_not_expired(topic, position, message.first, self._retention.of(topic))
        records: list[Record] = []
        ahead: deque[_Message] = deque()
        while message is not None:
            records.extend(message.records(topic, position, limit - len(records)))
            self._recent[topic] = message
            if len(records) >= limit:
                break
            if not ahead:
                ahead.extend(await self._following(topic, message, limit - len(records)))
            message = ahead.popleft() if ahead else None
        if records:
            last, recent = records[-1].position, self._recent[topic]
            self._next[topic] = (last + 1, recent.seq if last < recent.last else recent.seq + 1)
        return records

    async def _following(self, topic: str, current: _Message, wanted: int) -> list[_Message]:
        """The messages after `current`, about enough for `wanted` events, fetched at once."""
        count = min(-(-wanted // current.count), _GETS_IN_FLIGHT)
        seqs = range(current.seq + 1, current.seq + 1 + count)
        following: list[_Message] = []
        previous = current.seq
        for message in await asyncio.gather(*(self._get(topic, seq) for seq in seqs)):
            if message is None:
                break
            if message.seq > previous:
                following.append(message)
                previous = message.seq
        return following

    async def _find(self, topic: str, position: int) -> _Message | None:
        """The first message of `topic` whose last position is >= `position`, if any."""
        recent = self._recent.get(topic)
        if recent is not None and recent.first <= position <= recent.last:
            return recent
        hint = self._next.get(topic)
        if hint is not None and hint[0] == position:
            message = await self._get(topic, hint[1])
            if message is not None and message.first <= position <= message.last:
                return message
        info = await self._stream_info(topic)
        if info is None or info.state.messages == 0:
            return None
        return await self._search(topic, position, info.state.first_seq, info.state.last_seq)

    async def _search(
        self, topic: str, position: int, first_seq: int, last_seq: int
    ) -> _Message | None:
        """Interpolation search (falling back to bisection) between the stream's ends."""
        hi = await self._get(topic, last_seq, exact=True)
        if hi is None or hi.last < position:
            return None
        if hi.first <= position:
            return hi
        lo = await self._get(topic, first_seq)
        if lo is None or lo.last >= position:
            return lo
        low_seq, high_seq = lo.seq + 1, hi.seq
        bisect = False
        while low_seq < high_seq:
            span = high_seq - low_seq
            if bisect:
                guess = low_seq + span // 2
            else:
                gap = max(hi.first - lo.last - 1, 1)
                guess = low_seq + (position - lo.last - 1) * span // gap
            guess = min(max(guess, low_seq), high_seq - 1)
            message = await self._get(topic, guess)
            if message is None or message.seq >= high_seq:
                high_seq = guess
            elif message.last < position:
                lo, low_seq = message, message.seq + 1
            elif message.first > position:
                hi, high_seq = message, message.seq
            else:
                return message
            bisect = not bisect and high_seq - low_seq > span // 2
        return hi

    # Consumer groups.

    async def fetch(
        self, group: str, topic: str, limit: int = 1000, wait: float = 0.0
    ) -> list[Record]:
        """The group's next records after the last this process fetched.

        A process's first fetch starts after the group's committed position. When there
        is nothing new it waits up to `wait` seconds for the next message. A fetch that
        raises LogUnavailable returns nothing: the next one starts where it would have.
        """
        if limit <= 0:
            return []
        lock = self._group_locks.setdefault((group, topic), asyncio.Lock())
        async with lock:
            state = await self._group(group, topic)
            cursor = state.cursor
            try:
                return await self._fetch(state, topic, limit, wait)
            except LogUnavailable:
                state.cursor = cursor
                await self._drop_group(group, topic)
                raise

    async def _fetch(self, state: _Group, topic: str, limit: int, wait: float) -> list[Record]:
        """Buffered records first, then pulled ones; see `fetch`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        records = state.take(topic, limit)
        while len(records) < limit:
            need = limit - len(records)
            batch = min(-(-need // self._per_message), _MAX_PULL_BATCH)
            msgs = await self._pull(state, batch, None)
            remaining = deadline - loop.time()
            if not msgs and not records and remaining > 0.001:
                msgs = await self._pull(state, 1, remaining)
            if not msgs:
                break
            state.accept(msgs)
            records.extend(state.take(topic, need))
        return records

    async def _group(self, group: str, topic: str) -> _Group:
        """The process's state for the group, opening its consumer on first use.

        It starts after the committed position, or after the last record this process
        fetched when it reopens the group after a failure.
        """
        state = self._groups.get((group, topic))
        if state is not None:
            return state
        stream = await self._ensure_stream(topic)
        cursor = self._cursors.get((group, topic)) or await self.committed(group, topic) + 1
        start = await self._start_seq(topic, cursor)
        consumer = _consumer_name(group)
        await self._open_consumer(stream, consumer, start)
        state = _Group(stream, consumer, self._nc.new_inbox(), cursor, self._retention.of(topic))
        with self._guard(f"subscribing for group {group}"):
            state.subscription = await self._nc.subscribe(f"{state.inbox}.*", cb=state.deliver)
        self._groups[(group, topic)] = state
        return state

    async def _drop_group(self, group: str, topic: str) -> None:
        """Forget the group's consumer state (keeping its cursor) so it is reopened."""
        state = self._groups.pop((group, topic), None)
        if state is None:
            return
        self._cursors[(group, topic)] = state.cursor
        if state.subscription is not None:
            with suppress(nats.errors.Error):
                await state.subscription.unsubscribe()

    async def _start_seq(self, topic: str, position: int) -> int:
        """The sequence of the message holding `position`, or the next one to be written;
        PositionExpired when retention removed `position`."""
        message = await self._find(topic, position)
        if message is not None:
            if message.first > position:
                check_not_expired(topic, position, message.first, self._retention.of(topic))
            return message.seq
        info = await self._stream_info(topic)
        return info.state.last_seq + 1 if info is not None else 1

    async def _open_consumer(self, stream: str, consumer: str, start: int) -> None:
        """Make the durable consumer deliver from `start` next, recreating it if needed.

        An existing consumer is kept when it has nothing unacked and its next message is
        `start` (the previous process committed everything it fetched).
        """
        info = await self._consumer_info(stream, consumer)
        with self._guard(f"opening consumer {consumer} on {stream}"):
            if info is not None:
                delivered = (info.delivered.stream_seq if info.delivered else None) or 0
                if not info.num_ack_pending and delivered + 1 == start:
                    return
                await self._js.delete_consumer(stream, consumer)
            await self._js.add_consumer(
                stream,
                durable_name=consumer,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=_ACK_WAIT_S,
                max_ack_pending=_MAX_ACK_PENDING,
            )

    async def _consumer_info(self, stream: str, consumer: str) -> ConsumerInfo | None:
        """The durable consumer's info, None when it does not exist."""
        with self._guard(f"reading consumer {consumer} on {stream}"):
            try:
                info: ConsumerInfo = await self._js.consumer_info(stream, consumer)
            except nats.js.errors.NotFoundError:
                return None
        return info

    async def _pull(self, state: _Group, batch: int, expires: float | None) -> list[Msg]:
        """Up to `batch` messages: those available now, or when `expires` is given the
        first one to arrive within `expires` seconds. Messages already delivered to the
        inbox (for an earlier request) are returned first."""
        queued = state.queued()
        if queued:
            return queued
        state.requests += 1
        reply = f"{state.inbox}.{state.requests}"
        request: dict[str, object] = {"batch": batch}
        if expires is None:
            request["no_wait"] = True
        else:
            request["expires"] = int(expires * 1e9)
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{state.stream}.{state.consumer}"
        with self._guard(f"fetching from consumer {state.consumer} on {state.stream}"):
            await self._nc.publish(subject, json.dumps(request).encode(), reply=reply)
            return await self._collect(state, reply, batch, (expires or 0.0) + self._timeout)

    async def _collect(self, state: _Group, reply: str, batch: int, within: float) -> list[Msg]:
        """Messages answering the pull request `reply`, until its end status or `batch`;
        a timeout if nothing at all arrives `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        msgs: list[Msg] = []
        while len(msgs) < batch:
            try:
                msg = await asyncio.wait_for(state.queue.get(), deadline - loop.time())
            except TimeoutError:
                if msgs:
                    break
                raise
            status = _status(msg)
            if status is None:
                msgs.append(msg)
            elif msg.subject == reply and status in ("404", "408"):
                break
            elif msg.subject == reply and status != "100":
                description = (msg.headers or {}).get("Description", "")
                raise LogUnavailable(
                    f"event log on NATS JetStream at {self._url}: consumer {state.consumer} "
                    f"on {state.stream} answered {status} {description}"
                )
        return msgs

    async def commit(self, group: str, topic: str, position: int) -> None:
        """Store `position` as the group's committed one, then ack the messages it covers."""
        offset = _Offset(group=group, topic=topic, position=position)
        kv = await self._offsets()
        key = _offset_key(group, topic)
        await self._request(f"committing group {group}", kv.put(key, msgspec.json.encode(offset)))
        state = self._groups.get((group, topic))
        if state is not None:
            with self._guard(f"acking for group {group}"):
                for msg in state.covered(position):
                    await msg.ack()

    async def committed(self, group: str, topic: str) -> int:
        """The group's committed position in `topic`, 0 when it has none."""
        kv = await self._offsets()
        with self._guard(f"reading the position of group {group}"):
            try:
                entry = await kv.get(_offset_key(group, topic))
            except nats.js.errors.KeyNotFoundError:
                return 0
        return msgspec.json.decode(entry.value or b"", type=_Offset).position

    async def _offsets(self) -> KeyValue:
        """The offsets bucket, created on first use."""
        if self._kv is None:
            self._kv = await self._bucket(f"{self._prefix}_offsets")
        return self._kv

    async def _bucket(self, bucket: str) -> KeyValue:
        """A key-value bucket keeping the latest value of each key, created if missing."""
        with self._guard(f"opening bucket {bucket}"):
            try:
                return await self._js.create_key_value(
                    bucket=bucket, history=1, storage=StorageType.FILE, replicas=self._replicas
                )
            except nats.js.errors.APIError as error:
                if error.err_code != _STREAM_NAME_IN_USE:
                    raise _refused(f"KV_{bucket}", error) from error
                return await self._js.key_value(bucket)

    # Stats and lifecycle.

    async def stats(self) -> LogStats:
        """Every topic's count and last position, every group's position and lag."""
        topics = []
        for topic in await _topics(self._nc, self._prefix, self._url, self._timeout):
            topics.append(await self._topic_stats(topic))
        lasts = {t.topic: t.last_position for t in topics}
        groups = [
            GroupStats(o.group, o.topic, o.position, max(lasts.get(o.topic, 0) - o.position, 0))
            for o in await self._all_offsets()
        ]
        return LogStats(self.backend, topics, groups)

    async def _topic_stats(self, topic: str) -> TopicStats:
        """The topic's kept events and last position (that of its tail when emptied)."""
        info = await self._stream_info(topic)
        if info is None or not info.state.messages:
            tail = await self._tail(topic) if info is not None else None
            return TopicStats(topic, 0, tail.last_position if tail else 0)
        newest = await self._get(topic, info.state.last_seq, exact=True)
        oldest = await self._get(topic, info.state.first_seq)
        last = newest.last if newest is not None else 0
        if self._retention.of(topic).compacted:
            return TopicStats(topic, info.state.messages, last)
        return TopicStats(topic, last - oldest.first + 1 if oldest else 0, last)

    async def _all_offsets(self) -> list[_Offset]:
        """Every committed position in the offsets bucket, by group and topic."""
        kv = await self._offsets()
        with self._guard("listing group positions"):
            try:
                keys = await kv.keys()
            except nats.js.errors.NoKeysError:
                return []
            entries = await asyncio.gather(*(kv.get(key) for key in keys))
        offsets = [msgspec.json.decode(e.value or b"", type=_Offset) for e in entries]
        return sorted(offsets, key=lambda o: (o.group, o.topic))

    async def close(self) -> None:
        """Close the connection; the streams, consumers and positions stay."""
        if self._closed:
            return
        self._closed = True
        await self._nc.close()


async def _connect(url: str, within: float) -> NATS:
    """A connection that reconnects forever once up; LogUnavailable if not up in time."""
    nc = NATS()
    errors: list[Exception] = []

    async def on_error(error: Exception) -> None:
        errors.append(error)
        del errors[:-1]
        _log.warning("nats error", url=url, error=str(error) or type(error).__name__)

    try:
        await asyncio.wait_for(
            nc.connect(
                [server.strip() for server in url.split(",")],
                name="hubbub-eventlog",
                connect_timeout=max(1, round(within)),
                max_reconnect_attempts=-1,
                error_cb=on_error,
            ),
            within,
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


async def delete_streams(url: str, prefix: str) -> None:
    """Delete every stream, consumer and position the event log keeps under `prefix`."""
    nc = await _connect(url, 5.0)
    try:
        js = nc.jetstream()
        for topic in await _topics(nc, prefix, url, 5.0):
            await js.delete_stream(f"{prefix}_{topic}")
        for bucket in (f"{prefix}_offsets", f"{prefix}_tails"):
            with suppress(nats.js.errors.NotFoundError):
                await js.delete_key_value(bucket)
    finally:
        await nc.close()
