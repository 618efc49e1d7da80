"""Backups of an embedded platform's data directory: made while it runs, verified,
restored onto an empty directory.

What holds state in the data directory (`hubbub.settings`, `bootstrap`):

    mentions/            the mentions index snapshot (pages folded to its position)
    analytics*.duckdb    the rollups (`analytics.current` names the live file)
    analytics*.posts.db  the rollups' post records (copied with the rollups, after
                         them: see `hubbub.analytics.post_records`)
    listening.db         searches, kept matches, inbox state, the fold's positions
    notifications.db     people's notifications and their positions
    archive/             the post archive (Parquet) and its positions
    relational.db        tenants, users, keys, channels, publishing jobs
    ingest.db            ingest refs and each source's cursor
    secret.key, internal.key   what seals secrets at rest and signs between processes
    eventlog.db          the event log

Read models are copied first and the log last, so every position a read model stored
is at most what the copied log holds (the log only grows), and ingest's cursors are
copied before the log too, so re-ingesting from them after a restore misses nothing
(the log drops what it already holds: appends are idempotent by event id). The
manifest (`manifest.json`) lists every file with its size and sha256, each topic's head
in the copied log, each read model's stored positions and each ingest cursor, all
read from the copies themselves.

A backup holds the keys and every database, so it is readable by its owner only (the
directory 0700, each file 0600), and so is what a restore writes. A restore puts each
part where the restoring settings keep it (the archive in HUBBUB_ARCHIVE_DIR when set),
and `force` replaces state only when no process has the data directory's files open.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import duckdb

from hubbub.analytics.duckdb import live_path
from hubbub.analytics.post_records import records_path
from hubbub.mentions import snapshots
from hubbub.operations import copies
from hubbub.settings import Settings

FORMAT: Final = "hubbub-backup-1"
MANIFEST: Final = "manifest.json"
ANALYTICS: Final = "analytics.duckdb"
POST_RECORDS: Final = records_path(Path(ANALYTICS)).name
"""The rollups' name in a backup and in a restored data directory (no pointer)."""

Kind = Literal["sqlite", "duckdb", "snapshot", "archive", "file"]


@dataclass(frozen=True)
class Part:
    """One thing the backup copies: its name in the backup, where it lives, and how it
    is copied."""

    name: str
    source: Path
    kind: Kind


@dataclass
class Progress:
    """What a long backup, verify or restore reports as it goes: a total, then steps."""

    start: Callable[[str, int | None], None] = lambda description, total: None
    advance: Callable[[int], None] = lambda n: None


class BackupError(RuntimeError):
    """The backup cannot be made, verified or restored; the message says why."""


def parts(settings: Settings) -> tuple[list[Part], list[str]]:
    """What to copy from the settings' data directory, in order (read models first, the
    log last); and what is kept elsewhere, each with the procedure that backs it up."""
    data = settings.data_dir
    elsewhere: list[str] = []
    found: list[Part] = []
    if settings.event_log != "sqlite":
        raise BackupError(
            "the event log is JetStream: back it up with deploy/backup/jetstream.sh"
            " (docs/OPERATIONS.md, Backups)"
        )
    found.append(Part("mentions", settings.mentions_snapshot_path, "snapshot"))
    if settings.analytics_store == "duckdb":
        found.append(Part(ANALYTICS, live_path(data), "duckdb"))  # and its post records
    else:
        elsewhere.append("analytics rollups: PostgreSQL (deploy/backup/postgres.sh)")
    for name, url in (
        ("listening", settings.listening_db_url),
        ("notifications", settings.notifications_db_url),
    ):
        if url is None:
            found.append(Part(f"{name}.db", data / f"{name}.db", "sqlite"))
        else:
            elsewhere.append(f"{name}: its database URL (deploy/backup/postgres.sh)")
    found.append(Part("archive", settings.archive_path, "archive"))
    if settings.relational_url is None:
        found.append(Part("relational.db", data / "relational.db", "sqlite"))
    else:
        elsewhere.append("relational store: HUBBUB_RELATIONAL_URL (deploy/backup/postgres.sh)")
    found.append(Part("ingest.db", settings.ingest_state_path, "sqlite"))
    if settings.secret_key is None:
        found.append(Part("secret.key", data / "secret.key", "file"))
    if settings.internal_secret is None:
        found.append(Part("internal.key", data / "internal.key", "file"))
    found.append(Part("eventlog.db", settings.log_path, "sqlite"))
    return [part for part in found if part.source.exists()], elsewhere


