"""The data disk filled up under a running platform: every role refuses new work with a
clear error (507 and the reason) rather than crashing, hanging or corrupting its files;
reads keep answering; and once space returns, the work refused is taken and the reports
equal the ground truth of everything accepted.

The data directory is a 64 MiB tmpfs mounted for the test (root only) and unmounted
whatever happens; it is filled with a file written until the kernel says ENOSPC. The
whole run is `make chaos`'s; every CI run checks, on a full tmpfs of 1 MiB, that the
errors each store raises there are the ones recognised as a full disk.
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import duckdb
import httpx
import pytest
import sqlalchemy as sa

from hubbub.kernel.diskfull import is_disk_full
from tests.chaos.harness import (
    Platform,
    PushStats,
    Tenant,
    firehose,
    ground_truth,
    long_run,
    make_tenant,
    push,
    report,
    totals,
    until_reports_equal,
)
from tests.chaos.test_server_restarts import a_handle_prefix

FIRST, REFUSED = 3_000, 2_000
"""Lines pushed before the disk fills, and lines pushed while it is full."""
ANSWER_S = 30.0


@contextmanager
def mounted(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `mount_point` while the block runs (skips unless root)."""
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=60)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs at tmp_path/data, unmounted after the test."""
    with mounted(tmp_path / "data", "64m") as mount_point:
        yield mount_point


def fill(directory: Path) -> Path:
    """Write a file in `directory` until the disk is full; the file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as sink:
        _write_until_full(sink, 1 << 20)
        _write_until_full(sink, 4096)  # the room a last partial block left
    return filler


def _write_until_full(sink: BinaryIO, block: int) -> None:
    zeros = b"\0" * block
    try:
        while True:
            sink.write(zeros)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise


Attempt = Callable[[], Awaitable[httpx.Response]]


def attempts(
    client: httpx.AsyncClient, url: str, tenant: Tenant, lines: bytes
) -> dict[str, Attempt]:
    """New work for each role, as a client would ask for it through the gateway."""
    auth = tenant.auth()
    ndjson = {**tenant.auth(tenant.pusher), "Content-Type": "application/x-ndjson"}
    return {
        "ingest": lambda: client.post(f"{url}/v1/ingest/jetstream", content=lines, headers=ndjson),
        "analytics": lambda: client.post(
            f"{url}/v1/watches", json={"kind": "hashtag", "target": "diskfull"}, headers=auth
        ),
        "publishing": lambda: client.put(
            f"{url}/v1/drafts/d15cf011d15cf011", json={"text": "kept for later"}, headers=auth
        ),
        "listening": lambda: client.post(
            f"{url}/v1/streams", json={"name": "full", "query": "disk AND full"}, headers=auth
        ),
        "gateway": lambda: client.post(
            f"{url}/v1/keys", json={"name": "later", "role": "viewer"}, headers=auth
        ),
    }


async def answer(attempt: Attempt) -> tuple[int, str, float]:
    """The status and body of one attempt and its seconds; fails on a hang."""
    started = time.monotonic()
    async with asyncio.timeout(ANSWER_S):
        found = await attempt()
    return found.status_code, found.text, time.monotonic() - started


def integrity(directory: Path) -> dict[str, str]:
    """PRAGMA integrity_check of every SQLite file of the data directory."""
    checked = {}
    for path in sorted(directory.rglob("*.db")):
        with sqlite3.connect(path) as db:
            checked[path.name] = db.execute("PRAGMA integrity_check").fetchone()[0]
    return checked


def test_each_stores_full_disk_error_is_recognised(tmp_path: Path) -> None:
    with mounted(tmp_path / "tiny", "1m") as tiny:
        fill(tiny)
        errors: list[BaseException] = []
        for write in (_sqlite_write, _sqlalchemy_write, _duckdb_write, _file_write):
            try:
                write(tiny)
            except Exception as error:  # each store's own kind is the point
                errors.append(error)
    assert len(errors) == 4, errors
    assert [is_disk_full(error) for error in errors] == [True] * 4, errors
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))


def _sqlite_write(directory: Path) -> None:
    with sqlite3.connect(directory / "s.db") as db:
        db.execute("CREATE TABLE t (x)")
        db.executemany("INSERT INTO t VALUES (?)", [(b"x" * 4096,)] * 64)


def _sqlalchemy_write(directory: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{directory / 'a.db'}")
    try:
        with engine.begin() as db:
            db.execute(sa.text("CREATE TABLE t (x)"))
    finally:
        engine.dispose()


def _duckdb_write(directory: Path) -> None:
    with duckdb.connect(str(directory / "d.duckdb")) as db:
        db.execute("CREATE TABLE t AS SELECT range AS x FROM range(100000)")
        db.execute("CHECKPOINT")


def _file_write(directory: Path) -> None:
    (directory / "f").write_bytes(b"x" * 8192)


@long_run
async def test_a_full_disk_is_refused_clearly_and_survived(
    tmp_path: Path, small_disk: Path
) -> None:
    lines = firehose(tmp_path, FIRST + REFUSED, 17)
    prefix = a_handle_prefix(lines)
    platform = Platform(small_disk, settings={"HUBBUB_MENTIONS_SNAPSHOT_INTERVAL_S": "2"})
    refused: dict[str, tuple[int, str, float]] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        try:
            await platform.start(client)
            tenant = await make_tenant(client, platform.url, "disk")
            stats = PushStats()
            await push(client, platform.url, tenant.pusher, lines[:FIRST], 2_000, stats)
            await until_reports_equal(
                client, tenant, platform.url, ground_truth(lines[:FIRST]), 120
            )
            work = attempts(client, platform.url, tenant, b"\n".join(lines[FIRST:]))
            filler = fill(small_disk)
            for role, attempt in work.items():
                refused[role] = await answer(attempt)
            reads = {
                "reports": await answer(lambda: client.get(
                    f"{platform.url}/v1/reports/top/hashtags", headers=tenant.auth(),
                    params={"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"},
                )),
                "autocomplete": await answer(lambda: client.get(
                    f"{platform.url}/v1/mentions", params={"q": prefix}, headers=tenant.auth()
                )),
            }  # fmt: skip
            await asyncio.sleep(3)  # the folds try (and fail) to write meanwhile
            exited = [r.name for r in platform.roles.values() if r.process.poll() is not None]  # type: ignore[union-attr]
            filler.unlink()
            taken = {role: await answer(attempt) for role, attempt in work.items()}
            truth = ground_truth(lines)
            caught_up_s = await until_reports_equal(client, tenant, platform.url, truth, 120)
        finally:
            platform.stop()
    report("disk full", {
        "refused": {role: [status, round(s, 2), body[:160]] for role, (status, body, s)
                    in refused.items()},
        "reads": {name: status for name, (status, _, _) in reads.items()},
        "taken_after": {role: status for role, (status, _, _) in taken.items()},
        "caught_up_s": round(caught_up_s, 1),
    })  # fmt: skip
    assert exited == [], f"roles exited on a full disk: {exited}"
    for role, (status, body, _) in refused.items():
        assert status == 507, f"{role} answered {status} on a full disk: {body[:500]}"
        assert "space" in body.lower(), body
    assert {name: status for name, (status, _, _) in reads.items()} == {
        "reports": 200,
        "autocomplete": 200,
    }
    assert all(200 <= status < 300 for status, _, _ in taken.values()), taken
    assert set(integrity(small_disk).values()) == {"ok"}
    assert totals(platform.env) == truth.totals()
    assert platform.logs("disk full"), "no log line says the disk is full"
