"""What every process folds from the log's `control` topic: state that operators change
live (flags, routes), read by each replica on its own, without a restart."""

from __future__ import annotations

from hubbub.eventlog.ports import EventLog
from hubbub.eventlog.view import LogView
from hubbub.kernel.events import CONTROL


class ControlView(LogView):
    """A view of the `control` topic: `catch_up` folds what is new (`_fold`, in a
    subclass, picks the events it cares for), `follow` keeps doing so. Reads of the view
    never touch the log, so they answer at most one poll interval behind it."""

    what = "control state"

    def __init__(self, event_log: EventLog) -> None:
        super().__init__(event_log, CONTROL)