def create(settings: Settings, target: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Copy the data directory's state to `target` (a new or empty directory) while the
    platform may run, write the manifest, and answer it."""
    progress = progress or Progress()
    _require_empty(target, "the backup directory")
    chosen, elsewhere = parts(settings)
    if not any(part.name == "eventlog.db" for part in chosen):
        raise BackupError(f"{settings.log_path}: no event log to back up")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.chmod(0o700)
    progress.start(
        "copying",
        sum(
            _size(part.source) + (_size(records_path(part.source)) if part.kind == "duckdb" else 0)
            for part in chosen
        ),
    )
    for part in chosen:
        _COPY[part.kind](part.source, target / part.name, progress.advance)
    copies.owner_only(target)
    files = _files(target)
    progress.start("checksumming", sum(_size(target / name) for name in files))
    manifest = {
        "format": FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": [
            {
                "path": name,
                "bytes": (target / name).stat().st_size,
                "sha256": copies.sha256_of(target / name, progress.advance),
            }
            for name in files
        ],
        "kinds": {
            **{part.name: part.kind for part in chosen},
            **({POST_RECORDS: "sqlite"} if (target / POST_RECORDS).exists() else {}),
        },
        **positions(target),
        "elsewhere": elsewhere,
    }
    _write_manifest(target, manifest)
    return manifest


_COPY: Final[dict[Kind, Callable[[Path, Path, copies.Advance], None]]] = {
    "sqlite": copies.copy_sqlite,
    "duckdb": copies.copy_duckdb,
    "snapshot": copies.copy_snapshot,
    "archive": copies.copy_archive,
    "file": copies.copy_file,
}


def positions(directory: Path) -> dict[str, Any]:
    """Read from a backup's (or a data directory's) own files: each topic's head in the
    log, each read model's stored positions, each ingest cursor."""
    models: dict[str, dict[str, int]] = {}
    if (directory / "mentions" / "manifest.json").exists():
        meta = json.loads((directory / "mentions" / "manifest.json").read_text())["meta"]
        models["mentions"] = {"pages": int(meta.get("position", 0))}
    if (directory / ANALYTICS).exists():
        with contextlib.closing(duckdb.connect(str(directory / ANALYTICS), read_only=True)) as db:
            rows = db.execute("SELECT topic, position FROM consumer_position").fetchall()
        models["analytics"] = {str(topic): int(position) for topic, position in rows}
    for name, table in (("listening", "listening_positions"),
                        ("notifications", "notifications_positions")):  # fmt: skip
        if (directory / f"{name}.db").exists():
            models[name] = _rows(directory / f"{name}.db", f"SELECT topic, position FROM {table}")
    if (directory / "archive" / "positions.json").exists():
        archived = json.loads((directory / "archive" / "positions.json").read_text())
        models["archive"] = {str(topic): int(position) for topic, position in archived.items()}
    cursors = {}
    if (directory / "ingest.db").exists():
        cursors = _rows(directory / "ingest.db", "SELECT name, value FROM cursors")
    return {
        "log": _rows(directory / "eventlog.db", "SELECT topic, last FROM topics"),
        "read_models": models,
        "ingest_cursors": cursors,
    }


def _rows(path: Path, query: str) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            return {str(key): int(value) for key, value in db.execute(query)}
        except sqlite3.OperationalError:  # made before its first write: no table yet
            return {}


@dataclass
class Verdict:
    """What `verify` found: every check made, and the faults among them."""

    checked: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    @property
    def sound(self) -> bool:
        return not self.faults


