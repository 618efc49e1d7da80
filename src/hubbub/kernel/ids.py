"""Stable event ids.

An id starts with a part that sorts by the source's own time (a Bluesky TID, a
sequence number, a Mastodon snowflake) and ends with a short hash of what identifies
the event at its source. The same source event always gets the same id, which is how
the log recognises a redelivery; the sortable prefix keeps the log's id index growing
at its right edge instead of touching random pages.
"""

from __future__ import annotations

from hashlib import blake2b

from xxhash import xxh3_64_hexdigest

# The hash only has to tell apart events that share a sortable prefix (the same repo
# revision, the same sequence number), a handful at most, so a fast 64-bit hash is plenty:
# xxh3 costs a quarter of blake2b here, on the hottest line of ingest.


def event_id(sortable: str, identity: str) -> str:
    """`sortable` orders ids by source time; `identity` names the source event uniquely."""
    return sortable + xxh3_64_hexdigest(identity.encode())


def content_id(prefix: str, raw: bytes) -> str:
    """An id for input with no identity of its own (rejected bytes): a hash of the bytes."""
    return prefix + blake2b(raw, digest_size=12).hexdigest()
