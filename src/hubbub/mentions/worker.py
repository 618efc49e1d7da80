"""What a mentions replica runs in the background: its backends follow the `pages`
topic, its serving choice the `control` topic (cutovers), the shadow's answers are
compared, and the memory index is saved now and then (`run`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hubbub.eventlog.follow import every
from hubbub.kernel.background import Background
from hubbub.mentions.service import MentionsReplica


def run(
    background: Background,
    replica: MentionsReplica,
    *,
    snapshots: Path | None = None,
    snapshot_every_s: float = 300.0,
) -> None:
    """Keep a started replica up with the log under `background`: its backends follow the
    `pages` topic and its serving backend the `control` topic, the shadow's answers are
    compared, and the memory index is saved to `snapshots` (when given) now and then."""
    interval = replica.interval_s
    background.start(
        "mentions-pages", lambda: every(interval, replica.catch_up, what="following the pages")
    )
    background.start(
        "mentions-control",
        lambda: every(interval, replica.follow_control, what="following mentions cutovers"),
    )
    background.start("mentions-shadow", replica.compare_shadow)
    if snapshots is not None:
        where = snapshots

        async def save() -> None:
            while True:
                await asyncio.sleep(snapshot_every_s)
                replica.save(where)

        background.start("mentions-snapshot", save)
