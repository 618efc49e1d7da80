"""`hubbub connectors`, as an operator uses them, and `hubbub ingest mastodon` using the
token they keep."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from typer.testing import CliRunner

from hubbub.cli import app
from hubbub.cli.connectors import stored_token
from hubbub.settings import Settings
from tests.support.mastodon import FakeMastodon

PLAINTEXT = "plaintext-mastodon-token-3f9a71c2"


def hubbub(data_dir: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), *args], input=stdin)
    return result.exit_code, result.output


def set_token(data_dir: Path, account: str, *options: str) -> None:
    code, said = hubbub(
        data_dir, "connectors", "set-token", "mastodon", "--account", account, *options,
        stdin=PLAINTEXT + "\n",
    )  # fmt: skip
    assert code == 0, said
    assert PLAINTEXT not in said


def relational_bytes(data_dir: Path) -> bytes:
    """The relational store's files as they lie on disk (journals included)."""
    return b"".join(path.read_bytes() for path in sorted(data_dir.glob("relational.db*")))


def test_a_token_is_kept_sealed_listed_without_it_and_removed(tmp_path: Path) -> None:
    set_token(tmp_path, "Mastodon.Social")
    code, listed = hubbub(tmp_path, "connectors", "list", "--json")
    assert code == 0
    assert [(t["tenant"], t["connector"], t["account"]) for t in json.loads(listed)] == [
        ("default", "mastodon", "mastodon.social")
    ]
    code, table = hubbub(tmp_path, "connectors", "list")
    assert "mastodon.social" in table
    assert PLAINTEXT not in listed + table

    on_disk = relational_bytes(tmp_path)
    assert b"mastodon.social" in on_disk  # the row is in these bytes, its token is not
    assert PLAINTEXT.encode() not in on_disk
    settings = Settings(data_dir=tmp_path)
    assert stored_token(settings, "mastodon", "https://mastodon.social/") == PLAINTEXT
    assert stored_token(settings, "mastodon", "fosstodon.org") is None

    code, removed = hubbub(
        tmp_path, "connectors", "remove", "mastodon", "--account", "mastodon.social"
    )
    assert code == 0, removed
    assert stored_token(settings, "mastodon", "mastodon.social") is None
    assert "no connector tokens" in hubbub(tmp_path, "connectors", "list")[1]
    code, again = hubbub(
        tmp_path, "connectors", "remove", "mastodon", "--account", "mastodon.social"
    )
    assert code != 0
    assert "no mastodon token" in again


def test_a_token_is_never_taken_from_the_command_line(tmp_path: Path) -> None:
    command = ("connectors", "set-token", "mastodon", "--account", "mastodon.social")
    code, _ = hubbub(tmp_path, *command, PLAINTEXT, stdin="")
    assert code != 0
    code, said = hubbub(tmp_path, *command, stdin="\n")
    assert code != 0
    assert "give the token on stdin" in said
    assert hubbub(tmp_path, "connectors", "list", "--json")[1].strip() == "[]"


def test_a_tenant_sees_only_its_own_tokens(tmp_path: Path) -> None:
    set_token(tmp_path, "mastodon.social", "--tenant", "acme")
    assert hubbub(tmp_path, "connectors", "list", "--json")[1].strip() == "[]"
    listed = json.loads(hubbub(tmp_path, "connectors", "list", "--tenant", "acme", "--json")[1])
    assert [t["account"] for t in listed] == ["mastodon.social"]
    assert stored_token(Settings(data_dir=tmp_path), "mastodon", "mastodon.social") is None


async def until_streaming(fake: FakeMastodon, ingest: asyncio.subprocess.Process) -> None:
    """Wait (30 s at most) until the fake streams to the ingest process, or it exits."""
    streaming = asyncio.create_task(fake.streamed.wait())
    exited = asyncio.create_task(ingest.wait())
    await asyncio.wait({streaming, exited}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    streaming.cancel()


async def test_ingest_mastodon_sends_the_kept_token(tmp_path: Path) -> None:
    fake = FakeMastodon()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    set_token(tmp_path, "127.0.0.1")  # the account is the instance's host
    command = ["--data-dir", str(tmp_path), "ingest", "mastodon", "--url", fake.url]
    with (tmp_path / "ingest.stderr").open("wb") as stderr:
        ingest = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hubbub", *command, stderr=stderr
        )
    async with server:
        try:
            await until_streaming(fake, ingest)
        finally:
            if ingest.returncode is None:
                ingest.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                await ingest.wait()
    problems = (tmp_path / "ingest.stderr").read_text()
    assert ingest.returncode == 0, problems
    [request] = fake.requests
    assert request.headers["authorization"] == f"Bearer {PLAINTEXT}"
