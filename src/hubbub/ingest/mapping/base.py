"""What every source mapping shares: the batch it produces and how bad input is described.

A mapping works in two pure steps so that the I/O between them can be batched:
`decode` validates raw lines and says which remembered records (`refs`) the batch
needs; the pipeline loads those in one query; `map` turns the decoded lines into events
and says which references to remember or forget.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_depth(line: bytes) -> int:
    """How deeply the JSON arrays and objects of a line nest (brackets in strings ignored)."""
    brackets = _JSON_STRING.sub(b"", line).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for char in brackets:
        depth += 1 if char in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


class Rejector:
    """Builds dead-letter records with a reason a person can act on."""

    def __init__(self, source: str, clock: Clock, max_bytes: int, max_nesting: int = 64) -> None:
        self.source = source
        self.clock = clock
        self.max_bytes = max_bytes
        self.max_nesting = max_nesting

    def precheck(self, line: bytes) -> str | None:
        """The reason a raw line is unusable before decoding, or None."""
        if len(line) > self.max_bytes:
            return f"oversized: {len(line)} bytes, the limit is {self.max_bytes} (max_event_bytes)"
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            return f"invalid UTF-8: {error.reason} at byte {error.start}"
        # Counting brackets is cheap; only a line with many of them is scanned properly.
        if line.count(b"[") + line.count(b"{") > self.max_nesting:
            depth = nesting_depth(line)
            if depth > self.max_nesting:
                return (f"pathological nesting: {depth} levels deep, the limit is "
                        f"{self.max_nesting} (max_json_nesting)")
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


@contextmanager
def rejecting(batch: MappedBatch, rejector: Rejector, raw: bytes, trace: str) -> Iterator[None]:
    """Map one line; if it fails, undo what it emitted and dead-letter it instead.

    Decoding already validated the line, so this catches values no schema can express
    (a date past year 9999 once converted, say): the batch goes on either way.
    """
    events, primaries = len(batch.events), len(batch.primary_ids)
    try:
        yield
    except (ValueError, TypeError, OverflowError, KeyError, AttributeError) as error:
        del batch.events[events:], batch.primary_ids[primaries:]
        reason = f"invalid value: {type(error).__name__}: {error}"
        batch.rejected.append(rejector.reject(raw, reason, trace))
