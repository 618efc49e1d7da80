"""An operator's change (a watch, a webhook, a live setting) as an event to append.

The CLI and the HTTP API both make such changes; both stamp them here, so a change
reads the same on the log whichever made it.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

import msgspec

from hubbub.kernel.events import Event
from hubbub.kernel.ids import event_id
from hubbub.kernel.telemetry import current_trace

E = TypeVar("E", bound=Event)


def short_id() -> str:
    """A fresh random id of 12 hex digits for something an operator adds and later names
    (a watch, a webhook): short enough to type, 48 bits make a clash unlikely."""
    return uuid.uuid4().hex[:12]


def stamped(change: E, identity: str, *, source: str, now_us: int) -> E:
    """`change` with its envelope filled in: the time `now_us`, an id that sorts by that
    time and is told apart by `identity` (what changed, and how), and `source`."""
    return msgspec.structs.replace(
        change,
        id=event_id(f"{now_us:016d}", identity),
        ts=now_us,
        source=source,
        trace=change.trace or current_trace(),
    )
