"""Each change of a publish job, as an event on the log's `publishing` topic
(`PublishChanged`): who scheduled what, where it was published, why it failed. The job
rows are the truth of what to publish; the events are what the rest of the platform
reads (analytics attributes engagement to a tenant's own posts from them).

A channel connected or removed, as a `ChannelChanged` on `control`
(`hubbub.publishing.directory`): which account of which tenant, and its page.

And what people should be told (`NoticeIssued`, on `notices`): a post waits for their
approval, was approved, rejected or sent back for changes, was commented on, or named
them; the notifications service tells them, in the web app and by email."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence

import structlog

from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import Clock
from hubbub.kernel.commands import stamped
from hubbub.kernel.events import NoticeIssued, PublishChanged
from hubbub.publishing.directory import channel_of
from hubbub.publishing.ports import Channel, Job

log = structlog.get_logger("hubbub.publishing")


class Journal:
    def __init__(self, event_log: EventLog | None, clock: Clock) -> None:
        self._event_log = event_log
        self._clock = clock

    async def record(self, jobs: Iterable[Job], network: str | Mapping[str, str]) -> None:
        """Append one event per job, as it is now; `network` names each job's channel's
        network (one name for all, or by channel id)."""
        if self._event_log is None:
            return
        now = self._clock.now_us()
        events = [
            _event(job, network if isinstance(network, str) else network[job.channel], now)
            for job in jobs
        ]
        if events:
            await self._event_log.append(events)

    @property
    def event_log(self) -> EventLog | None:
        return self._event_log

    async def channel_changed(self, channel: Channel, active: bool = True) -> None:
        """Tell the log the channel was connected (or, `active` false, removed), under a
        fresh id; when the log cannot take it, it is logged, and the directory's next
        pass announces it (`ChannelDirectory.announce_everyone`)."""
        if self._event_log is None:
            return
        now = self._clock.now_us()
        identity = f"{channel.tenant}/{channel.id}/{active}/{secrets.token_hex(8)}"
        event = stamped(channel_of(channel, active), identity, source="publishing", now_us=now)
        try:
            await self._event_log.append([event])
        except Exception as error:  # the channel changed; the directory tells it later
            log.warning("a channel's change waits for the log", channel=channel.id,
                        error=str(error))  # fmt: skip

    async def notify(
        self, tenant: str, kind: str, title: str, *, users: Sequence[str] = (),
        roles: Sequence[str] = (), handles: Sequence[str] = (), actor: str = "",
        post: str = "", body: str = "", link: str = "",
    ) -> None:  # fmt: skip
        """Ask that people be told something (`NoticeIssued`); nothing when nobody is
        named, or when there is no log (a notice is never worth failing an action for
        that had happened)."""
        if self._event_log is None or not (users or roles or handles):
            return
        notice = NoticeIssued(
            id="", key=tenant, ts=0, source="publishing", tenant=tenant,
            notice=secrets.token_hex(8), kind=kind, users=list(dict.fromkeys(users)),
            roles=list(dict.fromkeys(roles)), handles=list(dict.fromkeys(handles)),
            actor=actor, post=post, title=title, body=body, link=link,
        )  # fmt: skip
        now = self._clock.now_us()
        try:
            await self._event_log.append(
                [stamped(notice, notice.notice, source="publishing", now_us=now)]
            )
        except Exception as error:  # the action happened; its notice is logged instead
            log.warning("notice not sent", tenant=tenant, kind=kind, post=post,
                        error=str(error))  # fmt: skip


def _event(job: Job, network: str, now_us: int) -> PublishChanged:
    change = PublishChanged(
        id="", key=job.tenant, ts=0, source="publishing", tenant=job.tenant, job=job.id,
        post=job.post, version=job.version, channel=job.channel, network=network,
        state=job.state, due_us=job.due_us, remote_id=job.remote_id, url=job.remote_url,
        error=job.error,
    )  # fmt: skip
    identity = f"{job.id}/{job.state}/{job.attempts}/{job.updated_us}"
    return stamped(change, identity, source="publishing", now_us=now_us)
