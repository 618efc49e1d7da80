"""The people of every tenant, told to the log: a `PersonChanged` on `control` whenever a
person's entry changes, so the services that tell people things or decide by their role
keep the same directory without reading the gateway's tables.

- `changed(user)`, after a person is added (by an admin, or by accepting an invitation),
  given another role, or sets their time zone. Each such event has a fresh id: a change
  back to an earlier state is a change too, and the log's dedupe must keep it. When the
  log cannot take it, the change is made all the same (it is the store's), and the
  gateway's background task `keep_announced` announces everyone once the log is back.
- `announce_everyone()`, when a gateway starts: every person whose state as stored is not
  the latest the log holds of them (people added by the CLI, or before people were on the
  log), and, with `active` false, every person the log holds as active whom the store no
  longer has. An announcement's id is derived from the state it announces and the
  person's latest event on the log, so gateways starting together append each once, and
  a start that finds nothing new appends nothing.

`user` in an event is the user's id as stored (never the `user:` key of its sessions).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence

import msgspec
import structlog

from hubbub.eventlog.follow import every
from hubbub.eventlog.ports import EventLog, LogUnavailable
from hubbub.gateway.control import ControlView
from hubbub.gateway.ports import TenantStore, User
from hubbub.kernel.clock import Clock
from hubbub.kernel.commands import stamped
from hubbub.kernel.events import Event, PersonChanged
from hubbub.kernel.ids import event_id
from hubbub.kernel.telemetry import current_trace

log = structlog.get_logger("hubbub.directory")

SOURCE = "gateway"
ANNOUNCE_PASSES = 3
"""Passes of `announce_everyone` at most: a change made while one was under way is seen
by the next (see `announce_everyone`)."""

Person = tuple[str, str]
"""A person, as (tenant, user id)."""


def person_of(user: User) -> PersonChanged:
    """The event that states `user`'s entry, its envelope still blank."""
    return PersonChanged(
        id="", key=user.tenant, ts=0, source=SOURCE, tenant=user.tenant, user=user.id,
        email=user.email, role=user.role, time_zone=user.time_zone,
    )  # fmt: skip


def _state(event: PersonChanged) -> tuple[str, str, str, str, str, bool]:
    return (event.tenant, event.user, event.email, event.role, event.time_zone, event.active)


class Directory(ControlView):
    """People's entries on the log: appended as they change (`changed`), and checked
    against the store when a gateway starts (`announce_everyone`). Folds the
    `PersonChanged` events of `control` to know the latest the log holds of each."""

    what = "people"

    def __init__(self, event_log: EventLog, store: TenantStore, clock: Clock) -> None:
        super().__init__(event_log)
        self._store = store
        self._clock = clock
        self._latest: dict[Person, PersonChanged] = {}
        self._behind = False

    async def changed(self, user: User) -> PersonChanged | None:
        """Append `user`'s entry as it is now; returns the event, or None when the log
        could not take it (logged; `keep_announced` announces it when the log is back)."""
        return await self._tell(user, active=True)

    async def left(self, user: User) -> PersonChanged | None:
        """Append that `user` (removed from the store) is no longer active; as `changed`
        when the log cannot take it: the next announcement finds them gone."""
        return await self._tell(user, active=False)

    async def _tell(self, user: User, *, active: bool) -> PersonChanged | None:
        now_us = self._clock.now_us()
        identity = f"{user.tenant}/{user.id}/{uuid.uuid4().hex}"
        entry = msgspec.structs.replace(person_of(user), active=active)
        event = stamped(entry, identity, source=SOURCE, now_us=now_us)
        try:
            await self._event_log.append([event])
        except LogUnavailable as error:
            self._behind = True
            log.warning(
                "a person's change waits for the log", tenant=user.tenant, user=user.id,
                error=str(error),
            )  # fmt: skip
            return None
        return event

    async def keep_announced(self, interval_s: float) -> None:
        """Forever, every `interval_s`: when a change could not be appended, announce
        everyone (`announce_everyone`) until it goes through."""
        await every(interval_s, self._announce_if_behind, what="announcing people")

    async def _announce_if_behind(self) -> None:
        if not self._behind:
            return
        self._behind = False  # before: a change failing meanwhile sets it again
        try:
            await self.announce_everyone()
        except BaseException:
            self._behind = True
            raise

    async def announce_everyone(self) -> int:
        """Append every entry the log does not hold as stored (see the module); returns
        how many. The log is read before the store, and again after each append: a
        change made meanwhile, its own event appended before an announcement of the
        state it replaced, is found different on the next pass and announced again."""
        announced = 0
        for _ in range(ANNOUNCE_PASSES):
            await self.catch_up()
            due = self._due(await asyncio.to_thread(self._store.all_users))
            if not due:
                break
            await self._event_log.append(due)
            announced += len(due)
        return announced

    def _due(self, users: Sequence[User]) -> list[PersonChanged]:
        """Announcements of what the store holds and the log does not."""
        stored = {(u.tenant, u.id): person_of(u) for u in users}
        now_us = self._clock.now_us()
        due = [
            self._announced(entry, now_us)
            for who, entry in stored.items()
            if (latest := self._latest.get(who)) is None or _state(latest) != _state(entry)
        ]
        gone = [
            self._announced(msgspec.structs.replace(latest, active=False), now_us)
            for who, latest in self._latest.items()
            if who not in stored and latest.active
        ]
        return due + gone

    def _announced(self, entry: PersonChanged, now_us: int) -> PersonChanged:
        """`entry` stamped with an id of its state and of the latest event of its person."""
        latest = self._latest.get((entry.tenant, entry.user))
        after = (latest.ts, latest.id) if latest is not None else (0, "")
        identity = "/".join(map(str, (*_state(entry), *after)))
        return msgspec.structs.replace(
            entry, id=event_id(f"{after[0]:016d}", identity), ts=now_us, source=SOURCE,
            trace=current_trace(),
        )  # fmt: skip

    def _fold(self, events: Iterable[Event]) -> int:
        changed = 0
        for event in events:
            if isinstance(event, PersonChanged):
                self._latest[(event.tenant, event.user)] = event
                changed += 1
        return changed
