"""The wire format: message headers and packing, names, and the values kept in buckets.

A stream message carries a batch of events packed by `encode_many`, with the positions
of its first and last event in headers; see the package docstring for the layout.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from typing import Final

import msgspec
from nats.aio.msg import Msg

from hubbub.eventlog.packing import packed_ids
from hubbub.eventlog.ports import LogUnavailable, Record
from hubbub.kernel.events import AnyEvent, decode_many

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


_pub_reply_decoder = msgspec.json.Decoder(_PubReply)


class _Outgoing(msgspec.Struct):
    """A packed message ready to publish, and what it carries."""

    payload: bytes
    headers: dict[str, str]
    ids: list[str]
    subject: str


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


def _check_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{kind} {name!r} must be letters, digits, '_' or '-'")
    return name
