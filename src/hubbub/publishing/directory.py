"""The channels of every tenant, told to the log: a `ChannelChanged` on `control` when a
channel is connected or removed, with its account's page id as ingest names it (a DID, an
account URL), so listening knows which posts of the firehose mention a tenant or reply to
its posts without reading publishing's tables.

- `Journal.channel_changed`, when a channel is connected (its page read from its network
  then) or removed. Each such event has a fresh id: connecting an account again after
  removing it is a change too.
- `ChannelDirectory.announce_everyone()`, when a publisher starts and every few minutes
  after: every channel whose state as stored is not the latest the log holds of it (a
  page read since it was connected, channels connected before channels were on the log,
  or whose event could not be appended), and, with `active` false, every channel the log
  holds as active that the store no longer has. A channel whose page is unknown has it
  read from its network first (`PageOf`), and kept. An announcement's id is derived from
  the state it announces and the channel's latest event on the log, so publishers starting
  together append each once, and a pass that finds nothing new appends nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Final

import msgspec
import structlog

from hubbub.eventlog.follow import every
from hubbub.eventlog.ports import EventLog
from hubbub.eventlog.view import LogView
from hubbub.kernel.clock import Clock
from hubbub.kernel.events import CONTROL, ChannelChanged, Event
from hubbub.kernel.ids import event_id
from hubbub.kernel.telemetry import current_trace
from hubbub.publishing.ports import (
    Channel,
    JobStore,
    Network,
    OutcomeUnknown,
    Permanent,
    Transient,
)

log = structlog.get_logger("hubbub.publishing")

SOURCE: Final = "publishing"
ANNOUNCE_EVERY_S: Final = 300.0
"""How often the log is checked against the store (a change the log could not take when it
was made is told at the latest then)."""
PageOf = Callable[[Channel], Awaitable[str]]
"""A channel's page id, read from its network (`Network.page`)."""


def pages_through(networks: Mapping[str, Network]) -> PageOf:
    """A channel's page id, read through its network (`Network.page`)."""

    async def page_of(channel: Channel) -> str:
        return await networks[channel.network].page(channel)

    return page_of


Key = tuple[str, str]
"""A channel, as (tenant, channel id)."""


def channel_of(channel: Channel, active: bool = True) -> ChannelChanged:
    """The event that states `channel`, its envelope still blank."""
    return ChannelChanged(
        id="", key=channel.tenant, ts=0, source=SOURCE, tenant=channel.tenant,
        channel=channel.id, network=channel.network, account=channel.account,
        page=channel.page, active=active,
    )  # fmt: skip


def _state(event: ChannelChanged) -> tuple[str, str, str, str, str, bool]:
    return (event.tenant, event.channel, event.network, event.account, event.page, event.active)


class ChannelDirectory(LogView):
    """Channels' entries on the log, checked against the store (`announce_everyone`).
    Folds the `ChannelChanged` events of `control` to know the latest the log holds."""

    what = "channels"

    def __init__(
        self, event_log: EventLog, store: JobStore, clock: Clock, page_of: PageOf | None = None
    ) -> None:
        super().__init__(event_log, CONTROL)
        self._store = store
        self._clock = clock
        self._page_of = page_of
        self._latest: dict[Key, ChannelChanged] = {}

    async def keep_announced(self, interval_s: float = ANNOUNCE_EVERY_S) -> None:
        """Forever: `announce_everyone` now, and every `interval_s` after."""
        await every(interval_s, self.announce_everyone, what="announcing channels")

    async def announce_everyone(self) -> int:
        """Append every entry the log does not hold as stored (see the module); returns
        how many. The log is read before the store."""
        await self.catch_up()
        stored = await asyncio.to_thread(self._store.all_channels)
        due = self._due([await self._with_page(channel) for channel in stored])
        if due:
            await self._event_log.append(due)
        return len(due)

    async def _with_page(self, channel: Channel) -> Channel:
        """`channel` with its page, read from its network (and kept) when unknown; as it
        is when it cannot be read now (the next pass tries again)."""
        if channel.page or self._page_of is None:
            return channel
        try:
            page = await self._page_of(channel)
        except (Transient, Permanent, OutcomeUnknown) as error:
            log.warning("a channel's page was not read", channel=channel.id, error=str(error))
            return channel
        await asyncio.to_thread(self._store.set_page, channel.id, page)
        return replace(channel, page=page)

    def _due(self, channels: Sequence[Channel]) -> list[ChannelChanged]:
        """Announcements of what the store holds and the log does not."""
        stored = {(c.tenant, c.id): channel_of(c) for c in channels}
        now_us = self._clock.now_us()
        due = [
            self._announced(entry, now_us)
            for key, entry in stored.items()
            if (latest := self._latest.get(key)) is None or _state(latest) != _state(entry)
        ]
        gone = [
            self._announced(msgspec.structs.replace(latest, active=False), now_us)
            for key, latest in self._latest.items()
            if key not in stored and latest.active
        ]
        return due + gone

    def _announced(self, entry: ChannelChanged, now_us: int) -> ChannelChanged:
        """`entry` stamped with an id of its state and of the latest event of its channel."""
        latest = self._latest.get((entry.tenant, entry.channel))
        after = (latest.ts, latest.id) if latest is not None else (0, "")
        identity = "/".join(map(str, (*_state(entry), *after)))
        return msgspec.structs.replace(
            entry, id=event_id(f"{after[0]:016d}", identity), ts=now_us, source=SOURCE,
            trace=current_trace(),
        )  # fmt: skip

    def _fold(self, events: Iterable[Event]) -> int:
        changed = 0
        for event in events:
            if isinstance(event, ChannelChanged):
                self._latest[(event.tenant, event.channel)] = event
                changed += 1
        return changed
