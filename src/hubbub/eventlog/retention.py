"""What the event log keeps of each topic, and what a reader sees when it was not kept.

A topic is kept in one of three ways (`TopicRetention`):

- **By age and size** (the firehose topics `posts`, `engagement`, `deletes`, the
  listening `matches` made from them, and `usage`, `deadletter`, `deliveries`,
  `alerts`): the oldest events go once they are older than `max_age_s` (since they were
  appended) or once the topic holds more than
  `max_bytes`. Retention removes a prefix of the topic, never events in the middle.
- **Compacted** (`control`): only the latest event of each compaction key stays
  (`compaction_key`: a setting's name, a flag's scope and name, a route's prefix, a
  watch's, webhook's, listening search's or channel's tenant and id; a person's tenant
  and user). Every control event carries the whole state of
  what it names, so the latest one is the live setting; removals (`active` false) are
  kept as the latest of their key, so a reader never resurrects what was removed.
- **Whole** (`pages`, and any topic without a rule): nothing is removed by age. The
  mentions index is rebuilt by folding `pages` from its start, and follower counts are
  sums of `FollowersChanged` deltas (Bluesky gives nothing else), so neither an age
  limit nor latest-per-key would keep what the index needs: each page's count is
  spread over all its deltas. A size cap may still be set on purpose.

The defaults come from settings (`HUBBUB_RETAIN_*`, see `hubbub.settings`):
firehose topics and `matches` 30 days, `usage` 90 days, `deadletter` 30 days, `deliveries` 30 days,
`alerts` 30 days, no size cap, `control` compacted, `pages` whole.

Falling behind. A reader whose position points into a removed prefix gets
`PositionExpired` (and `hubbub_eventlog_position_expired_total` counts it) instead of
silently skipping to the first kept event; see `hubbub.eventlog.ports`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec
from prometheus_client import Counter

from hubbub.kernel.events import (
    CONTROL,
    DEADLETTER,
    DELETES,
    ENGAGEMENT,
    MATCHES,
    PAGES,
    POSTS,
    PUBLISHING,
    USAGE,
    ChannelChanged,
    Event,
    FlagChanged,
    PersonChanged,
    RouteChanged,
    SearchChanged,
    SettingChanged,
    WatchChanged,
    WebhookChanged,
)

DAY_S: Final = 86_400.0
FIREHOSE: Final = (POSTS, ENGAGEMENT, DELETES)
# Named here as their owners (analytics) name them; the log knows topics only by name.
DELIVERIES: Final = "deliveries"
ALERTS: Final = "alerts"

POSITIONS_EXPIRED: Final = Counter(
    "hubbub_eventlog_position_expired_total",
    "Reads refused because the position asked for was removed by retention.",
    ["topic"],
)


class TopicRetention(msgspec.Struct, frozen=True):
    """How long a topic keeps its events: 0 means no limit of that kind."""

    max_age_s: float = 0.0
    max_bytes: int = 0
    compacted: bool = False

    @property
    def expires(self) -> bool:
        """Whether retention may remove a prefix of the topic."""
        return bool(self.max_age_s or self.max_bytes)


KEEP_WHOLE: Final = TopicRetention()
COMPACTED: Final = TopicRetention(compacted=True)


class RetentionPolicy(msgspec.Struct, frozen=True):
    """The retention of every topic; topics without a rule are kept whole."""

    topics: Mapping[str, TopicRetention] = msgspec.field(
        default_factory=lambda: {CONTROL: COMPACTED}
    )

    def of(self, topic: str) -> TopicRetention:
        return self.topics.get(topic, KEEP_WHOLE)


def policy(
    *,
    firehose_days: float = 30.0,
    firehose_bytes: int = 0,
    usage_days: float = 90.0,
    deadletter_days: float = 30.0,
    deliveries_days: float = 30.0,
    alerts_days: float = 30.0,
    publishing_days: float = 90.0,
    pages_bytes: int = 0,
) -> RetentionPolicy:
    """The policy the `HUBBUB_RETAIN_*` settings describe (0: no limit of that kind)."""
    topics = {topic: TopicRetention(firehose_days * DAY_S, firehose_bytes) for topic in FIREHOSE}
    topics[USAGE] = TopicRetention(usage_days * DAY_S)
    topics[DEADLETTER] = TopicRetention(deadletter_days * DAY_S)
    topics[DELIVERIES] = TopicRetention(deliveries_days * DAY_S)
    topics[ALERTS] = TopicRetention(alerts_days * DAY_S)
    topics[PUBLISHING] = TopicRetention(publishing_days * DAY_S)
    topics[PAGES] = TopicRetention(max_bytes=pages_bytes)
    topics[MATCHES] = TopicRetention(firehose_days * DAY_S)  # derived from the firehose
    topics[CONTROL] = COMPACTED
    return RetentionPolicy(topics)


class PositionExpired(LookupError):
    """The position asked for lies in a prefix of the topic that retention removed."""

    def __init__(self, topic: str, position: int, first_kept: int) -> None:
        super().__init__(
            f"topic {topic}: position {position} is no longer in the log, retention removed "
            f"everything before position {first_kept}; the reader fell behind and missed "
            f"events {position}..{first_kept - 1} (rebuild it from the start, or raise the "
            "topic's HUBBUB_RETAIN_* setting)"
        )
        self.topic = topic
        self.position = position
        self.first_kept = first_kept


def check_not_expired(topic: str, position: int, first_kept: int, rule: TopicRetention) -> None:
    """Raise PositionExpired (and count it) when reading `position` would skip events.

    Position 1 means "from the start": it reads from the first kept event. A compacted
    topic never raises: every key's latest event after `position` is still there.
    """
    if position > 1 and first_kept > position and not rule.compacted:
        POSITIONS_EXPIRED.labels(topic).inc()
        raise PositionExpired(topic, position, first_kept)


def compaction_key(event: Event) -> str:
    """The identity a control event sets the state of; a later event of it supersedes it."""
    if isinstance(event, SettingChanged):
        return f"setting\x00{event.name}"
    if isinstance(event, FlagChanged):
        return f"flag\x00{event.scope}\x00{event.flag}"
    if isinstance(event, RouteChanged):
        return f"route\x00{event.prefix}"
    if isinstance(event, WatchChanged):
        return f"watch\x00{event.tenant}\x00{event.watch}"
    if isinstance(event, WebhookChanged):
        return f"webhook\x00{event.tenant}\x00{event.webhook}"
    if isinstance(event, PersonChanged):
        return f"person\x00{event.tenant}\x00{event.user}"
    if isinstance(event, SearchChanged):
        return f"search\x00{event.tenant}\x00{event.search}"
    if isinstance(event, ChannelChanged):
        return f"channel\x00{event.tenant}\x00{event.channel}"
    # An event type added to control later is kept per id until it gets a rule here.
    return f"{type(event).__name__}\x00{event.id}"
