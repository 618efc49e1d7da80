"""Feature flags with progressive rollout, folded from the log's `control` topic.

A flag lives in a scope: `platform` for the operator's flags, rolled out across
tenants, or a tenant id for a tenant's own flags, rolled out across its users and keys.
Every change is a `FlagChanged` on the log, so every process that keeps a `FlagBook`
answers the same once it has read that far, and a new process rebuilds the flags by
replaying the topic.

An answer follows one order of precedence (`evaluate`): the kill switch, then the deny
list, then the allow list, then the rollout percent over a stable hash (`bucket`).
Reasons are OpenFeature `Reason` values, so the provider passes them on unchanged.

The platform's word comes first: where a platform flag exists, its kill switch and its
deny list answer for every tenant before a tenant's own flag of that name is asked, so
a kill switch kills. Names the platform reserves (`route.*`, and any platform flag's)
are refused for tenants' own flags (`reserved`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

import mmh3
import structlog

from hubbub.eventlog.ports import EventLog
from hubbub.gateway.control import ControlView
from hubbub.gateway.ports import PLATFORM
from hubbub.kernel.clock import Clock
from hubbub.kernel.commands import stamped
from hubbub.kernel.events import Event, FlagChanged

log = structlog.get_logger("hubbub.flags")

Reason = Literal["DISABLED", "TARGETING_MATCH", "SPLIT"]
"""Why a flag answered what it did: the OpenFeature reasons a flag can give."""

FLAG_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
RESERVED_PREFIXES: Final = ("route.",)
"""Flag names only the platform sets: `route.*` gates the gateway's routes."""


