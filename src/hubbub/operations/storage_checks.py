"""The doctor's checks of where the platform keeps its state: the data dir, the SQLite
event log, each service's relational store and its migrations, the other databases.

Nothing here writes to a store: a schema behind is reported, never migrated (each
service migrates its own store when it opens it, at start), so a doctor run against a
live deployment changes nothing but a temporary file in the data dir.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from psycopg import sql

from hubbub.gateway import sql as gateway_sql
from hubbub.kernel.telemetry import redact
from hubbub.listening import sql as listening_sql
from hubbub.notifications import sql as notifications_sql
from hubbub.operations.effective_settings import redact_url
from hubbub.operations.findings import Check, Finding, Limits, counted
from hubbub.publishing import sql as publishing_sql
from hubbub.settings import Settings


@dataclass(frozen=True)
class Store:
    """A service's relational store: the setting naming it, its migrations and the
    table Alembic keeps its revision in."""

    service: str
    variable: str
    migrations: Path
    version_table: str


STORES: Final = (
    Store("gateway", "HUBBUB_RELATIONAL_URL", gateway_sql.MIGRATIONS, "alembic_version"),
    Store(
        "publishing", "HUBBUB_RELATIONAL_URL", publishing_sql.MIGRATIONS,
        publishing_sql.VERSION_TABLE,
    ),
    Store(
        "listening", "HUBBUB_LISTENING_DB_URL", listening_sql.MIGRATIONS,
        listening_sql.VERSION_TABLE,
    ),
    Store(
        "notifications", "HUBBUB_NOTIFICATIONS_DB_URL", notifications_sql.MIGRATIONS,
        notifications_sql.VERSION_TABLE,
    ),
)  # fmt: skip


def plan(settings: Settings, limits: Limits) -> list[tuple[str, Check]]:
    urls = {
        "HUBBUB_RELATIONAL_URL": settings.relational,
        "HUBBUB_LISTENING_DB_URL": settings.listening_db,
        "HUBBUB_NOTIFICATIONS_DB_URL": settings.notifications_db,
    }
    checks: list[tuple[str, Check]] = [
        ("data dir", functools.partial(data_dir, settings.data_dir, limits)),
    ]
    if settings.event_log == "sqlite":
        checks.append(("event log", functools.partial(sqlite_log, settings.log_path, limits)))
    for store in STORES:
        check = functools.partial(relational_store, store, urls[store.variable], limits)
        checks.append((f"{store.service} store", check))
    checks += _other_databases(settings, limits)
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value()
        checks.append(("secret key", functools.partial(secret_key, key)))
    return checks


def _other_databases(settings: Settings, limits: Limits) -> list[tuple[str, Check]]:
    """The PostgreSQL databases of the mentions backend and the rollups, if used."""
    checks: list[tuple[str, Check]] = []
    if "postgres" in (settings.mentions_backend, settings.mentions_shadow):
        url = settings.mentions_postgres_url.get_secret_value()
        where = "HUBBUB_MENTIONS_POSTGRES_URL"
        checks.append(("mentions database", functools.partial(postgres, url, where, limits)))
    if settings.analytics_store == "postgres":
        url = settings.analytics_postgres_url.get_secret_value()
        where = "HUBBUB_ANALYTICS_POSTGRES_URL"
        checks.append(("analytics database", functools.partial(postgres, url, where, limits)))
    return checks


# The data dir


async def data_dir(path: Path, limits: Limits) -> list[Finding]:
    return [await asyncio.to_thread(_data_dir, path, limits.min_free_bytes)]


def _data_dir(path: Path, min_free: int) -> Finding:
    where = path.resolve()
    if not where.exists():
        return _missing_data_dir(where)
    if not where.is_dir():
        return Finding("data dir", "fail", f"{where} is not a directory", _DATA_DIR_FIX)
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as error:
        why = error.strerror or str(error)
        fix = "give the user hubbub runs as write access to it (chown, chmod)"
        return Finding("data dir", "fail", f"{where} is not writable ({why})", fix)
    free = shutil.disk_usage(where).free
    if free < min_free:
        detail = f"{where}: writable, only {_size(free)} free (under {_size(min_free)})"
        fix = "free space, or move the data dir to a larger disk: the log and stores grow"
        return Finding("data dir", "warn", detail, fix)
    return Finding("data dir", "ok", f"{where}: writable, {_size(free)} free")


_DATA_DIR_FIX: Final = "set HUBBUB_DATA_DIR (or --data-dir) to a directory"


def _missing_data_dir(where: Path) -> Finding:
    parent = next(p for p in where.parents if p.exists())
    if not os.access(parent, os.W_OK | os.X_OK):
        detail = f"{where} does not exist, and {parent} is not writable to make it"
        return Finding("data dir", "fail", detail, "create it and let hubbub's user write to it")
    detail = f"{where} does not exist yet ({_size(shutil.disk_usage(parent).free)} free)"
    fix = f"it is made at first start; if you expected data there, {_DATA_DIR_FIX}"
    return Finding("data dir", "warn", detail, fix)


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:,.1f} TiB"


# The SQLite event log


async def sqlite_log(path: Path, limits: Limits) -> list[Finding]:
    return [await asyncio.to_thread(_sqlite_log, path, limits.timeout_s)]


def _sqlite_log(path: Path, timeout_s: float) -> Finding:
    if not path.exists():
        return Finding("event log", "ok", f"SQLite: {path} not made yet (at first start)")
    query = "SELECT count(*), coalesce(sum(last), 0) FROM topics"
    try:
        with closing(_read_only(path, timeout_s)) as db:
            topics, events = db.execute(query).fetchone()
    except sqlite3.Error as error:
        fix = "check its owner and mode; if it is damaged, restore it from a backup"
        return Finding("event log", "fail", f"SQLite {path} cannot be read: {error}", fix)
    said = f"{counted(topics, 'topic')}, {counted(events, 'event')}"
    return Finding("event log", "ok", f"SQLite {path}: {said}")


def _read_only(path: Path, timeout_s: float) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s)


# Relational stores and their migrations


async def relational_store(store: Store, url: str, limits: Limits) -> list[Finding]:
    """The store's database reachable, and its schema at this version's newest."""
    check, where = f"{store.service} store", redact_url(url)
    parsed = sa.engine.make_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            path = Path(parsed.database or "")
            current = await asyncio.to_thread(
                _sqlite_revisions, path, store.version_table, limits.timeout_s
            )
        elif parsed.get_backend_name() == "postgresql":
            current = await _postgres_revisions(_libpq(parsed), store.version_table, limits)
        else:
            return [Finding(check, "fail", f"{where}: not SQLite nor PostgreSQL", store.variable)]
    except (sqlite3.Error, psycopg.Error) as error:
        detail = redact(f"{where}: {_one_line(error)}")
        fix = f"check that the database is up and reachable, and {store.variable}"
        return [Finding(check, "fail", detail, fix)]
    return [judge_schema(store, where, current)]


def judge_schema(store: Store, where: str, current: Sequence[str] | None) -> Finding:
    """Whether a store at revisions `current` (None: no database yet) is up to date."""
    check, service = f"{store.service} store", store.service
    script = ScriptDirectory(str(store.migrations))
    heads, known = set(script.get_heads()), {s.revision for s in script.walk_revisions()}
    starts = f"the {service} role migrates it when it starts (`hubbub serve`)"
    if current is None:
        return Finding(check, "ok", f"{where}: not made yet; {starts}")
    if not current:
        return Finding(check, "warn", f"{where}: no {service} schema yet", starts)
    if unknown := sorted(set(current) - known):
        detail = f"{where}: at revision {', '.join(unknown)}, unknown to this Hubbub"
        fix = "a newer Hubbub migrated it: run that version, or restore a backup made by this one"
        return Finding(check, "fail", detail, fix)
    newest = ", ".join(sorted(heads))
    if set(current) != heads:
        detail = f"{where}: {service} schema at {', '.join(current)}, newest is {newest}"
        return Finding(check, "warn", detail, f"{starts}; stop older versions' processes first")
    return Finding(check, "ok", f"{where}: {service} schema up to date ({newest})")


def _sqlite_revisions(path: Path, version_table: str, timeout_s: float) -> list[str] | None:
    if not path.exists():
        return None
    with closing(_read_only(path, timeout_s)) as db:
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (version_table,)
        ).fetchone()
        if found is None:
            return []
        return [row[0] for row in db.execute(f'SELECT version_num FROM "{version_table}"')]


async def _postgres_revisions(conninfo: str, version_table: str, limits: Limits) -> list[str]:
    async with await _connect(conninfo, limits) as db:
        cursor = await db.execute("SELECT to_regclass(%s)", (version_table,))
        row = await cursor.fetchone()
        if row is None or row[0] is None:
            return []
        table = sql.Identifier(version_table)
        cursor = await db.execute(sql.SQL("SELECT version_num FROM {}").format(table))
        return [str(found[0]) for found in await cursor.fetchall()]


def _one_line(error: Exception) -> str:
    """An error's message on one line (libpq's span several, indented)."""
    return " ".join(str(error).split()) or type(error).__name__


def _libpq(url: sa.URL) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg://...`) as libpq takes it."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _connect(conninfo: str, limits: Limits) -> psycopg.AsyncConnection[tuple[object, ...]]:
    return await psycopg.AsyncConnection.connect(
        conninfo, connect_timeout=max(1, round(limits.timeout_s)), autocommit=True
    )


# Other databases and keys


async def postgres(conninfo: str, variable: str, limits: Limits) -> list[Finding]:
    """A PostgreSQL database reachable (the mentions backend's, the rollups')."""
    check = "mentions database" if "MENTIONS" in variable else "analytics database"
    where = redact_url(conninfo)
    try:
        async with await _connect(conninfo, limits) as db:
            version = db.info.server_version
    except psycopg.Error as error:
        fix = f"check that PostgreSQL is up and reachable, and {variable}"
        return [Finding(check, "fail", redact(f"{where}: {_one_line(error)}"), fix)]
    major, minor = divmod(version, 10000)
    return [Finding(check, "ok", f"{where}: PostgreSQL {major}.{minor}")]


async def secret_key(key: str) -> list[Finding]:
    """HUBBUB_SECRET_KEY is a Fernet key (the secrets at rest are sealed with it)."""
    try:
        Fernet(key.encode())
    except ValueError:
        fix = (
            "make one with `python -c 'from cryptography.fernet import Fernet;"
            " print(Fernet.generate_key().decode())'` (a new key opens no secret sealed"
            " with the old one)"
        )
        return [Finding("secret key", "fail", "HUBBUB_SECRET_KEY is not a Fernet key", fix)]
    return [Finding("secret key", "ok", "HUBBUB_SECRET_KEY is a Fernet key")]