def verify(directory: Path, progress: Progress | None = None) -> Verdict:
    """Check a backup: the manifest is there and lists every file, each file has its
    size and checksum, each SQLite file passes `PRAGMA integrity_check`, the DuckDB
    file opens, and no read model stored a position past the log's head."""
    progress = progress or Progress()
    verdict = Verdict()
    try:
        manifest = read_manifest(directory)
    except BackupError as error:
        verdict.faults.append(str(error))
        return verdict
    listed = {entry["path"]: entry for entry in manifest["files"]}
    _check_listing(directory, listed, manifest, verdict)
    progress.start("checking", sum(int(e["bytes"]) for e in listed.values()))
    for name, entry in sorted(listed.items()):
        path = directory / name
        if path.is_file():
            _check_file(path, entry, verdict, progress)
    for name, kind in manifest.get("kinds", {}).items():
        if (directory / name).exists():
            _check_part(directory / name, kind, verdict)
    if not verdict.faults:
        _check_positions(directory, manifest, verdict)
    return verdict


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{path}: no manifest: not a backup, or one cut short") from None
    except (OSError, ValueError) as error:
        raise BackupError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a {FORMAT} manifest")
    return manifest


def _check_listing(
    directory: Path, listed: dict[str, Any], manifest: dict[str, Any], verdict: Verdict
) -> None:
    present = set(_files(directory))
    for name in sorted(set(listed) - present):
        verdict.faults.append(f"{name}: listed in the manifest, missing from the backup")
    for name in sorted(present - set(listed)):
        verdict.faults.append(f"{name}: in the backup, not in the manifest")
    if "eventlog.db" not in listed:
        verdict.faults.append("eventlog.db: the manifest lists no event log")
    for key in ("log", "read_models", "ingest_cursors"):
        if not isinstance(manifest.get(key), dict):
            verdict.faults.append(f"the manifest has no {key}")
    verdict.checked.append(f"manifest lists {len(listed)} files")


def _check_file(path: Path, entry: dict[str, Any], verdict: Verdict, progress: Progress) -> None:
    size = path.stat().st_size
    if size != entry["bytes"]:
        verdict.faults.append(f"{entry['path']}: {size} bytes, the manifest says {entry['bytes']}")
        progress.advance(int(entry["bytes"]))
        return
    if copies.sha256_of(path, progress.advance) != entry["sha256"]:
        verdict.faults.append(f"{entry['path']}: checksum differs from the manifest's")
        return
    verdict.checked.append(f"{entry['path']}: {size:,} bytes, checksum matches")


def _check_part(path: Path, kind: str, verdict: Verdict) -> None:
    """The part opens as what it is: SQLite passes its integrity check, DuckDB opens and
    holds its positions, the mentions snapshot loads."""
    try:
        if kind == "snapshot":
            snapshots.read(path, mutable=())
        elif kind == "sqlite":
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                found = [str(row[0]) for row in db.execute("PRAGMA integrity_check")]
            if found != ["ok"]:
                verdict.faults.append(f"{path.name}: integrity check: {'; '.join(found[:5])}")
                return
        elif kind == "duckdb":
            with contextlib.closing(duckdb.connect(str(path), read_only=True)) as db:
                db.execute("SELECT count(*) FROM consumer_position").fetchall()
        else:
            return
    except (sqlite3.Error, duckdb.Error, ValueError) as error:
        verdict.faults.append(f"{path.name}: does not open as {kind} ({error})")
        return
    verdict.checked.append(f"{path.name}: opens, {kind} checks pass")


def _check_positions(directory: Path, manifest: dict[str, Any], verdict: Verdict) -> None:
    """The positions the files hold are the manifest's, and none is past the log."""
    found = positions(directory)
    for key in ("log", "read_models", "ingest_cursors"):
        if found[key] != manifest[key]:
            verdict.faults.append(
                f"{key}: the files hold {found[key]}, the manifest {manifest[key]}"
            )
    heads = found["log"]
    for model, stored in found["read_models"].items():
        for topic, position in stored.items():
            if position > heads.get(topic, 0):
                verdict.faults.append(
                    f"{model}: folded {topic} to {position}, past the log's head"
                    f" {heads.get(topic, 0)}"
                )
    verdict.checked.append("read models' positions within the log")


