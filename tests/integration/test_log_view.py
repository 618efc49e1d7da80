"""The one primitive every folded view builds on: follow a topic, fold it in memory."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.eventlog.view import LogView
from hubbub.kernel.events import CONTROL, Event, WatchChanged


class Targets(LogView):
    """The targets of every watch, in log order."""

    def __init__(self, event_log: SqliteEventLog) -> None:
        super().__init__(event_log, CONTROL, read_batch=7)
        self.targets: list[str] = []

    def _fold(self, events: Iterable[Event]) -> int:
        found = [e.target for e in events if isinstance(e, WatchChanged)]
        self.targets += found
        return len(found)


def watch(n: int) -> WatchChanged:
    return WatchChanged(
        id=f"w{n}", key="t", ts=n, source="test", tenant="t", watch=f"w{n}", kind="hashtag",
        target=f"tag{n}",
    )  # fmt: skip


async def test_a_view_folds_the_whole_topic_first_then_a_bounded_step_per_read(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        await log.append([watch(n) for n in range(20)])
        view = Targets(log)
        await view.fresh(limit=5)  # the first read folds everything, whatever the limit
        assert view.targets == [f"tag{n}" for n in range(20)]
        assert view.position == 20

        await log.append([watch(20)])
        await view.fresh(limit=5)  # a write is visible to the next read
        assert view.targets[-1] == "tag20"

        await log.append([watch(n) for n in range(21, 40)])
        await view.fresh(limit=5)  # a backlog is read at most `limit` records a read
        assert view.position == 26
        assert await view.catch_up() == 14
        assert view.targets == [f"tag{n}" for n in range(40)]
    finally:
        await log.close()
