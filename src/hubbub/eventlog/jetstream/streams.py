"""Stream configuration: each topic's stream and the buckets, created, checked, updated."""

from __future__ import annotations

from contextlib import suppress
from typing import Final

import nats.errors
import nats.js.errors
import structlog
from nats.js.api import StorageType, StreamConfig, StreamInfo
from nats.js.kv import KeyValue

from hubbub.eventlog.jetstream.connection import _connect, _Connection, _topics
from hubbub.eventlog.jetstream.wire import _STREAM_NAME_IN_USE
from hubbub.eventlog.ports import LogMisconfigured

_DUPLICATE_WINDOW_S = 120.0

_log = structlog.get_logger("hubbub.eventlog.jetstream")


def _refused(stream: str, error: nats.js.errors.APIError) -> LogMisconfigured:
    """The error for a stream NATS would not create as the settings ask."""
    return LogMisconfigured(
        f"NATS refused to create stream {stream} as configured: {error.description} "
        f"(err_code {error.err_code}); check HUBBUB_NATS_REPLICAS (more than 1 needs a "
        "NATS cluster with that many JetStream servers) and HUBBUB_RETAIN_*"
    )


def _require_replicas(stream: str, info: StreamInfo, replicas: int) -> None:
    """Raise LogMisconfigured when a stream has fewer copies than asked: a server outside
    a cluster accepts an update to more replicas, reports them, and keeps one."""
    copies = 1 if info.cluster is None else 1 + len(info.cluster.replicas or [])
    if (info.config.num_replicas or 1) != replicas or (replicas > 1 and info.cluster is None):
        raise LogMisconfigured(
            f"stream {stream} has {copies} copy(ies) where HUBBUB_NATS_REPLICAS asks "
            f"{replicas}: NATS keeps one copy of a stream unless it runs as a cluster of at "
            f"least {replicas} JetStream servers"
        )


def _require_file_storage(stream: str, config: StreamConfig) -> None:
    """Raise LogMisconfigured for a stream that would lose everything on a restart."""
    if config.storage != StorageType.FILE:
        raise LogMisconfigured(
            f"stream {stream} keeps its messages in memory, so a NATS restart would lose "
            "the log; NATS cannot change a stream's storage: move its messages to a "
            "file-storage stream (nats stream backup/restore) or delete it"
        )


# What Hubbub sets on its streams and checks at start; the rest is NATS's to choose.
_CHECKED: Final = (
    "subjects",
    "num_replicas",
    "max_age",
    "max_bytes",
    "max_msgs",
    "max_msgs_per_subject",
    "duplicate_window",
    "allow_direct",
)


def _differences(actual: StreamConfig, wanted: StreamConfig) -> list[str]:
    """The checked fields where `actual` is not `wanted`, as "field: actual → wanted"."""
    unset = {"max_age": 0.0, "max_bytes": -1, "max_msgs": -1, "max_msgs_per_subject": -1}
    changes = []
    for name in _CHECKED:
        have = getattr(actual, name)
        want = getattr(wanted, name)
        if have is None:
            have = unset.get(name, have)
        if name == "subjects":
            have, want = sorted(have or []), sorted(want or [])
        if have != want:
            changes.append(f"{name}: {have} → {want}")
    return changes


