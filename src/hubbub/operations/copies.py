"""Consistent copies of the files that hold an embedded platform's state, taken while
the platform runs, each by the means its engine gives:

- a SQLite file through SQLite's online backup API, in one step: a read transaction
  sees one committed state while writers (WAL) go on;
- a DuckDB file through the process that has it open (`COPY FROM DATABASE`, one
  transaction): this one, or the analytics role, asked through the data directory
  (`hubbub.kernel.copy_requests`), or through its own lock when nobody has it open.
  When another process owns it that does not answer (DuckDB lets one process open a
  file), the file and its write-ahead log are read until two reads in a row agree, which
  is an image of one instant: DuckDB recovers such an image as after a crash, to its
  last commit (a file written more often than it can be read is then refused);
- the mentions snapshot, a directory written aside and renamed into place, by opening
  every file through one handle on the directory, which must still be the one in place
  once all are open (the writer sets the old one aside before removing it, so a listing
  cut short by that removal is noticed and tried again); the copy must then load;
- the post archive under its writer's own lock (`flock` on its `.lock`).

Every copy calls `advance(bytes)` as it goes, for a progress bar. What a copy writes
is readable by its owner only (keys and databases hold secrets): see `owner_only`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import duckdb

from hubbub.analytics.duckdb import COPY_OWNER
from hubbub.analytics.post_records import records_path
from hubbub.kernel.copy_requests import CopyRefused, request_copy
from hubbub.mentions import snapshots

Advance = Callable[[int], None]
CHUNK = 1 << 20
STABLE_ATTEMPTS = 50
"""Reads of a DuckDB file another process writes before giving up on a quiet moment."""


class CopyFailed(RuntimeError):
    """A file could not be copied consistently; the message says which and why."""


def owner_only(path: Path) -> None:
    """Make `path` (a file, or a directory and all it holds) readable by its owner only:
    0700 for directories, 0600 for files."""
    if path.is_dir():
        for inner in path.rglob("*"):
            inner.chmod(0o700 if inner.is_dir() else 0o600)
        path.chmod(0o700)
    elif path.exists():
        path.chmod(0o600)


def copy_sqlite(source: Path, target: Path, advance: Advance) -> None:
    """`source` as of one committed transaction, written to `target` as one file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # mode=rw: a file gone meanwhile is an error, not a new empty database
    reader = sqlite3.connect(f"file:{source}?mode=rw", uri=True, timeout=30)
    with contextlib.closing(reader):
        reader.execute("PRAGMA busy_timeout=30000")
        with contextlib.closing(sqlite3.connect(target)) as writer:
            reader.backup(writer)
            writer.execute("PRAGMA journal_mode=DELETE")
    advance(target.stat().st_size)


def copy_duckdb(source: Path, target: Path, advance: Advance) -> None:
    """The rollups `source` as of one committed transaction, written to `target` as one
    file (see the module docstring for the three ways), then their post records beside
    it (`records_path`: copied after, they may hold later batches, which are dropped
    when the copy opens). The analytics role copies both itself, from the rollups it
    has open: a rebuild swapped in meanwhile cannot pair one file's rollups with
    another's records."""
    target.parent.mkdir(parents=True, exist_ok=True)
    records: Path | None = records_path(source)
    try:
        db = duckdb.connect(str(source))
    except duckdb.IOException as error:
        if "lock" not in str(error).lower():
            raise CopyFailed(f"{source}: {error}") from error
        if _copy_owned_duckdb(source, target):
            records = None
    except duckdb.ConnectionException:  # open in this process, configured otherwise
        if _copy_owned_duckdb(source, target):
            records = None
    else:
        with contextlib.closing(db):
            (name,) = db.execute("SELECT current_database()").fetchone() or ("",)
            quoted = str(target).replace("'", "''")
            db.execute(f"ATTACH '{quoted}' AS hubbub_backup")
            try:
                db.execute(f'COPY FROM DATABASE "{name}" TO hubbub_backup')
            finally:
                db.execute("DETACH hubbub_backup")
    advance(target.stat().st_size)
    if records is not None and records.exists():
        copy_sqlite(records, records_path(target), advance)
    elif records_path(target).exists():
        advance(records_path(target).stat().st_size)


