"""Consumer groups: durable pull consumers, fetching after a position, committing."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from contextlib import suppress

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerInfo, DeliverPolicy

from hubbub.eventlog.jetstream.reading import _Reading
from hubbub.eventlog.jetstream.streams import _Streams
from hubbub.eventlog.jetstream.wire import _consumer_name, _Message, _Offset, _offset_key, _status
from hubbub.eventlog.ports import LogUnavailable, Record
from hubbub.eventlog.retention import TopicRetention, check_not_expired

_ACK_WAIT_S = 120.0
_MAX_ACK_PENDING = 100_000
_MAX_PULL_BATCH = 256


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


class _Groups(_Reading, _Streams):
    """Consuming (see "Consuming" in the package docstring)."""

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
                async with asyncio.timeout_at(deadline):
                    msg = await state.queue.get()
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
