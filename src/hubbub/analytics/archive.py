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
"""

from __future__ import annotations

import os
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from hubbub.eventlog.port import Record
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


def post_row(event: PostPublished) -> dict[str, Any]:
    return {
        "post": event.post,
        "author": event.author,
        "ts": event.ts,
        "minute": event.ts // 60_000_000,
        "source": event.source,
        "text": event.text,
        "langs": event.langs,
        "tags": event.tags,
        "mentions": event.mentions,
        "reply_parent": event.reply_parent,
        "edited": isinstance(event, PostEdited),
    }


def delete_row(event: PostDeleted) -> dict[str, Any]:
    return {"post": event.post, "author": event.author, "ts": event.ts}


class PostArchive:
    """Parquet files of posts and deletes under `root`; one writing process at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for topic in TOPICS:
            (root / topic).mkdir(parents=True, exist_ok=True)
        self._positions_path = root / "positions.json"
        self._recover()

    def positions(self) -> dict[str, int]:
        """The last log position archived, per topic."""
        if not self._positions_path.exists():
            return {}
        return msgspec.json.decode(self._positions_path.read_bytes(), type=dict[str, int])

    def write(self, records: Iterable[Record]) -> int:
        """Archive these records (posts and deletes topics), then move the positions;
        returns the rows written. Records at or before the stored positions are skipped."""
        positions = self.positions()
        rows: dict[str, defaultdict[str, list[dict[str, Any]]]] = {
            topic: defaultdict(list) for topic in TOPICS
        }
        reached = dict(positions)
        for record in records:
            if record.position <= positions.get(record.topic, 0):
                continue
            event = record.event
            if isinstance(event, PostPublished):
                rows[POSTS][hour_of(event.ts)].append(post_row(event))
            elif isinstance(event, PostDeleted):
                rows[DELETES][hour_of(event.ts)].append(delete_row(event))
            if record.topic in rows:
                reached[record.topic] = max(reached.get(record.topic, 0), record.position)
        written = 0
        for topic, by_hour in rows.items():
            first, last = positions.get(topic, 0) + 1, reached.get(topic, 0)
            schema = POST_SCHEMA if topic == POSTS else DELETE_SCHEMA
            for hour, hour_rows in by_hour.items():
                self._write_file(
                    topic, hour, f"{first}-{last}", pa.Table.from_pylist(hour_rows, schema)
                )
                written += len(hour_rows)
        if reached != positions:
            self._save_positions(reached)
        return written

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
                parts = sorted(_ranges(folder))
                if len(parts) < 2 or folder.name.removeprefix("hour=") >= limit:
                    continue
                first, last = min(a for a, _, _ in parts), max(b for _, b, _ in parts)
                table = pa.concat_tables(pq.read_table(path) for _, _, path in parts)
                self._write_file(topic, folder.name.removeprefix("hour="), f"{first}-{last}", table)
                for _, _, path in parts:
                    path.unlink()
                merged += 1
        return merged

    def prune(self, before: datetime) -> int:
        """Delete the hours that ended before `before` (retention); returns hours deleted."""
        limit = before.strftime(_HOUR_FORMAT)
        dropped = 0
        for topic in TOPICS:
            for folder in (self.root / topic).glob("hour=*"):
                if folder.name.removeprefix("hour=") < limit:
                    shutil.rmtree(folder)
                    dropped += 1
        return dropped

    def _write_file(self, topic: str, hour: str, name: str, table: pa.Table) -> None:
        folder = self.root / topic / f"hour={hour}"
        folder.mkdir(exist_ok=True)
        temporary = folder / f".{name}.parquet.tmp"
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, folder / f"{name}.parquet")

    def _save_positions(self, positions: dict[str, int]) -> None:
        temporary = self._positions_path.with_suffix(".tmp")
        temporary.write_bytes(msgspec.json.encode(positions))
        os.replace(temporary, self._positions_path)

    def _recover(self) -> None:
        """Delete what a crash left: files past the stored positions, temporary files,
        and parts that a compaction had already merged."""
        positions = self.positions()
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


def _ranges(folder: Path) -> Iterable[tuple[int, int, Path]]:
    for path in folder.iterdir():
        match = _FILE.match(path.name)
        if match:
            yield int(match[1]), int(match[2]), path
