"""What a gateway runs in the background: it follows the `control` topic for the route
table and the flags, probes the services behind it, reads how far the log has got, writes
usage records in batches, and announces people's changes the log could not take."""

from __future__ import annotations

from hubbub.gateway.directory import Directory
from hubbub.gateway.flags import FlagBook
from hubbub.gateway.health import Health
from hubbub.gateway.progress import Progress
from hubbub.gateway.routing import RouteTable
from hubbub.gateway.usage import UsageRecorder
from hubbub.kernel.background import Background


def run(
    background: Background,
    *,
    routes: RouteTable,
    flags: FlagBook,
    health: Health,
    progress: Progress,
    usage: UsageRecorder,
    directory: Directory,
    control_poll_s: float,
) -> None:
    """Keep a started gateway's views current under `background`: a route or flag
    changed anywhere reaches this gateway within `control_poll_s`."""
    background.start("routes", lambda: routes.follow(control_poll_s))
    background.start("flags", lambda: flags.follow(control_poll_s))
    background.start("health", health.watch)
    background.start("progress", progress.watch)
    background.start("usage", usage.run)
    background.start("people", lambda: directory.keep_announced(control_poll_s))
