"""A process that archives a made-up log as fast as it can, to be killed at any moment.

`python -m tests.integration.archive_writer ROOT JOURNAL SEED` opens the post archive at
ROOT and, as the analytics worker does, writes batches of records from one thread while
another compacts from the other. The log is a pure function of the position (post `p<N>`
at position N, in one of six hours, so every hour keeps receiving rows while it is being
compacted), so a restarted writer goes on from the archive's positions. After each
`write` returns, the positions it committed are appended to JOURNAL: the archive has
then reported those rows committed.
"""

from __future__ import annotations

import random
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hubbub.analytics.archive import PostArchive
from hubbub.eventlog.ports import Record
from hubbub.kernel.events import DELETES, POSTS, PostDeleted, PostPublished

HOURS = 6
START = datetime(2026, 3, 29, tzinfo=UTC)
DELETE_EVERY = 5


def ts_of(position: int) -> int:
    """The event time of position N: in one of the first HOURS hours, spread about."""
    hour = (position * 7919) % HOURS
    return int((START + timedelta(hours=hour, seconds=position % 3600)).timestamp() * 1e6)


def post_at(position: int) -> Record:
    event = PostPublished(
        id=f"p{position}", key="a", ts=ts_of(position), source="test",
        post=f"p{position}", author="a", text="x",
    )  # fmt: skip
    return Record(POSTS, position, event)


def delete_at(position: int) -> Record:
    event = PostDeleted(
        id=f"d{position}", key="a", ts=ts_of(position), source="test",
        post=f"d{position}", author="a",
    )  # fmt: skip
    return Record(DELETES, position, event)


def batch(archive: PostArchive, rng: random.Random) -> list[Record]:
    positions = archive.positions()
    first_post, first_delete = positions.get(POSTS, 0) + 1, positions.get(DELETES, 0) + 1
    size = rng.randint(1, 300)
    posts = [post_at(n) for n in range(first_post, first_post + size)]
    deletes = [delete_at(n) for n in range(first_delete, first_delete + size // DELETE_EVERY)]
    return posts + deletes


def keep_writing(archive: PostArchive, journal: Path, rng: random.Random) -> None:
    with journal.open("a") as out:
        while True:
            archive.write(batch(archive, rng))
            positions = archive.positions()
            out.write(f"{positions.get(POSTS, 0)} {positions.get(DELETES, 0)}\n")
            out.flush()


def keep_compacting(archive: PostArchive) -> None:
    while True:
        archive.compact(before=START + timedelta(hours=1))


def main() -> None:
    root, journal, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    archive = PostArchive(root)
    threading.Thread(target=keep_compacting, args=(archive,), daemon=True).start()
    keep_writing(archive, journal, random.Random(seed))


if __name__ == "__main__":
    main()