def restore(
    directory: Path, settings: Settings, *, force: bool = False, progress: Progress | None = None
) -> Verdict:
    """Verify the backup, then copy it into the settings' data directory, which must be
    empty (or `force`: the state it holds is replaced). Raises BackupError with the
    faults when the backup does not verify, or with `force` while the platform runs.

    Each part goes where these settings keep it (`destination`): the archive into
    HUBBUB_ARCHIVE_DIR when that is set, which must then be empty too (or `force`)."""
    progress = progress or Progress()
    data = settings.data_dir
    if force:
        _require_stopped(settings)
    else:
        _require_empty(data, "the data directory")
    verdict = verify(directory, progress)
    if not verdict.sound:
        raise BackupError("the backup does not verify:\n  " + "\n  ".join(verdict.faults))
    manifest = read_manifest(directory)
    names = sorted({entry["path"].split("/", 1)[0] for entry in manifest["files"]})
    places = {name: destination(name, settings) for name in names}
    if not force:
        for name, place in places.items():
            if place.is_dir():
                _require_empty(place, f"the {name} directory")
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = data / ".restoring"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    progress.start("restoring", sum(int(e["bytes"]) for e in manifest["files"]))
    for entry in manifest["files"]:
        copies.copy_file(directory / entry["path"], staging / entry["path"], progress.advance)
    copies.owner_only(staging)
    if force:
        _remove_state(data, places.values())
    for name, place in places.items():
        place.parent.mkdir(parents=True, exist_ok=True)
        if place.is_dir():  # an empty archive directory the settings name
            place.rmdir()
        shutil.move(staging / name, place)
    staging.rmdir()
    return verdict


def destination(name: str, settings: Settings) -> Path:
    """Where a restore puts the part `name` of a backup: the path these settings keep
    it at (the same names `parts` copies from)."""
    kept = {
        "mentions": settings.mentions_snapshot_path,
        "archive": settings.archive_path,
        "ingest.db": settings.ingest_state_path,
        "eventlog.db": settings.log_path,
    }
    return kept.get(name, settings.data_dir / name)


def _require_stopped(settings: Settings) -> None:
    """Refuse to replace state a running platform has open: the event log cannot leave
    write-ahead mode while another connection holds it, and the rollups' DuckDB file
    cannot be opened for writing while its owner holds it."""
    running = BackupError(
        f"the data directory {settings.data_dir} is in use: stop the platform first"
    )
    log = settings.log_path
    if log.exists():
        try:
            with contextlib.closing(sqlite3.connect(log, timeout=0.5)) as db:
                mode = db.execute("PRAGMA journal_mode=DELETE").fetchone()
                db.execute("BEGIN EXCLUSIVE")
                db.rollback()
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise running from None
            raise BackupError(f"{log}: {error}") from None
        if mode is None or str(mode[0]).lower() != "delete":
            raise running
    rollups = live_path(settings.data_dir)
    if settings.analytics_store == "duckdb" and rollups.exists():
        try:
            duckdb.connect(str(rollups)).close()
        except duckdb.ConnectionException:  # open in this process
            raise running from None
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise running from None
            raise BackupError(f"{rollups}: {error}") from None


def _remove_state(data: Path, places: Iterable[Path]) -> None:
    """What a restore replaces: where the backup's parts go, and the files that go with
    them (write-ahead logs, the rollups' pointer and files, snapshots set aside)."""
    doomed = set(places)
    for place in list(doomed):
        doomed.update(place.with_name(place.name + suffix) for suffix in ("-wal", "-shm"))
    for pattern in ("*.db-wal", "*.db-shm", "analytics*", ".mentions.*"):
        doomed.update(data.glob(pattern))
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _require_empty(directory: Path, what: str) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{what} {directory} is not empty")


def _files(directory: Path) -> list[str]:
    return sorted(
        str(path.relative_to(directory))
        for path in directory.rglob("*")
        if path.is_file() and path != directory / MANIFEST
    )


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size + _size(path.with_name(path.name + ".wal"))
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    partial = directory / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    partial.chmod(0o600)
    os.replace(partial, directory / MANIFEST)
