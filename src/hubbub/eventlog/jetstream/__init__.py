"""The scale-out event log: NATS JetStream, one stream per topic.

Layout, for a prefix `p` and a topic `t`:

- Stream `p_t` (subject `p.t`, file storage, direct get allowed) holds the topic's
  events packed `events_per_message` to a message (`encode_many`). Each message
  carries the positions of its first and last event in the headers
  `Hubbub-First-Position` and `Hubbub-Last-Position`, so positions are dense per topic
  while stream sequences count messages.
- KV bucket `p_offsets` holds each consumer group's committed position per topic.
- KV bucket `p_tails` holds, per topic, the last sequence and position a writer stored,
  so numbering goes on after retention emptied a stream (see Retention).
- Durable pull consumer `<group>` on `p_t` delivers the group's messages (explicit ack).

Retention (`hubbub.eventlog.retention`, settings `HUBBUB_RETAIN_*`) is the streams' own
limits, kept by the server: `max_age` and `max_bytes` for topics kept by age and size
(firehose topics 30 days by default; `usage` 90, `deadletter`, `deliveries` and
`alerts` 30), none for `pages` (kept whole). `control` is compacted by subject: each
event is a message of its own on `p.control.<digest of its compaction key>`, and the
stream keeps one message per subject (`max_msgs_per_subject` 1), the latest. Every
stream and bucket has `HUBBUB_NATS_REPLICAS` replicas on file storage.

Checked at start. `connect` compares every existing stream of the prefix (and the
buckets) with what the settings ask: limits, replicas and subjects that differ are
updated; a stream on memory storage, or a `control` stream holding events in the
layout from before compaction, stops the start with `LogMisconfigured` saying what to
do. So the log never runs on a stream that keeps less, or less safely, than configured.

Writing. A writer learns the last sequence and position of a topic from the stream's
tail when it first appends there, and rebuilds from the last `dedupe_window` events a
window of recent ids that makes append idempotent. The messages of a batch are
published pipelined; each expects the stream's last sequence to be the one before it
(`Nats-Expected-Last-Sequence`) and, after the first, its predecessor's message id
(`Nats-Expected-Last-Msg-Id`), so a writer that raced another one writes nothing out
of place: it catches up with the stream's tail and tries again. `Nats-Msg-Id` is a
digest of the event ids a message carries, so a retried message is stored once.

Reading. `read` finds the message holding a position by interpolation search over
stream sequences (direct get), then unpacks messages from there.

Consuming. A group's position of record is the KV entry. When a process first fetches
for a group, it starts the durable consumer at the message holding the position after
the committed one (recreating the consumer if it would start elsewhere) and skips the
events at or before it. `commit` stores the position, then acks the messages it covers.
"""

from hubbub.eventlog.jetstream.log import JetStreamEventLog
from hubbub.eventlog.jetstream.streams import delete_streams
from hubbub.eventlog.jetstream.wire import FIRST_POSITION, LAST_POSITION

__all__ = ["FIRST_POSITION", "LAST_POSITION", "JetStreamEventLog", "delete_streams"]