class _Streams(_Connection):
    """Creating and checking the streams and buckets (see the package docstring)."""

    def _stream_config(self, topic: str) -> StreamConfig:
        """The configuration the topic's stream must have (see the package docstring)."""
        rule = self._retention.of(topic)
        subjects = [self._subject(topic)]
        if rule.compacted:
            subjects.append(self._filter(topic))
        return StreamConfig(
            name=self._stream(topic),
            description=f"Hubbub event log, topic {topic}",
            subjects=subjects,
            storage=StorageType.FILE,
            num_replicas=self._replicas,
            # The server refuses a duplicate window longer than the messages live.
            duplicate_window=min(_DUPLICATE_WINDOW_S, rule.max_age_s or _DUPLICATE_WINDOW_S),
            allow_direct=True,
            max_age=rule.max_age_s,
            max_bytes=rule.max_bytes or -1,
            max_msgs=-1,
            max_msgs_per_subject=1 if rule.compacted else -1,
        )

    async def _ensure_stream(self, topic: str) -> str:
        """The topic's stream, created if missing, checked and updated if it exists."""
        stream = self._stream(topic)
        if stream in self._streams:
            return stream
        with self._guard(f"creating stream {stream}"):
            try:
                info = await self._js.add_stream(self._stream_config(topic))
                _require_replicas(stream, info, self._replicas)
            except nats.js.errors.APIError as error:
                if error.err_code != _STREAM_NAME_IN_USE:
                    raise _refused(stream, error) from error
                await self._check_stream(topic)
        self._streams.add(stream)
        return stream

    async def _check_streams(self) -> None:
        """Check (and update) every existing stream of the prefix and both buckets."""
        for topic in await _topics(self._nc, self._prefix, self._url, self._timeout):
            await self._check_stream(topic)
            self._streams.add(self._stream(topic))
        for bucket in (f"{self._prefix}_offsets", f"{self._prefix}_tails"):
            await self._check_bucket(bucket)
        # Created now, so replicas the servers cannot hold stop the start, not an append.
        await self._tail_marks()

    async def _check_stream(self, topic: str) -> None:
        """Update the topic's stream to the configured limits, replicas and subjects, or
        raise LogMisconfigured when it cannot be (memory storage, old control layout)."""
        stream, wanted = self._stream(topic), self._stream_config(topic)
        with self._guard(f"reading stream {stream}"):
            info = await self._js.stream_info(stream)
        config = info.config
        _require_file_storage(stream, config)
        packed = self._filter(topic) not in (config.subjects or [])
        if wanted.max_msgs_per_subject == 1 and packed and info.state.messages:
            raise LogMisconfigured(
                f"stream {stream} holds {info.state.messages} control events packed on "
                "one subject, from before control was compacted by key; compacting it "
                "would keep only the last message. Copy the live settings out (hubbub "
                f"log read control), delete the stream (nats stream rm {stream}) and "
                "set them again, or use a new HUBBUB_STREAM_PREFIX"
            )
        if _differences(config, wanted):
            await self._update_stream(stream, wanted, _differences(config, wanted))

    async def _update_stream(self, stream: str, wanted: StreamConfig, why: list[str]) -> None:
        """Apply `wanted` to an existing stream; LogMisconfigured when the server refuses."""
        _log.warning("updating stream to the configured retention", stream=stream, changes=why)
        with self._guard(f"updating stream {stream}"):
            try:
                info = await self._js.update_stream(wanted)
            except nats.js.errors.APIError as error:
                raise LogMisconfigured(
                    f"stream {stream} differs from the settings ({', '.join(why)}) and NATS "
                    f"refused to update it: {error.description} (err_code {error.err_code}). "
                    "Fix the stream with the nats CLI or change HUBBUB_NATS_REPLICAS / "
                    "HUBBUB_RETAIN_* to what it can hold"
                ) from error
        _require_replicas(stream, info, self._replicas)

    async def _check_bucket(self, bucket: str) -> None:
        """A bucket's stream on file storage with the configured replicas, if it exists."""
        stream = f"KV_{bucket}"
        with self._guard(f"reading stream {stream}"):
            try:
                info = await self._js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                return
        _require_file_storage(stream, info.config)
        if info.config.num_replicas != self._replicas:
            wanted = StreamConfig.from_response(info.config.as_dict())
            wanted.num_replicas = self._replicas
            await self._update_stream(stream, wanted, [f"num_replicas → {self._replicas}"])

    async def _tail_marks(self) -> KeyValue:
        """The tails bucket, created on first use."""
        if self._tails_kv is None:
            self._tails_kv = await self._bucket(f"{self._prefix}_tails")
        return self._tails_kv

    async def _offsets(self) -> KeyValue:
        """The offsets bucket, created on first use."""
        if self._kv is None:
            self._kv = await self._bucket(f"{self._prefix}_offsets")
        return self._kv

    async def _bucket(self, bucket: str) -> KeyValue:
        """A key-value bucket keeping the latest value of each key, created if missing."""
        with self._guard(f"opening bucket {bucket}"):
            try:
                return await self._js.create_key_value(
                    bucket=bucket, history=1, storage=StorageType.FILE, replicas=self._replicas
                )
            except nats.js.errors.APIError as error:
                if error.err_code != _STREAM_NAME_IN_USE:
                    raise _refused(f"KV_{bucket}", error) from error
                return await self._js.key_value(bucket)


async def delete_streams(url: str, prefix: str) -> None:
    """Delete every stream, consumer and position the event log keeps under `prefix`."""
    nc = await _connect(url, 5.0)
    try:
        js = nc.jetstream()
        for topic in await _topics(nc, prefix, url, 5.0):
            await js.delete_stream(f"{prefix}_{topic}")
        for bucket in (f"{prefix}_offsets", f"{prefix}_tails"):
            with suppress(nats.js.errors.NotFoundError):
                await js.delete_key_value(bucket)
    finally:
        await nc.close()
