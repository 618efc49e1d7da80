"""Backups of the JetStream event log through JetStream's own snapshot API, for the
scale-out platform (the `nats` CLI's `stream backup` / `stream restore`, in Python).

Every stream the log keeps under its prefix (one per topic, `PREFIX_TOPIC`, and the
key-value buckets of consumer offsets and partition tails, `KV_PREFIX_*`) is asked for a
snapshot (`$JS.API.STREAM.SNAPSHOT.<stream>`): the server sends the stream's messages
and consumers as one compressed archive, in chunks, each acknowledged so it does not
outrun the client. A snapshot is one point in the stream's history; the streams are taken
one after another: the key-value buckets (the offsets consumers stored) first, then the
topics' streams, so no saved offset is past the saved log; and back up the read models'
databases before (their stored positions are then at most what the streams hold). Each
archive is written as `<stream>.snapshot` with the stream's configuration and state in
`streams.json` (with sizes, sha256 and the order they were taken in), all readable by
their owner only.

The URL is HUBBUB_NATS_URL's form: one server, or several separated by commas. Errors
name it with its password replaced.

A restore (`$JS.API.STREAM.RESTORE.<stream>`) recreates each stream from its archive,
chunk by chunk, each acknowledged by the server; a stream that exists is refused
unless `replace`, which deletes it first.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from hubbub.kernel.telemetry import redact

FORMAT: Final = "hubbub-jetstream-backup-1"
MANIFEST: Final = "streams.json"
CHUNK: Final = 128 * 1024
TIMEOUT_S: Final = 10.0


class StreamBackupError(RuntimeError):
    """A snapshot or restore failed; the message names the stream and the server's words."""


async def save(
    url: str, prefix: str, target: Path, advance: Callable[[int], None] = lambda n: None
) -> dict[str, Any]:
    """Snapshot every stream of the log under `prefix` into `target` (new or empty)."""
    _make_empty(target)
    nc = await _connect(url)
    try:
        streams = {}
        names = await _stream_names(nc, prefix)
        offsets = [name for name in names if name.startswith(f"KV_{prefix}_")]
        order = offsets + [name for name in names if name not in offsets]
        for name in order:
            streams[name] = await _snapshot(nc, name, target / f"{name}.snapshot", advance)
    finally:
        await nc.close()
    if not streams:
        raise StreamBackupError(f"no stream under the prefix {prefix!r} at {redact(url)}")
    manifest = {"format": FORMAT, "prefix": prefix, "streams": streams, "order": order}
    with _owner_only(target / MANIFEST) as file:
        file.write(json.dumps(manifest, indent=2, sort_keys=True).encode())
    return manifest


async def restore(
    url: str,
    source: Path,
    *,
    replace: bool = False,
    advance: Callable[[int], None] = lambda n: None,
) -> list[str]:
    """Recreate every stream of the backup in `source`; answers their names."""
    manifest = verify(source)
    nc = await _connect(url)
    try:
        existing = set(await _stream_names(nc, manifest["prefix"]))
        clashing = sorted(existing & set(manifest["streams"]))
        if clashing and not replace:
            raise StreamBackupError(
                f"these streams exist: {', '.join(clashing)} (replace them, or restore"
                " into a server without them)"
            )
        for name in clashing:
            await _api(nc, f"$JS.API.STREAM.DELETE.{name}", b"", name)
        for name, saved in sorted(manifest["streams"].items()):
            await _restore(nc, name, saved, source / f"{name}.snapshot", advance)
    finally:
        await nc.close()
    return sorted(manifest["streams"])