def _copy_owned_duckdb(source: Path, target: Path) -> bool:
    """Copy a DuckDB file (and its WAL) that another process has open and writes: made
    by that process when it serves copies (True: it copied the post records too); else
    read both until two reads in a row are the same bytes, then let DuckDB recover the
    image and fold its WAL in, so the copy is one file (False)."""
    try:
        if request_copy(source.parent, COPY_OWNER, target):
            return True
    except CopyRefused as error:
        raise CopyFailed(f"{source}: {error}") from error
    wal = source.with_name(source.name + ".wal")
    image = target.with_name(target.name + ".image")
    last: tuple[str, str] | None = None
    for _ in range(STABLE_ATTEMPTS):
        now = (
            _copy_hashing(source, image),
            _copy_hashing(wal, image.with_name(image.name + ".wal")),
        )
        if now == last:
            break
        last = now
        time.sleep(0.05)
    else:
        _remove_duckdb(image)
        raise CopyFailed(
            f"{source}: the analytics role wrote it during each of {STABLE_ATTEMPTS} reads;"
            " stop the analytics role (or wait for a quieter moment) and try again"
        )
    with contextlib.closing(duckdb.connect(str(image))) as db:
        db.execute("CHECKPOINT")
    image.rename(target)
    return False


def _copy_hashing(source: Path, target: Path) -> str:
    """Copy `source` (absent: remove `target`) and answer the sha256 of what was read."""
    digest = hashlib.sha256()
    try:
        reading = source.open("rb")
    except FileNotFoundError:
        target.unlink(missing_ok=True)
        return "absent"
    with reading, target.open("wb") as writing:
        while chunk := reading.read(CHUNK):
            digest.update(chunk)
            writing.write(chunk)
    return digest.hexdigest()


def _remove_duckdb(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def copy_snapshot(source: Path, target: Path, advance: Advance) -> None:
    """Copy the mentions snapshot directory `source` as one snapshot (see the module
    docstring); tried again when a newer one replaced it between two opens."""
    for _ in range(STABLE_ATTEMPTS):
        opened = _open_snapshot(source)
        if opened is None:
            time.sleep(0.05)
            continue
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, mode=0o700)
        try:
            for name, fd in list(opened.items()):
                del opened[name]
                with os.fdopen(fd, "rb") as reading, _owner_only_file(target / name) as writing:
                    while chunk := reading.read(CHUNK):
                        writing.write(chunk)
                        advance(len(chunk))
        finally:
            _close(opened.values())
        try:
            snapshots.read(target, mutable=())
        except ValueError as error:
            raise CopyFailed(
                f"{source}: the copied mentions snapshot does not load ({error})"
            ) from None
        return
    raise CopyFailed(f"{source}: replaced during each of {STABLE_ATTEMPTS} attempts")


def _open_snapshot(directory: Path) -> dict[str, int] | None:
    """A descriptor of every file of the snapshot in `directory`, all opened through one
    handle on it; None if it was replaced (and perhaps partly removed) while they were
    being opened: the directory at `directory` is then no longer the one they came from."""
    try:
        handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:  # between the old one set aside and the new one renamed in
        return None
    opened: dict[str, int] = {}
    complete = False
    try:
        for name in sorted(os.listdir(handle)):
            opened[name] = os.open(name, os.O_RDONLY, dir_fd=handle)
        complete = os.stat(directory).st_ino == os.fstat(handle).st_ino
    except FileNotFoundError:
        pass
    finally:
        os.close(handle)
        if not complete:
            _close(opened.values())
    return opened if complete else None


def _close(descriptors: Iterable[int]) -> None:
    for fd in descriptors:
        with contextlib.suppress(OSError):
            os.close(fd)


def _owner_only_file(path: Path) -> BinaryIO:
    """`path` opened to be written (emptied first), created readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def copy_archive(source: Path, target: Path, advance: Advance) -> None:
    """Copy the post archive's files under the archive writer's lock, so no batch or
    compaction is half there."""
    with _archive_locked(source):
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                copied = target / path.relative_to(source)
                copied.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                with path.open("rb") as reading, _owner_only_file(copied) as writing:
                    shutil.copyfileobj(reading, writing, CHUNK)
                advance(copied.stat().st_size)


@contextlib.contextmanager
def _archive_locked(root: Path) -> Iterator[None]:
    with (root / ".lock").open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def copy_file(source: Path, target: Path, advance: Advance) -> None:
    """Copy a file (a key, or a file of a verified backup), readable by its owner only."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with source.open("rb") as reading, _owner_only_file(target) as writing:
        shutil.copyfileobj(reading, writing, CHUNK)
    advance(target.stat().st_size)


def sha256_of(path: Path, advance: Advance | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as reading:
        while chunk := reading.read(CHUNK):
            digest.update(chunk)
            if advance is not None:
                advance(len(chunk))
    return digest.hexdigest()
