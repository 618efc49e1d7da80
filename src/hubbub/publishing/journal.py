"""Each change of a publish job, as an event on the log's `publishing` topic
(`PublishChanged`): who scheduled what, where it was published, why it failed. The job
rows are the truth of what to publish; the events are what the rest of the platform
reads (analytics attributes engagement to a tenant's own posts from them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import Clock
from hubbub.kernel.commands import stamped
from hubbub.kernel.events import PublishChanged
from hubbub.publishing.ports import Job


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


def _event(job: Job, network: str, now_us: int) -> PublishChanged:
    change = PublishChanged(
        id="", key=job.tenant, ts=0, source="publishing", tenant=job.tenant, job=job.id,
        post=job.post, version=job.version, channel=job.channel, network=network,
        state=job.state, due_us=job.due_us, remote_id=job.remote_id, url=job.remote_url,
        error=job.error,
    )  # fmt: skip
    identity = f"{job.id}/{job.state}/{job.attempts}/{job.updated_us}"
    return stamped(change, identity, source="publishing", now_us=now_us)
