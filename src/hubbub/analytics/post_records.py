"""The embedded rollups' post records: what each post added, kept in a SQLite file beside
the DuckDB one (`records_path`), so that their index lives on disk.

DuckDB keeps a primary key's index whole in memory and cannot spill or evict it: keyed
by the post, the records cost about 60 MB of memory per million posts, and at DuckDB's
memory limit every write failed with an out-of-memory error (at a 300 MB limit, after
about 10 million posts). SQLite's B-tree reads the pages it needs through a page cache of
a fixed size (`CACHE_KIB`).

The two files cannot commit in one transaction, so every record is written as a new
version numbered by the batch that wrote it (`seq`), and a read takes each post's latest
version. The DuckDB store writes a batch's records here first, then its rollups with the
batch's number. When it opens, the versions newer than the number the rollups hold are
dropped (`trim`): a crash between the two commits, or a backup that copied this file
after the rollups, leaves exactly the records of the rollups' batches. Versions are kept
until their post's minute passes the `posts` horizon (`prune`); a post's records change a
few times at most (posted, edited, deleted, published by a tenant).

Both files carry the same random identity: records found beside a DuckDB file that is
not theirs (the rollups were deleted and made again) are dropped.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

import msgspec
import structlog

from hubbub.analytics.rollups import Contribution, post_hash

log = structlog.get_logger("hubbub.analytics")

CACHE_KIB: Final = 32 * 1024
"""SQLite's page cache for the records, the memory their reads and writes may keep."""
LOOKUP_CHUNK: Final = 2_000
"""Posts looked up per statement (SQLite allows 32,766 parameters)."""
PRUNE_CHUNK: Final = 50_000
"""Records deleted per transaction when pruning, so the fold waits at most one chunk."""

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Contribution).decode

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS post_record (h INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " post TEXT NOT NULL, minute INTEGER NOT NULL, record BLOB NOT NULL,"
    " PRIMARY KEY (h, seq, post)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS post_record_minute ON post_record (minute)",
    "CREATE TABLE IF NOT EXISTS meta (id TEXT NOT NULL, seq INTEGER NOT NULL)",
)


def records_path(rollups: Path) -> Path:
    """The records' file beside a rollups file: `analytics.duckdb` -> `analytics.posts.db`
    (a rebuild's `analytics-x.building` writes `analytics-x.posts.db`, its final name)."""
    return rollups.with_name(f"{rollups.stem}.posts.db")


def record_files(rollups: Path) -> tuple[Path, ...]:
    """The records' file and SQLite's files that go with it."""
    path = records_path(rollups)
    return (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")))


class PostRecords:
    """Post records by version, in SQLite; one writer (the rollups' owner)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        # The rollups' commit that follows is durable, so this one must be too.
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        with self._transaction():
            for statement in _SCHEMA:
                db.execute(statement)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (a full disk) may leave the transaction open.
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

    def copy_to(self, target: Path) -> None:
        """Write the records as of one commit to the new SQLite file `target`, through a
        reader of their own (the writer goes on meanwhile)."""
        reader = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True)
        with contextlib.closing(reader), contextlib.closing(sqlite3.connect(target)) as copy:
            reader.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")

    def meta(self) -> tuple[str | None, int]:
        """The identity of the rollups these records belong to (None when new), and the
        last batch written."""
        with self._lock:
            row = self._db.execute("SELECT id, seq FROM meta").fetchone()
        return (str(row[0]), int(row[1])) if row else (None, 0)

    def adopt(self, identity: str, seq: int) -> None:
        """Belong to the rollups of `identity`, which hold batches up to `seq`: drop every
        record if they were another's, else the versions written after `seq`."""
        mine, written = self.meta()
        with self._transaction() as db:
            if mine is not None and mine != identity:
                log.warning(
                    "the post records beside the rollups were another file's; dropped",
                    records=db.execute("SELECT count(*) FROM post_record").fetchone()[0],
                )
                db.execute("DELETE FROM post_record")
            elif written > seq:
                dropped = db.execute("DELETE FROM post_record WHERE seq > ?", [seq]).rowcount
                log.info("post records of batches the rollups lack dropped", records=dropped)
            elif written < seq:
                log.error(
                    "the post records are behind the rollups: deletes and edits of posts"
                    " from the batches between will not take their counts away",
                    records_batch=written,
                    rollups_batch=seq,
                )
            db.execute("DELETE FROM meta")
            db.execute("INSERT INTO meta VALUES (?, ?)", [identity, seq])

    def trim(self, seq: int) -> None:
        """Drop the versions written after batch `seq` (a batch the rollups refused)."""
        with self._transaction() as db:
            db.execute("DELETE FROM post_record WHERE seq > ?", [seq])
            db.execute("UPDATE meta SET seq = ?", [seq])

    def lookup(self, posts: Iterable[str]) -> dict[str, Contribution]:
        """Each post's latest record (posts never seen are left out)."""
        wanted = {post_hash(post): post for post in posts}
        hashes = list(wanted)
        latest: dict[str, tuple[int, bytes]] = {}
        with self._lock:
            for first in range(0, len(hashes), LOOKUP_CHUNK):
                chunk = hashes[first : first + LOOKUP_CHUNK]
                rows = self._db.execute(
                    "SELECT h, seq, post, record FROM post_record"
                    f" WHERE h IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for h, seq, post, record in rows:
                    if wanted.get(h) == post and (post not in latest or seq > latest[post][0]):
                        latest[post] = (seq, record)
        return {post: _decode(record) for post, (_, record) in latest.items()}

    def write(self, seq: int, records: dict[str, Contribution]) -> None:
        """Write `records` as batch `seq`'s versions, in one transaction."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO post_record VALUES (?, ?, ?, ?, ?)",
                [(post_hash(p), seq, p, c.minute, _encode(c)) for p, c in records.items()],
            )
            db.execute("UPDATE meta SET seq = ?", [seq])

    def load(self, rows: Iterable[tuple[str, int, bytes]], seq: int) -> int:
        """Write records moved from elsewhere (`post`, `minute`, encoded record) as batch
        `seq`'s, in one transaction; returns how many."""
        with self._transaction() as db:
            return db.executemany(
                "INSERT OR REPLACE INTO post_record VALUES (?, ?, ?, ?, ?)",
                ((post_hash(post), seq, post, minute, record) for post, minute, record in rows),
            ).rowcount

    def prune(self, horizon: int, pause: Callable[[], None] = lambda: None) -> int:
        """Delete the records of posts before minute `horizon`, a chunk per transaction
        (`pause` runs between them); returns how many."""
        deleted = 0
        while True:
            with self._transaction() as db:
                done = db.execute(
                    "DELETE FROM post_record WHERE (h, seq, post) IN (SELECT h, seq, post"
                    " FROM post_record WHERE minute < ? LIMIT ?)",
                    [horizon, PRUNE_CHUNK],
                ).rowcount
            deleted += done
            if done < PRUNE_CHUNK:
                return deleted
            pause()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def new_identity() -> str:
    return uuid.uuid4().hex