def _make_empty(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise StreamBackupError(f"the backup directory {target} is not empty")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.chmod(0o700)


def _owner_only(path: Path) -> Any:
    """`path` opened to be written (emptied first), readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def verify(source: Path) -> dict[str, Any]:
    """The backup's manifest, once every archive it lists has its size and checksum."""
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise StreamBackupError(f"{source / MANIFEST}: no readable manifest ({error})") from None
    if manifest.get("format") != FORMAT:
        raise StreamBackupError(f"{source / MANIFEST}: not a {FORMAT} manifest")
    for name, saved in manifest["streams"].items():
        path = source / f"{name}.snapshot"
        if not path.is_file():
            raise StreamBackupError(f"{path.name}: listed in the manifest, missing")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if path.stat().st_size != saved["bytes"] or digest != saved["sha256"]:
            raise StreamBackupError(f"{path.name}: size or checksum differs from the manifest's")
    return manifest


async def _connect(url: str) -> Client:
    """A connection to the first server of `url` (one URL, or several separated by
    commas, as HUBBUB_NATS_URL allows) that answers; each is tried twice."""
    servers = [server.strip() for server in url.split(",") if server.strip()]
    if not servers:
        raise StreamBackupError("no NATS server: HUBBUB_NATS_URL is empty")
    failures: list[Exception] = []

    async def failed(error: Exception) -> None:
        failures.append(error)

    try:
        return await nats.connect(
            servers, connect_timeout=TIMEOUT_S, allow_reconnect=False,
            max_reconnect_attempts=1, reconnect_time_wait=0.5, error_cb=failed,
        )  # fmt: skip
    except Exception as error:
        cause = failures[-1] if failures else error
        said = str(cause) or type(cause).__name__
        raise StreamBackupError(f"cannot reach NATS at {redact(url)}: {redact(said)}") from None


async def _stream_names(nc: Client, prefix: str) -> list[str]:
    names: list[str] = []
    offset = 0
    while True:
        answer = await _api(nc, "$JS.API.STREAM.NAMES", json.dumps({"offset": offset}).encode())
        page = answer.get("streams") or []
        names += page
        offset += len(page)
        if not page or offset >= int(answer.get("total", 0)):
            break
    ours = (f"{prefix}_", f"KV_{prefix}_")
    return sorted(name for name in names if name.startswith(ours))


async def _snapshot(
    nc: Client, name: str, path: Path, advance: Callable[[int], None]
) -> dict[str, Any]:
    inbox = nc.new_inbox()
    chunks = await nc.subscribe(inbox)
    try:
        request = {"deliver_subject": inbox, "chunk_size": CHUNK, "jsck": True}
        answer = await _api(
            nc, f"$JS.API.STREAM.SNAPSHOT.{name}", json.dumps(request).encode(), name
        )
        digest, size = hashlib.sha256(), 0
        with _owner_only(path) as file:
            while True:
                chunk = await chunks.next_msg(timeout=TIMEOUT_S)
                _raise_for_status(chunk, name)
                if not chunk.data:
                    break
                file.write(chunk.data)
                digest.update(chunk.data)
                size += len(chunk.data)
                advance(len(chunk.data))
                if chunk.reply:
                    await nc.publish(chunk.reply, b"")
    finally:
        await chunks.unsubscribe()
    return {
        "config": answer["config"],
        "state": answer["state"],
        "bytes": size,
        "sha256": digest.hexdigest(),
    }


def _raise_for_status(chunk: Msg, name: str) -> None:
    status = (chunk.headers or {}).get("Status", "")
    if status and not status.startswith("2"):
        description = (chunk.headers or {}).get("Description", "")
        raise StreamBackupError(f"snapshot of {name} failed: {status} {description}".strip())


async def _restore(
    nc: Client, name: str, saved: dict[str, Any], path: Path, advance: Callable[[int], None]
) -> None:
    request = json.dumps({"config": saved["config"], "state": saved["state"]}).encode()
    answer = await _api(nc, f"$JS.API.STREAM.RESTORE.{name}", request, name)
    deliver = answer["deliver_subject"]
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            await _acknowledged(nc, deliver, chunk, name)
            advance(len(chunk))
    await _acknowledged(nc, deliver, b"", name)


async def _acknowledged(nc: Client, subject: str, payload: bytes, name: str) -> None:
    reply = await nc.request(subject, payload, timeout=TIMEOUT_S * 6)
    if reply.data:
        answer = json.loads(reply.data)
        if answer.get("error"):
            raise StreamBackupError(f"restore of {name} refused: {answer['error']}")


async def _api(nc: Client, subject: str, payload: bytes, name: str = "") -> dict[str, Any]:
    reply = await nc.request(subject, payload, timeout=TIMEOUT_S)
    answer: dict[str, Any] = json.loads(reply.data)
    if answer.get("error"):
        error = answer["error"]
        raise StreamBackupError(f"{name or subject}: {error.get('description', error)}")
    return answer
