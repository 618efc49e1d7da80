"""Reading the ids of packed events (a log segment or a message) without their bodies."""

from __future__ import annotations

import msgspec


class _EventId(msgspec.Struct, array_like=True):
    """The head of an encoded event (see `Event`): enough to read its id alone."""

    type: str
    schema: int
    id: str


_ids_decoder = msgspec.msgpack.Decoder(list[_EventId])


def packed_ids(data: bytes) -> list[str]:
    """The ids of the events `encode_many` packed into `data`, in order."""
    return [event.id for event in _ids_decoder.decode(data)]
