"""What every source mapping shares: the batch it produces and how bad input is described.

A mapping works in two pure steps so that the I/O between them can be batched:
`decode` validates raw lines and says which remembered records (`refs`) the batch
needs; the pipeline loads those in one query; `map` turns the decoded lines into events
and says which references to remember or forget.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import msgspec

from hubbub.kernel.clock import Clock
from hubbub.kernel.events import Event, InputRejected
from hubbub.kernel.ids import content_id

D = TypeVar("D")


@dataclass(slots=True)
class Decoded(Generic[D]):
    """The valid lines of a batch, the rejected ones, and the refs the valid ones need."""

    items: list[D] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)
    rejected: list[InputRejected] = field(default_factory=list)
    ref_keys: list[str] = field(default_factory=list)


@dataclass(slots=True)
class MappedBatch:
    """Events to append, one primary event id per accepted line, and what was skipped.

    A line may produce several events (a reply is a post and an engagement); the first
    is its primary event, and the line counts as a duplicate when that one is.
    """

    events: list[Event] = field(default_factory=list)
    primary_ids: list[str] = field(default_factory=list)
    rejected: list[InputRejected] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    facets_dropped: int = 0
    refs_put: dict[str, str] = field(default_factory=dict)
    refs_deleted: list[str] = field(default_factory=list)


class SourceMapping(Protocol[D]):
    source: str

    def decode(self, lines: Sequence[bytes], trace: str) -> Decoded[D]: ...

    def map(self, decoded: Decoded[D], refs: dict[str, str], trace: str) -> MappedBatch: ...


class InvalidInput(ValueError):
    """A line that is well-formed JSON but not a valid event; the message is the reason."""


class Rejector:
    """Builds dead-letter records with a reason a person can act on."""

    def __init__(self, source: str, clock: Clock, max_bytes: int) -> None:
        self.source = source
        self.clock = clock
        self.max_bytes = max_bytes

    def precheck(self, line: bytes) -> str | None:
        """The reason a raw line is unusable before decoding, or None."""
        if len(line) > self.max_bytes:
            return f"oversized: {len(line)} bytes, the limit is {self.max_bytes} (max_event_bytes)"
        if not line.isascii():  # the decoder checks only the strings it keeps
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return f"invalid UTF-8: {error.reason} at byte {error.start}"
        return None

    def reject(self, line: bytes, reason: str, trace: str, detail: str = "") -> InputRejected:
        # An oversized line is kept only in part: the log must not carry what was refused.
        raw = line if len(line) <= self.max_bytes else line[:4096]
        return InputRejected(
            id=content_id("rejected-", line),
            key=self.source,
            ts=self.clock.now_us(),
            source=self.source,
            trace=trace,
            raw=raw,
            reason=reason,
            detail=detail,
        )


def describe_decode_error(error: Exception) -> str:
    """Turn a msgspec (or recursion) failure into a reason with its category first."""
    message = str(error)
    if isinstance(error, RecursionError):
        # The decoder stops at Python's recursion limit (about 1,000 levels); real events
        # nest a dozen deep, and only our own structs, never raw JSON, reach the log.
        return "pathological nesting: the JSON is nested too deeply to decode"
    if isinstance(error, UnicodeDecodeError):
        return f"invalid UTF-8: {error.reason}"
    if isinstance(error, msgspec.ValidationError):
        if "missing required field" in message:
            return f"missing field: {message}"
        if message.startswith("Expected"):
            return f"wrong type: {message}"
        return f"invalid value: {message}"
    if isinstance(error, InvalidInput):
        return f"invalid value: {message}"
    return f"malformed JSON: {message}"


DECODE_ERRORS = (msgspec.DecodeError, RecursionError, UnicodeDecodeError, InvalidInput)


MAPPING_ERRORS = (ValueError, TypeError, OverflowError, KeyError, AttributeError)


def map_each(
    decoded: Decoded[D],
    batch: MappedBatch,
    rejector: Rejector,
    trace: str,
    map_one: Callable[[D], None],
) -> None:
    """Map each decoded line into `batch`; a line that fails is undone and dead-lettered.

    Decoding already validated the lines, so this catches values no schema can express
    (a date that overflows once converted, say): the batch goes on either way.
    """
    events, primary_ids = batch.events, batch.primary_ids
    for item, raw in zip(decoded.items, decoded.raws, strict=True):
        emitted = len(events), len(primary_ids)
        try:
            map_one(item)
        except MAPPING_ERRORS as error:
            del events[emitted[0] :], primary_ids[emitted[1] :]
            reason = f"invalid value: {type(error).__name__}: {error}"
            batch.rejected.append(rejector.reject(raw, reason, trace))
