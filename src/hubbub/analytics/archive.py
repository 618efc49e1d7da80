"""The raw post archive: the log's posts and deletes as Parquet files, a folder an hour.

Layout under the archive's root (Hive-style, so DuckDB, pyarrow or Spark read it as is):

    posts/hour=2026-12-01T10/<first>-<last>.parquet     posts and edits, by event hour
    deletes/hour=2026-12-01T10/<first>-<last>.parquet   deletes, by the hour they came
    positions.json                                       last log position archived, per topic

A file's name is the range of log positions it holds. The archive is a log consumer of
its own: it writes a batch's files, then moves `positions.json` (written to a temporary
name and renamed, which is atomic), so a crash leaves at most files past the stored
position, and opening the archive deletes them; the batch is then written again. It
never waits on the rollups, and a rollup rebuild leaves it alone.

Files are cut every `flush_s` (a minute by default) rather than per log batch, so an
hour holds tens of files, not thousands; `compact` merges a finished hour's files into
one, named by the whole range, and opening the archive drops any file whose range lies
inside another's (a compaction cut short). `prune` drops whole hours past retention.

So that a crash at any instant (a kill, or the machine losing power) loses no row whose
position was committed and doubles none:

- Writing, compacting, pruning and the recovery on opening all hold one lock: a lock
  of the process (the worker writes and compacts from different threads) and an
  advisory lock on `.lock` (another process may open the same archive). Without it a
  compaction could merge a batch's file before its positions were saved; a crash then
  made the merged file look uncommitted, and recovery deleted committed rows with it.
- Every file is written under a temporary name, fsynced, renamed, and its folder
  fsynced, before anything that relies on it: the positions move only once the batch's
  files are durable, and a compaction deletes its parts only once the merged file is.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from hubbub.eventlog.ports import Record
from hubbub.kernel.events import DELETES, POSTS, PostDeleted, PostEdited, PostPublished

TOPICS: Final = (POSTS, DELETES)
_FILE = re.compile(r"^(\d+)-(\d+)\.parquet$")
_HOUR_FORMAT: Final = "%Y-%m-%dT%H"

POST_SCHEMA: Final = pa.schema(
    [
        ("post", pa.string()),
        ("author", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("minute", pa.int64()),
        ("source", pa.string()),
        ("text", pa.string()),
        ("langs", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),
        ("mentions", pa.list_(pa.string())),
        ("reply_parent", pa.string()),
        ("edited", pa.bool_()),
    ]
)
DELETE_SCHEMA: Final = pa.schema(
    [("post", pa.string()), ("author", pa.string()), ("ts", pa.timestamp("us", tz="UTC"))]
)


def hour_of(ts_us: int) -> str:
    """The partition name of an event time in microseconds."""
    return datetime.fromtimestamp(ts_us / 1e6, UTC).strftime(_HOUR_FORMAT)


def post_table(events: list[PostPublished]) -> pa.Table:
    """Posts (and edits) as a table of `POST_SCHEMA`, built a column at a time: a minute
    of the firehose is tens of thousands of posts, and a dict a row made as many
    short-lived objects, which left the process's heap larger after every flush."""
    return pa.table(
        {
            "post": [e.post for e in events],
            "author": [e.author for e in events],
            "ts": [e.ts for e in events],
            "minute": [e.ts // 60_000_000 for e in events],
            "source": [e.source for e in events],
            "text": [e.text for e in events],
            "langs": [e.langs for e in events],
            "tags": [e.tags for e in events],
            "mentions": [e.mentions for e in events],
            "reply_parent": [e.reply_parent for e in events],
            "edited": [isinstance(e, PostEdited) for e in events],
        },
        schema=POST_SCHEMA,
    )


def delete_table(events: list[PostDeleted]) -> pa.Table:
    """Deletes as a table of `DELETE_SCHEMA`."""
    return pa.table(
        {
            "post": [e.post for e in events],
            "author": [e.author for e in events],
            "ts": [e.ts for e in events],
        },
        schema=DELETE_SCHEMA,
    )


class PostArchive:
    """Parquet files of posts and deletes under `root`. Threads and processes may share
    it: every change holds the archive's lock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for topic in TOPICS:
            (root / topic).mkdir(parents=True, exist_ok=True)
        _fsync_folder(root)
        self._positions_path = root / "positions.json"
        self._thread_lock = threading.Lock()
        self._lock_path = root / ".lock"
        with self._locked():
            self._recover()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The archive's one lock, for this thread among the process's and for this
        process among others (flock on `.lock`, released if the process dies)."""
        with self._thread_lock, self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def positions(self) -> dict[str, int]:
        """The last log position archived, per topic."""
        if not self._positions_path.exists():
            return {}
        return msgspec.json.decode(self._positions_path.read_bytes(), type=dict[str, int])

    def write(self, records: Iterable[Record]) -> int:
        """Archive these records (posts and deletes topics), then move the positions;
        returns the rows written, committed (durable) once it returns. Records at or
        before the stored positions are skipped."""
        with self._locked():
            return self._write(records)

    def _write(self, records: Iterable[Record]) -> int:
        positions = self.positions()
        posts: defaultdict[str, list[PostPublished]] = defaultdict(list)
        deletes: defaultdict[str, list[PostDeleted]] = defaultdict(list)
        reached = dict(positions)
        for record in records:
            if record.position <= positions.get(record.topic, 0):
                continue
            event = record.event
            if isinstance(event, PostPublished):
                posts[hour_of(event.ts)].append(event)
            elif isinstance(event, PostDeleted):
                deletes[hour_of(event.ts)].append(event)
            if record.topic in TOPICS:
                reached[record.topic] = max(reached.get(record.topic, 0), record.position)
        written = 0
        for hour, published in posts.items():  # one table in memory at a time
            written += self._write_hour(POSTS, hour, post_table(published), positions, reached)
        for hour, deleted in deletes.items():
            written += self._write_hour(DELETES, hour, delete_table(deleted), positions, reached)
        if reached != positions:
            self._save_positions(reached)
        return written

    def _write_hour(
        self,
        topic: str,
        hour: str,
        table: pa.Table,
        positions: dict[str, int],
        reached: dict[str, int],
    ) -> int:
        """Write a batch's rows of one hour, named by the batch's range; returns them."""
        first, last = positions.get(topic, 0) + 1, reached.get(topic, 0)
        self._write_file(topic, hour, f"{first}-{last}", table)
        return int(table.num_rows)

    def pattern(self, topic: str = POSTS) -> str:
        """The glob of a topic's files, for `read_parquet(..., hive_partitioning = true)`."""
        return str(self.root / topic / "*" / "*.parquet")

    def hours(self, topic: str = POSTS) -> list[str]:
        return sorted(p.name.removeprefix("hour=") for p in (self.root / topic).glob("hour=*"))

    def compact(self, before: datetime) -> int:
        """Merge each hour that ended before `before` into one file; returns hours merged."""
        merged = 0
        limit = before.strftime(_HOUR_FORMAT)
        for topic in TOPICS:
            for folder in (self.root / topic).glob("hour=*"):
                if folder.name.removeprefix("hour=") < limit:
                    # One hour at a time, so a writer waits for one merge, not for all.
                    with self._locked():
                        merged += self._compact_hour(topic, folder)
        return merged

    def _compact_hour(self, topic: str, folder: Path) -> int:
        """Merge the hour's files into one (1), unless it has fewer than two (0)."""
        parts = sorted(_ranges(folder)) if folder.exists() else []
        if len(parts) < 2:
            return 0
        first, last = min(a for a, _, _ in parts), max(b for _, b, _ in parts)
        table = pa.concat_tables(pq.read_table(path) for _, _, path in parts)
        self._write_file(topic, folder.name.removeprefix("hour="), f"{first}-{last}", table)
        # The merged file is durable: the parts may go (opening drops any left behind).
        for _, _, path in parts:
            path.unlink()
        _fsync_folder(folder)
        return 1

    def prune(self, before: datetime) -> int:
        """Delete the hours that ended before `before` (retention); returns hours deleted."""
        limit = before.strftime(_HOUR_FORMAT)
        dropped = 0
        with self._locked():
            for topic in TOPICS:
                for folder in (self.root / topic).glob("hour=*"):
                    if folder.name.removeprefix("hour=") < limit:
                        shutil.rmtree(folder)
                        dropped += 1
                _fsync_folder(self.root / topic)
        return dropped

    def _write_file(self, topic: str, hour: str, name: str, table: pa.Table) -> None:
        """Write `name`.parquet in the hour's folder, durably, or nothing under that name."""
        folder = self.root / topic / f"hour={hour}"
        if not folder.exists():
            folder.mkdir()
            _fsync_folder(folder.parent)
        _write_durably(
            folder / f"{name}.parquet",
            lambda out: pq.write_table(table, out, compression="zstd"),
        )

    def _save_positions(self, positions: dict[str, int]) -> None:
        encoded = msgspec.json.encode(positions)
        _write_durably(self._positions_path, lambda out: out.write(encoded))

    def _recover(self) -> None:
        """Delete what a crash left: files past the stored positions, temporary files,
        and parts that a compaction had already merged."""
        positions = self.positions()
        for temporary in self.root.glob(".*.tmp"):
            temporary.unlink()
        for topic in TOPICS:
            for folder in (self.root / topic).glob("hour=*"):
                for temporary in folder.glob(".*.tmp"):
                    temporary.unlink()
                parts = list(_ranges(folder))
                for first, last, path in parts:
                    uncommitted = last > positions.get(topic, 0)
                    merged = any(
                        (a, b) != (first, last) and a <= first and last <= b for a, b, _ in parts
                    )
                    if uncommitted or merged:
                        path.unlink()
                _fsync_folder(folder)


def _write_durably(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write `path` as `write` fills it, all or nothing, and durably once this returns:
    a hidden temporary file is written and fsynced, renamed over `path` (atomic), and
    the folder fsynced, so the rename itself survives a loss of power."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as out:
        write(out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the folder's entries (files made, renamed or deleted in it) durable."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _ranges(folder: Path) -> Iterable[tuple[int, int, Path]]:
    for path in folder.iterdir():
        match = _FILE.match(path.name)
        if match:
            yield int(match[1]), int(match[2]), path