def bucket(flag: str, subject: str) -> float:
    """Where `subject` falls in the rollout of `flag`: a stable number in [0, 100).

    `h` is MurmurHash3 x86 32-bit, seed 0, unsigned, of the UTF-8 of `f"{flag}:{subject}"`,
    as Unleash hashes `"groupId:userId"` for its gradual rollout (the flag is the group).
    The whole part is `h % 100`, Unleash's `normalizedValue - 1` (it normalises to
    1..100), so at a whole percent `p` the subjects with `bucket < p` are exactly those
    Unleash rolls out to (`normalizedValue <= p`). The fraction, `(h // 100 % 100) / 100`,
    only refines fractional percents (0.5 % is half of the subjects of bucket 0).

    A subject's bucket never changes, so rollouts are monotone: a subject that is on at
    `p` stays on at every `q > p`, and raising the percent only adds subjects.
    """
    h = mmh3.hash(f"{flag}:{subject}", 0, signed=False)
    return h % 100 + (h // 100 % 100) / 100


@dataclass(frozen=True)
class Flag:
    """A flag as the last change to it left it. `enabled` false is the kill switch."""

    scope: str
    name: str
    enabled: bool
    percent: float
    allow: frozenset[str]
    deny: frozenset[str]
    description: str

    @classmethod
    def from_change(cls, change: FlagChanged) -> Flag:
        return cls(
            scope=change.scope, name=change.flag, enabled=change.enabled,
            percent=change.percent, allow=frozenset(change.allow),
            deny=frozenset(change.deny), description=change.description,
        )  # fmt: skip


def evaluate(flag: Flag, subject: str) -> tuple[bool, Reason]:
    """The flag's value for `subject`, and why: kill switch (off, DISABLED), then deny
    (off, TARGETING_MATCH), then allow (on, TARGETING_MATCH), then the rollout (SPLIT:
    on when `bucket(flag.name, subject) < flag.percent`)."""
    if not flag.enabled:
        return False, "DISABLED"
    if subject in flag.deny:
        return False, "TARGETING_MATCH"
    if subject in flag.allow:
        return True, "TARGETING_MATCH"
    return bucket(flag.name, subject) < flag.percent, "SPLIT"


class FlagBook(ControlView):
    """The flags of every scope, as far as this book has read the `control` topic.

    `catch_up` reads what is new (other events on the topic are skipped); `follow`
    keeps doing so. Reads (`lookup`, `flags`, `evaluate`) never touch the log: they
    answer from memory, at most one poll interval behind the log.
    """

    what = "flags"

    def __init__(self, event_log: EventLog) -> None:
        super().__init__(event_log)
        self._scopes: dict[str, dict[str, Flag]] = {}

    def lookup(self, scope: str, flag: str) -> Flag | None:
        """The scope's flag of that name, None when it has none."""
        return self._scopes.get(scope, {}).get(flag)

    def flags(self, scope: str) -> list[Flag]:
        """The scope's flags, by name."""
        return sorted(self._scopes.get(scope, {}).values(), key=lambda f: f.name)

    def governing(self, flag: str, tenant: str) -> Flag | None:
        """The flag that answers for `tenant`: the platform's when its kill switch or deny
        list holds for the tenant, else the tenant's own of that name, else the platform's."""
        answer = self._answer(flag, tenant, None)
        return answer[0] if answer is not None else None

    def evaluate(
        self, flag: str, tenant: str, subject: str | None = None
    ) -> tuple[bool, Reason] | None:
        """`flag` for `tenant`, None when neither it nor the platform has such a flag (the
        caller uses its default). A platform flag is rolled out by tenant; a tenant's own
        flag by `subject` (a user or key id), or by the tenant when no subject is given."""
        answer = self._answer(flag, tenant, subject)
        return answer[1:] if answer is not None else None

    def _answer(
        self, flag: str, tenant: str, subject: str | None
    ) -> tuple[Flag, bool, Reason] | None:
        platform = self.lookup(PLATFORM, flag)
        if platform is not None and (not platform.enabled or tenant in platform.deny):
            return (platform, *evaluate(platform, tenant))
        own = self.lookup(tenant, flag) if tenant != PLATFORM else None
        if own is not None:
            return (own, *evaluate(own, subject or tenant))
        if platform is not None:
            return (platform, *evaluate(platform, tenant))
        return None

    def reserved(self, flag: str) -> str | None:
        """Why a tenant may not have a flag named `flag` (None: it may)."""
        if flag.startswith(RESERVED_PREFIXES):
            return f"flag names starting {' or '.join(RESERVED_PREFIXES)} are the platform's"
        if self.lookup(PLATFORM, flag) is not None:
            return f"{flag!r} is a platform flag: a tenant cannot set one of that name"
        return None

    def _fold(self, events: Iterable[Event]) -> int:
        changed = 0
        for event in events:
            if isinstance(event, FlagChanged):
                self._apply(event)
                changed += 1
        return changed

    def _apply(self, change: FlagChanged) -> None:
        scope = self._scopes.setdefault(change.scope, {})
        if change.active:
            scope[change.flag] = Flag.from_change(change)
        else:
            scope.pop(change.flag, None)


def check_flag_name(flag: str) -> str:
    """`flag` when it is a valid flag name, else ValueError saying what one looks like."""
    if not FLAG_NAME.match(flag):
        raise ValueError(
            f"invalid flag name {flag!r}: use 1 to 64 of a-z, 0-9, '.', '_' and '-', "
            "starting with a letter or a digit"
        )
    return flag


def check_percent(percent: float) -> float:
    """`percent` when it is within 0..100, else ValueError."""
    if not 0 <= percent <= 100:  # also refuses NaN
        raise ValueError(f"invalid percent {percent!r}: give a number from 0 to 100")
    return percent


def _check_scope(scope: str) -> str:
    if not scope.strip():
        raise ValueError("the flag's scope is empty: name a tenant, or use the platform")
    return scope


async def set_flag(
    event_log: EventLog,
    scope: str,
    flag: str,
    *,
    enabled: bool,
    percent: float,
    allow: Iterable[str],
    deny: Iterable[str],
    description: str,
    clock: Clock,
    source: str = "api",
) -> FlagChanged:
    """Set `flag` in `scope` (replacing all of it) by appending a `FlagChanged`; returns
    it. ValueError, before anything is written, for a bad name, scope or percent."""
    change = FlagChanged(
        id="", key=_check_scope(scope), ts=0, source=source, scope=scope,
        flag=check_flag_name(flag), enabled=enabled, percent=float(check_percent(percent)),
        allow=_ids(allow), deny=_ids(deny), description=description.strip(),
    )  # fmt: skip
    return await _append(event_log, change, clock)


async def remove_flag(
    event_log: EventLog,
    scope: str,
    flag: str,
    *,
    clock: Clock,
    source: str = "api",
) -> FlagChanged:
    """Remove `flag` from `scope` by appending a `FlagChanged` with `active` false;
    returns it. Removing a flag that does not exist changes nothing."""
    change = FlagChanged(
        id="", key=_check_scope(scope), ts=0, source=source, scope=scope,
        flag=check_flag_name(flag), active=False,
    )  # fmt: skip
    return await _append(event_log, change, clock)


def _ids(ids: Iterable[str]) -> list[str]:
    """Ids stripped, without blanks or repeats, in the order given."""
    return list(dict.fromkeys(i.strip() for i in ids if i.strip()))


async def _append(event_log: EventLog, change: FlagChanged, clock: Clock) -> FlagChanged:
    # A fresh identity per change: setting the same flag the same way twice is two
    # changes, and the log's dedupe must keep both (the second may undo one between).
    identity = f"{change.scope}/{change.flag}/{uuid.uuid4().hex}"
    now_us = clock.now_us()
    stamped_change = stamped(change, identity, source=change.source, now_us=now_us)
    await event_log.append([stamped_change])
    return stamped_change
