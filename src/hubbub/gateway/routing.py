"""Where the gateway sends a request: the route table, and the strangler fig on it.

Each service owns path prefixes (`SERVICE_ROUTES`). On top of them, operators set
strangler routes (`RouteChanged` on the log's `control` topic, so every gateway replica
applies a change within a poll interval, without a restart): a prefix goes to `new`
(the service), to `legacy` (the application being replaced, at `legacy_url`), or to
`new` for a percentage of tenants. The percentage is sticky: a tenant is in or out by
a stable hash of the prefix and its id, and stays in as the percentage grows.

A path matches a prefix when it equals it or continues it after a `/`; the longest
matching prefix wins, so `/v1/reports/top` can move before the rest of `/v1/reports`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from hubbub.eventlog.ports import EventLog
from hubbub.gateway.control import ControlView
from hubbub.gateway.flags import bucket
from hubbub.kernel.clock import Clock
from hubbub.kernel.commands import stamped
from hubbub.kernel.events import Event, RouteChanged

SERVICE_ROUTES: Final[dict[str, str]] = {
    "/v1/ingest": "ingest",
    "/v1/mentions": "mentions",
    "/v1/reports": "analytics",
    "/v1/best-times": "analytics",
    "/v1/watches": "analytics",
    "/v1/alerts": "analytics",
    "/v1/webhooks": "analytics",
    "/v1/channels": "publishing",
    "/v1/posts": "publishing",
    "/v1/jobs": "publishing",
    "/v1/media": "publishing",
    "/v1/drafts": "publishing",
    "/v1/series": "publishing",
    "/v1/notifications": "notifications",
    "/v1/calendar": "publishing",
    "/v1/workflows": "publishing",
    "/v1/reviews": "publishing",
    "/v1/streams": "listening",
    "/v1/inbox": "listening",
}
LEGACY: Final = "legacy"
Side = Literal["new", "legacy"]
_PREFIX = re.compile(r"^/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$")


@dataclass(frozen=True)
class Route:
    """A prefix, the service that has it (None if only the legacy app does), and the
    strangler setting on it."""

    prefix: str
    service: str | None
    target: Literal["new", "legacy", "percent"] = "new"
    percent: float = 0.0
    shadow: bool = False

    def side(self, tenant: str) -> Side:
        """The side that answers `tenant`: sticky per tenant for a percentage."""
        if self.target == "percent":
            return "new" if bucket(f"route:{self.prefix}", tenant) < self.percent else "legacy"
        return self.target

    def upstream(self, side: Side) -> str | None:
        """The upstream name of a side; None when the new side has no service here."""
        return LEGACY if side == "legacy" else self.service


def matches(prefix: str, path: str) -> bool:
    return path == prefix or prefix == "/" or path.startswith(prefix + "/")


def check_prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        raise ValueError(f"a route prefix is a path like /v1/reports, not {prefix!r}")
    return prefix


class RouteTable(ControlView):
    """The service routes, with the strangler routes folded from the log over them."""

    what = "routes"

    def __init__(self, event_log: EventLog) -> None:
        super().__init__(event_log)
        self._strangler: dict[str, RouteChanged] = {}
        self._routes = self._build()

    def match(self, path: str) -> Route | None:
        """The longest route whose prefix `path` is under, None when none is."""
        for route in self._routes:
            if matches(route.prefix, path):
                return route
        return None

    def routes(self) -> list[Route]:
        return sorted(self._routes, key=lambda r: r.prefix)

    def strangler(self) -> list[Route]:
        """The routes an operator set, by prefix."""
        return [r for r in self.routes() if r.prefix in self._strangler]

    def _changed(self) -> None:
        self._routes = self._build()

    def _fold(self, events: Iterable[Event]) -> int:
        changed = 0
        for event in events:
            if isinstance(event, RouteChanged):
                if event.active:
                    self._strangler[event.prefix] = event
                else:
                    self._strangler.pop(event.prefix, None)
                changed += 1
        return changed

    def _build(self) -> list[Route]:
        """Every route, longest prefix first (the first match is the longest)."""
        routes = {prefix: Route(prefix, service) for prefix, service in SERVICE_ROUTES.items()}
        for prefix, change in self._strangler.items():
            routes[prefix] = Route(
                prefix, _service_of(prefix), change.target, change.percent, change.shadow
            )
        return sorted(routes.values(), key=lambda r: len(r.prefix), reverse=True)


def _service_of(prefix: str) -> str | None:
    """The service owning `prefix` (the longest of its prefixes it is under)."""
    owners = [p for p in SERVICE_ROUTES if matches(p, prefix)]
    return SERVICE_ROUTES[max(owners, key=len)] if owners else None


async def set_route(
    event_log: EventLog,
    prefix: str,
    target: Literal["new", "legacy", "percent"],
    *,
    percent: float = 0.0,
    shadow: bool = False,
    clock: Clock,
) -> RouteChanged:
    """Send `prefix` to `target` on every gateway; raises ValueError on a bad change."""
    check_prefix(prefix)
    if not 0 <= percent <= 100:
        raise ValueError(f"percent is between 0 and 100, not {percent:g}")
    change = RouteChanged(
        id="", key=prefix, ts=0, source="", prefix=prefix, target=target, percent=percent,
        shadow=shadow,
    )  # fmt: skip
    return await _append(event_log, change, clock)


async def remove_route(event_log: EventLog, prefix: str, *, clock: Clock) -> RouteChanged:
    """Drop the strangler setting on `prefix`: it goes back to its service (if any)."""
    change = RouteChanged(
        id="", key=check_prefix(prefix), ts=0, source="", prefix=prefix, target="new",
        active=False,
    )  # fmt: skip
    return await _append(event_log, change, clock)


async def _append(event_log: EventLog, change: RouteChanged, clock: Clock) -> RouteChanged:
    now_us = clock.now_us()
    identity = f"{change.prefix}/{change.target}/{change.percent}/{change.shadow}/{now_us}"
    stamped_change = stamped(change, identity, source="gateway", now_us=now_us)
    await event_log.append([stamped_change])
    return stamped_change
