"""Reading: finding the message that holds a position, and unpacking from there."""

from __future__ import annotations

import asyncio
from collections import deque

from hubbub.eventlog.jetstream.connection import _GETS_IN_FLIGHT, _Connection
from hubbub.eventlog.jetstream.wire import _Message
from hubbub.eventlog.ports import Record
from hubbub.eventlog.retention import check_not_expired


class _Reading(_Connection):
    """Reading (see "Reading" in the package docstring)."""

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
