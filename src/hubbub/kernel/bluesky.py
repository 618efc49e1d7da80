"""The AT Protocol collection names Hubbub reads.

Each is a Bluesky lexicon NSID (namespaced identifier), such as `app.bsky.feed.post`,
the `collection` field of a Jetstream commit and the middle part of an `at://` record
URI. Ingest maps records of these collections; the synthetic firehose writes them.
"""

from __future__ import annotations

from typing import Final

POST: Final = "app.bsky.feed.post"
LIKE: Final = "app.bsky.feed.like"
REPOST: Final = "app.bsky.feed.repost"
FOLLOW: Final = "app.bsky.graph.follow"
PROFILE: Final = "app.bsky.actor.profile"
