"""Appending: a writer's view of each topic's tail, deduplication, pipelined publishes."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import StreamInfo

from hubbub.eventlog.jetstream.connection import _GETS_IN_FLIGHT
from hubbub.eventlog.jetstream.streams import _Streams
from hubbub.eventlog.jetstream.wire import (
    _EXPECTED_LAST_MSG_ID,
    _EXPECTED_LAST_SEQUENCE,
    _MSG_ID,
    _NO_STREAM,
    FIRST_POSITION,
    LAST_POSITION,
    _ApiError,
    _Message,
    _message_id,
    _Outgoing,
    _pub_reply_decoder,
    _PubReply,
    _TailMark,
)
from hubbub.eventlog.ports import AppendResult, LogUnavailable
from hubbub.kernel.events import Event, encode_many, topic_of

# Room left in a message for its headers under the server's max_payload.
_HEADER_ROOM = 4096
_APPEND_ATTEMPTS = 8

_log = structlog.get_logger("hubbub.eventlog.jetstream")


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


def _first_of_each_id(events: Sequence[Event]) -> list[Event]:
    """The events whose id does not occur earlier in the batch, in order."""
    seen: set[str] = set()
    first = []
    for event in events:
        if event.id not in seen:
            seen.add(event.id)
            first.append(event)
    return first


class _Writing(_Streams):
    """Appending (see "Writing" in the package docstring)."""

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
                async with asyncio.timeout(self._timeout):
                    return await asyncio.gather(*futures)
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
