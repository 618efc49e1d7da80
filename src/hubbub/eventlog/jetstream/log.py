"""The EventLog adapter on NATS JetStream, assembled from its parts.

Each part is a class over the same connection and state (`connection._Connection`):
`streams` (configuration), `writing` (append), `reading` (read) and `groups` (fetch,
commit). They stay one object, as before they were split into modules, because they
share state: the streams already checked, the writer's tails (which `stats` reads too),
the reader's last message (where a group starts from).
"""

from __future__ import annotations

from hubbub.eventlog.jetstream.connection import _connect, _topics
from hubbub.eventlog.jetstream.groups import _Groups
from hubbub.eventlog.jetstream.writing import _Writing
from hubbub.eventlog.ports import GroupStats, LogMisconfigured, LogStats, LogUnavailable, TopicStats
from hubbub.eventlog.retention import RetentionPolicy


class JetStreamEventLog(_Groups, _Writing):
    """EventLog on NATS JetStream; see `hubbub.eventlog.ports` and the package docstring."""

    backend = "jetstream"

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        stream_prefix: str = "hubbub",
        events_per_message: int = 1000,
        dedupe_window: int = 100_000,
        replicas: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 (per request, not for the call)
        retention: RetentionPolicy | None = None,
    ) -> JetStreamEventLog:
        """Connect to NATS at `url` (several servers: comma-separated); raises
        LogUnavailable when it or JetStream is not there, LogMisconfigured when an
        existing stream cannot keep what the settings ask (see the package docstring).

        Streams and buckets are created when first needed, idempotently, so any number
        of processes may connect with the same prefix. Without a `retention` policy
        every topic is kept whole except `control`, which is compacted.
        """
        nc = await _connect(url, timeout)
        log = cls(
            nc,
            url,
            stream_prefix=stream_prefix,
            events_per_message=events_per_message,
            dedupe_window=dedupe_window,
            replicas=replicas,
            timeout=timeout,
            retention=retention,
        )
        try:
            with log._guard("reaching JetStream"):
                await log._js.account_info()
            await log._check_streams()
        except (LogUnavailable, LogMisconfigured):
            await nc.close()
            raise
        return log

    async def stats(self) -> LogStats:
        """Every topic's count and last position, every group's position and lag."""
        topics = []
        for topic in await _topics(self._nc, self._prefix, self._url, self._timeout):
            topics.append(await self._topic_stats(topic))
        lasts = {t.topic: t.last_position for t in topics}
        groups = [
            GroupStats(o.group, o.topic, o.position, max(lasts.get(o.topic, 0) - o.position, 0))
            for o in await self._all_offsets()
        ]
        return LogStats(self.backend, topics, groups)

    async def _topic_stats(self, topic: str) -> TopicStats:
        """The topic's kept events and last position (that of its tail when emptied)."""
        info = await self._stream_info(topic)
        if info is None or not info.state.messages:
            tail = await self._tail(topic) if info is not None else None
            return TopicStats(topic, 0, tail.last_position if tail else 0)
        newest = await self._get(topic, info.state.last_seq, exact=True)
        oldest = await self._get(topic, info.state.first_seq)
        last = newest.last if newest is not None else 0
        if self._retention.of(topic).compacted:
            return TopicStats(topic, info.state.messages, last)
        return TopicStats(topic, last - oldest.first + 1 if oldest else 0, last)

    async def close(self) -> None:
        """Close the connection; the streams, consumers and positions stay."""
        if self._closed:
            return
        self._closed = True
        await self._nc.close()
